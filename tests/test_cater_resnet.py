"""The Table 1 reasoner variants on CATER: ResNet on a frame store, MLP and hierarchical."""

import json
import os

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from aloe import evaluate
from aloe import parallel
from aloe import tasks
from aloe.data import cater
from aloe.data import cater_latents
from aloe.data import frame_store
from aloe.synthetic import cater as cater_gen
from aloe.synthetic import toy_cater_latents
from configs import cater as cater_config
from train_helpers import assert_resnet_trained
from train_helpers import train_on_one_batch

FRAME_SIZE = 32  # A total stride of 16: 2 x 2 = 4 entities per frame.
ENTITIES = 4


@pytest.fixture(scope="module")
def frames_root(tmp_path_factory) -> str:
    """A frame store of mini-CATER (3 videos per camera, 1 in validation) at 32x32."""
    root = tmp_path_factory.mktemp("mini_cater")
    cater_gen.generate_cater(os.fspath(root), 3, 2, width=96, height=72, workers=1,
                             val_fraction=0.34, progress=False)
    data_dir = tmp_path_factory.mktemp("tfds_cater")
    for variant in cater.VARIANTS:
        cater.Cater(data_dir=data_dir, config=variant).download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(root)))
    out = os.fspath(tmp_path_factory.mktemp("cater_frames"))
    frame_store.write_frame_store(os.fspath(data_dir), [f"cater/{v}" for v in cater.VARIANTS],
                                  out, frame_size=FRAME_SIZE, progress=False)
    return out


@pytest.fixture(scope="module")
def latents_root(tmp_path_factory) -> str:
    """A toy CATER latent store: 4 train and 2 validation videos per camera, [301, 8, 16]."""
    root = tmp_path_factory.mktemp("toy_cater")
    toy_cater_latents.write_toy_cater_dataset(root, num_train=4, num_valid=2, seed=3)
    return os.fspath(root)


def variant_config(variant: str, **overrides):
    """configs/cater.py at test sizes (one block, 4 frames) with the part `variant`.

    The part at its "test" size (configs/parts.py): a reasoner, or the ResNet encoder.
    """
    config = cater_config.get_config()
    config.data.frame_size = FRAME_SIZE
    cater_config.with_part(config, variant, "test")
    config.update_from_flattened_dict({
        "data.num_frames": 4, "model.latent_dim": 16, "model.num_heads": 2,
        "model.num_layers": 1, "model.mlp_dim": 32, "model.head_hidden_dim": 32,
        "model.dropout_rate": 0.0, "optimizer.warmup_steps": 0,
        "optimizer.learning_rate": 1e-2, "train.static_batch": 4, "train.moving_batch": 4,
        "auxiliary.weight": 2.0, "auxiliary.batch": 4, "eval.batch_size": 4, **overrides})
    return config


def resnet_config(frames_root: str, **overrides):
    """The ResNet encoder on `frames_root`, its data settings valid unless overridden."""
    return variant_config("resnet", **{"data.frames_root": frames_root,
                                       "data.num_slots": ENTITIES,
                                       "train.permute_slots": False, **overrides})


def test_resnet_batches_are_frames_of_the_store(frames_root):
    task = tasks.build(resnet_config(frames_root))
    batch = task.train_batch(0)
    assert batch["latents"].shape == (8, 4, FRAME_SIZE, FRAME_SIZE, 3)
    assert batch["latents"].dtype == np.uint8
    assert batch["auxiliary"]["latents"].shape == (4, 4, FRAME_SIZE, FRAME_SIZE, 3)
    np.testing.assert_array_equal(batch["moving"], [False] * 4 + [True] * 4)
    # Every row's frames are frames of a stored video with that row's label.
    data = task.data("train")
    videos = {name: data.store.read(name) for name in data.labels.names}
    with open(os.path.join(frames_root, "train_labels.json")) as f:
        labels = json.load(f)
    for frames, label in zip(batch["latents"], batch["label"]):
        sources = [name for name, video in videos.items()
                   if all((video == frame).all(axis=(1, 2, 3)).any() for frame in frames)]
        assert sources and all(labels[name]["label"] == label for name in sources)
    params = jax.eval_shape(task.init_params, jax.random.key(0))
    assert params["resnet_entities"]["entity_projection"]["kernel"].shape[-1] == 16


