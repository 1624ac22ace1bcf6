"""The training system on toy CLEVRER latents: data parallelism, resume, NaN guard, evaluation.

Learning from the command line is tested on object states (`test_object_state_learning.py`)."""

import json
import os

import jax
import numpy as np
import pytest

from aloe import checkpointing
from aloe import evaluate
from aloe import parallel
from aloe import tasks
from aloe import train
from aloe.synthetic import toy_latents
from configs import test as test_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("toy"))
    toy_latents.write_toy_dataset(root, num_train=64, num_valid=24, seed=0)
    return root


def make_config(root, **overrides):
    config = test_config.get_config()
    config.data.root = root
    config.update_from_flattened_dict(overrides)
    return config


def _one_step(config, devices, batch, params=None, microbatches=1):
    task = tasks.build(config)
    mesh = parallel.make_mesh(devices)
    tx = train.make_optimizer(config.optimizer, config.train.steps)
    state = train.init_state(task, tx, config.seed)
    step = parallel.data_parallel(train.make_train_step(task, tx, config.seed, microbatches), mesh,
                                  in_specs=(parallel.REPLICATED, parallel.SHARDED),
                                  out_specs=(parallel.REPLICATED, parallel.REPLICATED))
    state, metrics = step(parallel.replicate(state, mesh), parallel.shard_batch(batch, mesh))
    return jax.device_get(state.params), jax.device_get(metrics), task, tx


