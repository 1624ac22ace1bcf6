"""The self-supervised auxiliary loss inside CLEVRER training (aloe/tasks/auxiliary.py)."""

import jax
import numpy as np
import pytest

from aloe import losses
from aloe import parallel
from aloe import tasks
from aloe import train
from aloe.models import aloe as aloe_model
from aloe.synthetic import toy_latents
from aloe.tasks import auxiliary
from configs import test as test_config


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("toy"))
    toy_latents.write_toy_dataset(root, num_train=48, num_valid=16, seed=1)
    return root


def make_config(root, **overrides):
    config = test_config.get_config()
    config.data.root = root
    config.model.dropout_rate = 0.0
    config.optimizer.warmup_steps = 0
    config.update_from_flattened_dict(overrides)
    return config


def one_step(config):
    task = tasks.build(config)
    mesh = parallel.make_mesh()
    tx = train.make_optimizer(config.optimizer, config.train.steps)
    state = train.init_state(task, tx, config.seed)
    step = parallel.data_parallel(train.make_train_step(task, tx, config.seed), mesh,
                                  in_specs=(parallel.REPLICATED, parallel.SHARDED),
                                  out_specs=(parallel.REPLICATED, parallel.REPLICATED))
    batch = task.train_batch(0)
    state, metrics = step(parallel.replicate(state, mesh), parallel.shard_batch(batch, mesh))
    return jax.device_get(state.params), jax.device_get(metrics), batch


def test_zero_weight_is_the_step_without_auxiliary_loss(toy_root):
    plain, plain_metrics, plain_batch = one_step(make_config(toy_root))
    zero, _, zero_batch = one_step(make_config(toy_root, **{
        "auxiliary.weight": 0.0, "auxiliary.scheme": "f", "auxiliary.loss": "contrastive"}))
    assert "auxiliary" not in zero_batch and "auxiliary_loss" not in plain_metrics
    jax.tree.map(np.testing.assert_array_equal, zero, plain)
    # A positive weight adds the sub-batch, the parameters and their effect on the step.
    weighted, metrics, batch = one_step(make_config(toy_root, **{"auxiliary.weight": 0.5}))
    assert batch["auxiliary"]["latents"].shape[0] == 8
    assert set(weighted) == set(plain) | {"mask_embedding", "latent_prediction"}
    assert metrics["auxiliary_loss"] > 0
    kernel = lambda p: p["transformer"]["layer_0"]["mlp_hidden"]["kernel"]
    assert not np.allclose(kernel(weighted), kernel(plain))
    np.testing.assert_allclose(metrics["loss"], plain_metrics["loss"]
                               + 0.5 * metrics["auxiliary_loss"], rtol=0.05)


@pytest.mark.slow
def test_auxiliary_loss_learns_to_predict_hidden_objects(toy_root, tmp_path):
    # The toy latents follow simple dynamics: each object keeps its slot and its
    # attributes over the video and moves at constant velocity in dims 12-13, so
    # a hidden object is predictable from the other frames.
    config = make_config(toy_root, **{
        "auxiliary.weight": 1.0, "auxiliary.batch": 16, "auxiliary.scheme": "a",
        "train.steps": 300, "train.log_every": 100, "train.checkpoint_every": 300,
        "train.permute_slots": False, "model.num_heads": 4, "model.mlp_dim": 128})
    state = train.train(config, str(tmp_path))
    task = tasks.build(config)
    held_out = task.data("valid").train_batch(0, 0, 0, 32)["auxiliary"]
    masks = auxiliary.draw_masks(config, jax.random.key(7), held_out["latents"].shape)
    predicted = task.model.apply(
        {"params": jax.device_get(state.params)}, held_out["latents"], held_out["question"],
        masks.m, deterministic=True, method=aloe_model.ALOE.predict_latents)
    error = float(losses.masked_latent_error(predicted, held_out["latents"], masks.tau))
    baseline = float(losses.mean_baseline_latent_error(held_out["latents"], masks.tau))
    assert error < 0.5 * baseline, (error, baseline)  # Seeds 0-2: 0.17-0.25 of it.