def test_resnet_configuration_errors_name_the_fix(frames_root, tmp_path):
    with pytest.raises(ValueError, match="reads frames.*set --config.train.permute_slots=False"):
        tasks.build(resnet_config(frames_root, **{"train.permute_slots": True}))
    with pytest.raises(ValueError, match="num_slots = 8, but the ResNet gives 4 entities per "
                                         "32x32 frame: set --config.data.num_slots=4"):
        tasks.build(resnet_config(frames_root, **{"data.num_slots": 8}))
    with pytest.raises(ValueError, match="config.data.frames_root is empty"):
        tasks.build(resnet_config(""))
    # A frame store of another frame size: the message names the file.
    wrong = resnet_config(frames_root, **{"data.frame_size": 64, "data.num_slots": 16})
    with pytest.raises(ValueError, match=r"\.npy: frame array has 32 rows .*expected 64"):
        tasks.build(wrong).data("train")
    # The latent variants still read data.root and need it.
    with pytest.raises(ValueError, match="config.data.root is empty"):
        tasks.build(variant_config("transformer"))


@pytest.mark.slow
def test_resnet_learns_from_frames_on_four_devices_and_evaluates(frames_root, tmp_path):
    config = resnet_config(frames_root)
    task, batch, history, initial, final = train_on_one_batch(config, steps=10)
    losses = [float(m["loss"]) for m in history]
    assert all(np.isfinite(losses)), losses
    assert losses[-1] < 0.7 * losses[0], losses
    assert float(history[0]["auxiliary_loss"]) > 0
    # The task loss's gradient reaches every ResNet parameter, and training moves them.
    assert_resnet_trained(task, batch, initial, final)
    # The auxiliary targets are the ResNet's entities: doubling its final projection doubles
    # them, so the spread of the targets (the mean-prediction baseline) grows fourfold.
    doubled = jax.tree_util.tree_map_with_path(
        lambda path, x: 2 * x if "entity_projection" in jax.tree_util.keystr(path) else x,
        initial)
    baseline = jax.jit(lambda p: task.loss(p, batch, jax.random.key(1))[1]["mean_latent_error"])
    assert float(baseline(initial)) > 0
    assert float(baseline(doubled)) == pytest.approx(4 * float(baseline(initial)), rel=1e-4)
    # Evaluation reads the validation frames.
    params = parallel.replicate(final, parallel.make_mesh())
    results = evaluate.evaluate(config, str(tmp_path), params=params, step=10)
    assert results["num_videos"] == len(task.data("valid")) == 2
    assert 0.0 <= results["top1"] <= results["top5"] <= 1.0
    with open(tmp_path / "predictions_valid_10.json") as f:
        assert {p["name"] for p in json.load(f)} == set(task.data("valid").labels.names)


@pytest.mark.slow
@pytest.mark.parametrize("variant, weight", [("mlp", 0.0), ("hierarchical", 2.0)])
def test_latent_variants_train_on_cater(variant, weight, latents_root):
    config = variant_config(variant, **{"data.root": latents_root, "auxiliary.weight": weight})
    _, batch, history, _, _ = train_on_one_batch(config, steps=10)
    assert batch["latents"].shape == (8, 4, 8, 16)
    losses = [float(m["loss"]) for m in history]
    assert all(np.isfinite(losses)), losses
    assert losses[-1] < 0.9 * losses[0], losses
    assert ("auxiliary_loss" in history[0]) == (weight > 0)


def test_mlp_variant_rejects_the_auxiliary_loss(latents_root):
    task = tasks.build(variant_config("mlp", **{"data.root": latents_root}))
    with pytest.raises(ValueError, match="reasoner 'mlp' has no object outputs"):
        task.init_params(jax.random.key(0))


def test_frame_store_labels_match_cater_latents_reader(frames_root):
    labels = cater_latents.read_labels(os.path.join(frames_root, "valid_labels.json"))
    assert len(labels.names) == 2 and sorted(labels.moving.tolist()) == [False, True]