def test_data_parallel_step_matches_one_device_and_pmap(toy_root):
    # Without dropout and augmentation the step is deterministic, so splitting the
    # global batch over 4 devices must give the parameters of 1 device.
    config = make_config(toy_root, **{"model.dropout_rate": 0.0, "train.permute_slots": False})
    task = tasks.build(config)
    batch = task.train_batch(0)
    assert len(jax.devices()) == 4
    params4, metrics4, task, tx = _one_step(config, jax.devices(), batch)
    params1, metrics1, _, _ = _one_step(config, jax.devices()[:1], batch)
    # LAMB is nearly invariant to the gradient's scale, so compare gradients too:
    # the data-parallel gradient must be the mean over devices, not their sum.
    for name in ("loss", "grad_norm"):
        np.testing.assert_allclose(metrics4[name], metrics1[name], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(params4), jax.tree.leaves(params1)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)

    # The same per-device step under jax.pmap.
    state = train.init_state(task, tx, config.seed)
    stacked = jax.tree.map(lambda x: np.stack([x] * 4), state)
    split = jax.tree.map(lambda x: x.reshape((4, x.shape[0] // 4) + x.shape[1:]), batch)
    pmapped = jax.pmap(train.make_train_step(task, tx, config.seed), axis_name=parallel.AXIS)
    pstate, pmetrics = pmapped(stacked, split)
    np.testing.assert_allclose(pmetrics["grad_norm"][0], metrics4["grad_norm"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(jax.device_get(pstate.params)), jax.tree.leaves(params4)):
        np.testing.assert_allclose(a[0], b, rtol=1e-4, atol=1e-6)


def test_a_step_in_microbatches_matches_the_whole_batch(toy_root):
    # Each device's batch in equal parts (aloe.gradients): the same gradient and step.
    config = make_config(toy_root, **{"model.dropout_rate": 0.0, "train.permute_slots": False})
    batch = tasks.build(config).train_batch(0)
    whole, whole_metrics, _, _ = _one_step(config, jax.devices()[:2], batch)
    parts, parts_metrics, _, _ = _one_step(config, jax.devices()[:2], batch, microbatches=2)
    for name in ("loss", "grad_norm", "descriptive_accuracy"):
        np.testing.assert_allclose(parts_metrics[name], whole_metrics[name], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(parts), jax.tree.leaves(whole)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_train_step_changes_parameters_and_reports_metrics(toy_root):
    config = make_config(toy_root, **{"optimizer.warmup_steps": 0})  # Warmup's step 0 has lr 0.
    task = tasks.build(config)
    params, metrics, _, _ = _one_step(config, jax.devices(), task.train_batch(0))
    initial = task.init_params(jax.random.key(config.seed))
    flat_new = dict(jax.tree_util.tree_flatten_with_path(params)[0])
    for path, before in jax.tree_util.tree_flatten_with_path(initial)[0]:
        name = jax.tree_util.keystr(path)
        if name == "['cls_token']":
            # Zero-initialised as in the release: through the shared projection's ReLU
            # at exactly 0 its first gradient is 0; it moves once the bias has moved.
            continue
        if name == "['mask_embedding']" and config.auxiliary.weight == 0:
            continue  # The release's mask vector exists but only the auxiliary loss uses it.
        assert not np.allclose(flat_new[path], before), name
    for name in ("loss", "descriptive_accuracy", "multiple_choice_per_option", "grad_norm"):
        assert np.isfinite(metrics[name]), name


def test_preempted_run_resumes_exactly(toy_root, tmp_path):
    config = make_config(toy_root, **{"train.steps": 8, "train.checkpoint_every": 3})
    full = train.train(config, str(tmp_path / "full"))

    class StopAt(checkpointing.PreemptionFlag):
        """Acts as if SIGTERM arrived during step 5."""

        def __init__(self):
            super().__init__(signals=())
            self.polls = 0

        def is_set(self):
            self.polls += 1
            return self.polls >= 5

    interrupted = str(tmp_path / "interrupted")
    stopped = train.train(config, interrupted, preemption=StopAt())
    assert int(stopped.step) == 5
    assert checkpointing.Checkpointer(interrupted, every_steps=3).all_steps() == [3, 5]
    resumed = train.train(config, interrupted)
    assert int(resumed.step) == 8
    for a, b in zip(jax.tree.leaves(jax.device_get(full.params)),
                    jax.tree.leaves(jax.device_get(resumed.params))):
        np.testing.assert_array_equal(a, b)


def test_non_finite_loss_stops_without_bad_checkpoint(toy_root, tmp_path):
    config = make_config(toy_root, **{"optimizer.learning_rate": 1e35,
                                      "optimizer.warmup_steps": 0, "train.steps": 30,
                                      "train.checkpoint_every": 1, "train.log_every": 1})
    workdir = str(tmp_path / "nan")
    with pytest.raises(FloatingPointError,
                       match=r"Non-finite loss .* at step|after step \d+ is not finite"):
        train.train(config, workdir)
    saved = checkpointing.Checkpointer(workdir, every_steps=1).all_steps()
    params, step = checkpointing.restore_params(workdir, tasks.build(config).init_params,
                                                parallel.make_mesh(), seed=config.seed)
    assert step == max(saved)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))


def test_real_sample_questions_evaluate_and_unanswered_split_gives_submission(
        clevrer_samples_dir, tmp_path):
    """The 564 real validation questions, read with generated latents and the release
    vocabulary; with answers stripped the split yields a complete submission file."""
    root = tmp_path / "store"
    (root / "valid").mkdir(parents=True)
    (root / "test").mkdir()
    with open(clevrer_samples_dir / "validation_explanatory_564.json") as f:
        scenes = json.load(f)
    rng = np.random.default_rng(0)
    for scene in scenes:
        latents = rng.normal(size=(128, 8, 16)).astype(np.float32)
        for split in ("valid", "test"):
            with open(root / split / f"{scene['scene_index']}.npz", "wb") as f:
                np.save(f, latents)
    with open(root / "valid.json", "w") as f:
        json.dump(scenes, f)
    unanswered = json.loads(json.dumps(scenes))
    for scene in unanswered:
        for question in scene["questions"]:
            for choice in question["choices"]:
                del choice["answer"]
    with open(root / "test.json", "w") as f:
        json.dump(unanswered, f)
    with open(clevrer_samples_dir / "aloe_vocab.json") as src, open(root / "vocab.json", "w") as dst:
        dst.write(src.read())

    config = make_config(str(root), **{"eval.batch_size": 64})
    task = tasks.build(config)
    params = parallel.replicate(task.init_params(jax.random.key(0)), parallel.make_mesh())
    workdir = str(tmp_path / "eval")
    results = evaluate.evaluate(config, workdir, params=params, step=0, split="valid")
    assert results["num_explanatory"] == 564 and results["num_unanswered"] == 0
    assert 0.0 <= results["explanatory_per_option"] <= 1.0

    results = evaluate.evaluate(config, workdir, params=params, step=0, split="test")
    assert results["num_unanswered"] == 564 and results["num_explanatory"] == 0
    with open(os.path.join(workdir, "predictions_test_0.json")) as f:
        submission = json.load(f)
    expected = {(s["scene_index"], q["question_id"], c["choice_id"])
                for s in scenes for q in s["questions"] for c in q["choices"]}
    got = {(s["scene_index"], q["question_id"], c["choice_id"])
           for s in submission for q in s["questions"] for c in q["choices"]}
    assert got == expected
    assert all(c["answer"] in ("correct", "wrong")
               for s in submission for q in s["questions"] for c in q["choices"])