@pytest.mark.slow
def test_contrastive_loss_learns_to_pick_hidden_objects(toy_root, tmp_path):
    # As above with the InfoNCE loss (dot product, temperature 1, all frames'
    # tokens as candidates): on held-out videos it ends far below chance, ln(T * K),
    # which is what a model that ignores the context (predictions ~ 0) scores.
    config = make_config(toy_root, **{
        "auxiliary.weight": 1.0, "auxiliary.batch": 16, "auxiliary.scheme": "a",
        "auxiliary.loss": "contrastive", "train.steps": 300, "train.log_every": 100,
        "train.checkpoint_every": 300, "train.permute_slots": False, "model.num_heads": 4,
        "model.mlp_dim": 128})
    state = train.train(config, str(tmp_path))
    task = tasks.build(config)
    held_out = task.data("valid").train_batch(0, 0, 0, 32)["auxiliary"]
    masks = auxiliary.draw_masks(config, jax.random.key(7), held_out["latents"].shape)
    predicted = task.model.apply(
        {"params": jax.device_get(state.params)}, held_out["latents"], held_out["question"],
        masks.m, deterministic=True, method=aloe_model.ALOE.predict_latents)
    loss = float(losses.auxiliary_contrastive(predicted, held_out["latents"], masks.tau))
    chance = np.log(np.prod(held_out["latents"].shape[1:3]))
    assert loss < 0.8 * chance, (loss, chance)  # Seeds 0-2: 0.62-0.63 of it.


def test_scheme_parameters_are_config_fields_settable_from_the_command_line():
    from aloe import study  # pylint: disable=g-import-not-at-top
    config = study.load_config(test_config.__file__, [
        ("auxiliary.scheme", "e"), ("auxiliary.scheme_params.buffer", "1"),
        ("auxiliary.scheme_params.target_frames", "2")])
    assert config.auxiliary.scheme_params.buffer == 1
    masks = auxiliary.draw_masks(config, jax.random.key(0), (16, 8, 4))
    hidden_frames = (~masks.m.any(axis=2)).sum(axis=1)  # buffer + targets + buffer.
    target_frames = masks.tau.any(axis=2).sum(axis=1)
    np.testing.assert_array_equal(hidden_frames, 4)
    np.testing.assert_array_equal(target_frames, 2)
    # Unset fields keep the scheme's defaults (buffer 3 on each side, 3 targets).
    config = study.load_config(test_config.__file__, [("auxiliary.scheme", "e")])
    masks = auxiliary.draw_masks(config, jax.random.key(0), (4, 12, 4))
    np.testing.assert_array_equal((~masks.m.any(axis=2)).sum(axis=1), 9)
    # A parameter the scheme does not take is an error naming it.
    config = study.load_config(test_config.__file__, [("auxiliary.scheme_params.mask_prob",
                                                       "0.3")])
    with pytest.raises(ValueError, match="mask_prob"):
        auxiliary.draw_masks(config, jax.random.key(0), (2, 8, 4))


def test_figure_configs_cover_the_paper_comparisons():
    from configs import auxiliary_study  # pylint: disable=g-import-not-at-top
    figure4 = auxiliary_study.runs("figure4")
    assert len(figure4) == 12 and len({arg for _, arg in figure4}) == 12
    seen = set()
    for _, arg in figure4:
        config = auxiliary_study.get_config(arg)
        assert config.data.labeled_fraction == 0.5 and config.auxiliary.weight == 0.01
        seen.add((config.auxiliary.scheme, config.auxiliary.loss))
        auxiliary.draw_masks(config, jax.random.key(0), (2, 25, 8))  # Valid scheme settings.
    assert seen == {(s, l) for s in "abcdef" for l in ("l2", "contrastive")}
    figure3 = [auxiliary_study.get_config(arg) for _, arg in auxiliary_study.runs("figure3", "toy")]
    assert {(c.data.labeled_fraction, c.auxiliary.weight > 0) for c in figure3} == {
        (f, a) for f in auxiliary_study.FRACTIONS for a in (True, False)}
    with pytest.raises(ValueError, match="scheme"):
        auxiliary_study.get_config("figure4/g/l2")
