"""MONet pretraining through the trainer, evaluation with ARI, and latent extraction."""

import collections
import json
import os
import pathlib

import jax
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from aloe import evaluate
from aloe import extract
from aloe import parallel
from aloe import tasks
from aloe import train
from aloe.data import clevrer
from aloe.data import latents as latents_lib
from aloe.data import vocab as vocab_lib
from aloe.synthetic import clevrer as clevrer_gen
from configs import monet_test
from configs import test as test_config

NUM_VIDEOS = 5  # Train scenes 0-2, validation 3, test 4.


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini_clevrer_monet")
    clevrer_gen.generate_clevrer(root, NUM_VIDEOS, 0, width=96, height=64, workers=2,
                                 progress=False)
    data_dir = tmp_path_factory.mktemp("tfds")
    builder = clevrer.Clevrer(data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(root)))
    return root, data_dir


def make_config(root, data_dir, **overrides):
    config = monet_test.get_config()
    config.data.data_dir = os.fspath(data_dir)
    config.data.masks_dir = os.fspath(pathlib.Path(root) / "masks")
    config.extract.out = ""
    config.extract.questions_dir = os.fspath(pathlib.Path(root) / "questions")
    config.update_from_flattened_dict(overrides)
    return config


def test_frames_come_by_step_from_the_default_frame_store(data):
    root, data_dir = data
    task = tasks.build(make_config(root, data_dir))
    in_order = [task.train_batch(s)["image"] for s in range(3)]
    assert in_order[0].shape == (8, 64, 64, 3) and in_order[0].dtype == np.float32
    assert 0.0 <= in_order[0].min() and in_order[0].max() <= 1.0
    assert not np.array_equal(in_order[0], in_order[1])
    # Written on first use, every training video, at the model's image size.
    store = pathlib.Path(data_dir) / "frame_store" / "clevrer" / "train"
    assert task.frames_root() == os.fspath(store.parent)
    written = sorted(store.iterdir())
    assert len(written) == tfds.builder("clevrer", data_dir=data_dir).info.splits[
        "train"].num_examples
    # A fresh task (a resumed run) gets the same batch of step 2 without rewriting the store.
    mtimes = [path.stat().st_mtime_ns for path in written]
    fresh = tasks.build(make_config(root, data_dir))
    np.testing.assert_array_equal(fresh.train_batch(2)["image"], in_order[2])
    assert [path.stat().st_mtime_ns for path in sorted(store.iterdir())] == mtimes


@pytest.mark.slow
def test_train_evaluate_and_extract(data, tmp_path):
    root, data_dir = data
    workdir = str(tmp_path / "monet")
    config = make_config(root, data_dir, **{"train.eval_every": 2})
    state = train.train(config, workdir)
    assert int(state.step) == 4
    # TensorBoard images at each checkpoint: input | reconstruction, and the slot masks.
    task = tasks.build(config)
    images = task.summary_images(jax.device_get(state.params), task.train_batch(0))
    assert images["monet/reconstruction"].shape == (4, 64, 128, 3)
    assert images["monet/masks"].shape == (4, 64, 4 * 64, 3)
    np.testing.assert_allclose(images["monet/reconstruction"][:, :, :64] / 255,
                               task.train_batch(0)["image"][:4], atol=1 / 255)
    tags = collections.defaultdict(list)
    for name in os.listdir(workdir):
        if name.startswith("events.out.tfevents"):
            for event in tf.compat.v1.train.summary_iterator(os.path.join(workdir, name)):
                for value in event.summary.value:
                    tags[value.tag].append((event.step, value.simple_value))
    assert {"monet/reconstruction", "monet/masks", "train/loss"} <= set(tags), tags
    # Validation every 2 steps: the evaluation's metrics (ARI included) and pictures.
    for name in ("valid/fg_ari", "valid/loss", "valid/monet/reconstruction", "valid/monet/masks"):
        assert [step for step, _ in tags[name]] == [2, 4], (name, tags[name])
    results = evaluate.evaluate(config, workdir)  # eval.split 'valid': tfds 'validation'.
    assert os.path.exists(os.path.join(workdir, "eval_valid_4.json"))
    assert tags["valid/fg_ari"][-1][1] == pytest.approx(results["fg_ari"], abs=1e-6)
    for name in ("loss", "reconstruction_mse", "fg_ari", "fg_ari_one_slot"):
        assert np.isfinite(results[name]), (name, results)
    assert results["num_frames"] == 4
    # One slot for everything scores 1 on a frame with at most one visible object
    # (one true segment) and 0 on the others.
    from aloe.tasks import monet as monet_task  # pylint: disable=g-import-not-at-top
    labels = monet_task.mask_labels(config.data.masks_dir, "validation", 3,
                                    np.arange(4) * 32, 64)
    single = [len(set(np.unique(l)) - {0}) <= 1 for l in labels]
    assert results["fg_ari_one_slot"] == pytest.approx(np.mean(single))
    assert results["multi_object_frames"] == len(single) - sum(single)
    assert ("fg_ari_multi_object" in results) == (not all(single))
    # One video: the gain is the difference of the means, with no standard error.
    assert results["fg_ari_gain"] == pytest.approx(
        results["fg_ari"] - results["fg_ari_one_slot"], abs=1e-6)
    assert np.isnan(results["fg_ari_gain_stderr"])

    # Extraction on 4 devices and on 1 give the same latents.
    outs = {}
    for devices in (4, 1):
        out = str(tmp_path / f"latents_{devices}")
        config.extract.out = out
        local = jax.local_devices
        try:
            jax.local_devices = lambda *a, **k: local(*a, **k)[:devices]
            written = extract.extract(config, workdir)
        finally:
            jax.local_devices = local
        assert written == {"train": 3, "valid": 1}
        outs[devices] = out
    for split, scenes in (("train", [0, 1, 2]), ("valid", [3])):
        store4 = latents_lib.LatentStore(outs[4], split)
        assert store4.scenes() == scenes
        for scene in scenes:
            array = store4.read(scene)
            assert array.shape == (128, 4, 8) and array.dtype == np.float32
            np.testing.assert_allclose(array, latents_lib.LatentStore(outs[1], split).read(scene),
                                       rtol=1e-5, atol=1e-5)
        assert os.path.exists(os.path.join(outs[4], f"{split}.json"))

    # An interrupted extraction resumes: existing files are kept, missing ones redone.
    config.extract.out = outs[4]
    kept = latents_lib.LatentStore(outs[4], "train").path(0)
    os.remove(latents_lib.LatentStore(outs[4], "train").path(1))
    before = os.stat(kept).st_mtime_ns
    assert extract.extract(config, workdir) == {"train": 1, "valid": 0}
    assert os.stat(kept).st_mtime_ns == before
    assert latents_lib.LatentStore(outs[4], "train").has(1)

    # ALOE evaluated on the extracted latents: answers with probabilities, and the
    # counterfactual difficulty split from the raw questions and annotations.
    vocab_lib.release_vocab().save(os.path.join(outs[4], "vocab.json"))
    aloe = test_config.get_config()
    aloe.update_from_flattened_dict({
        "data.root": outs[4], "data.num_slots": 4, "model.latent_dim": 8,
        "eval.split": "train", "eval.batch_size": 8,
        "eval.clevrer_questions": os.fspath(pathlib.Path(root) / "questions" / "train.json"),
        "eval.clevrer_annotations": os.fspath(pathlib.Path(root) / "annotations" / "train")})
    aloe_task = tasks.build(aloe)
    params = parallel.replicate(aloe_task.init_params(jax.random.key(0)), parallel.make_mesh())
    aloe_dir = str(tmp_path / "aloe")
    results = evaluate.evaluate(aloe, aloe_dir, params=params, step=0)
    shares = [results[f"counterfactual_{c}_share"] for c in ("no_collision", "descriptive", "hard")]
    assert sum(shares) == pytest.approx(1.0)
    assert 0.0 <= results["counterfactual_all_per_option"] <= 1.0
    assert results["counterfactual_all_per_option"] == pytest.approx(
        results["counterfactual_per_option"])
    with open(os.path.join(aloe_dir, "answers_train_0.json")) as f:
        answers = json.load(f)
    with open(pathlib.Path(root) / "questions" / "train.json") as f:
        expected = {(s["scene_index"], q["question_id"]) for s in json.load(f)
                    for q in s["questions"]}
    assert {(a["scene_index"], a["question_id"]) for a in answers} == expected
    for row in answers:
        if row["question_type"] == "descriptive":
            assert row["answer"] == max(row["top5"], key=row["top5"].get)
        else:
            assert all(0.0 <= c["probability_correct"] <= 1.0 for c in row["choices"])

    # The analysis commands read a scene's frames from the tfds dataset.
    from aloe.analysis import inputs as inputs_lib  # pylint: disable=g-import-not-at-top
    video = inputs_lib.tfds_video(config.data, "valid", 3)
    assert video.shape == (128, 64, 64, 3) and video.dtype == np.uint8
    stream = tasks.build(config).eval_batches("validation")
    first = next(iter(stream))["image"][0]  # Frame 0 of scene 3, the split's only video.
    np.testing.assert_allclose(video[0] / 255.0, first, atol=1e-6)


def test_summary_splits_ari_by_visible_objects():
    from aloe.tasks import monet as monet_task  # pylint: disable=g-import-not-at-top
    # 2x2 frames, background 0. A: one object split in two slots (ARI 0); B: two
    # objects segmented exactly (ARI 1); C: two objects in one slot (ARI 0).
    true = np.array([[[1, 1], [0, 0]], [[1, 1], [2, 2]], [[1, 1], [2, 2]]])
    pred = np.array([[[3, 4], [0, 0]], [[5, 5], [6, 6]], [[1, 1], [1, 1]]])
    records = {"segmentation": pred, "true_labels": true, "loss": np.zeros(3),
               "video": np.array([0, 0, 1])}
    results = monet_task.MonetTask.summarize(None, records, "", "")
    assert results["fg_ari"] == pytest.approx(1 / 3)
    assert results["fg_ari_one_slot"] == pytest.approx(1 / 3)   # A only.
    assert results["multi_object_frames"] == 2
    assert results["fg_ari_multi_object"] == pytest.approx(1 / 2)
    # Gains per frame -1, 1, 0; per video means 0 (A, B) and 0 (C).
    assert results["fg_ari_gain"] == pytest.approx(0.0)
    assert results["fg_ari_gain_stderr"] == pytest.approx(0.0)


def test_ari_gain_standard_error_is_taken_over_videos():
    from aloe.tasks import monet as monet_task  # pylint: disable=g-import-not-at-top
    # Three videos of two 2x2 frames, each frame two objects. Video gains (mean of
    # its frames' ARI minus one slot's 0): 1, 0.5 and 0.
    exact = np.array([[5, 5], [6, 6]])
    merged = np.array([[1, 1], [1, 1]])
    pred = np.stack([exact, exact, exact, merged, merged, merged])
    true = np.repeat(np.array([[[1, 1], [2, 2]]]), 6, axis=0)
    records = {"segmentation": pred, "true_labels": true, "loss": np.zeros(6),
               "video": np.array([7, 7, 8, 8, 9, 9])}
    results = monet_task.MonetTask.summarize(None, records, "", "")
    assert results["fg_ari_gain"] == pytest.approx(0.5)
    # Sample standard deviation of (1, 0.5, 0) is 0.5; over sqrt(3) videos.
    assert results["fg_ari_gain_stderr"] == pytest.approx(0.5 / np.sqrt(3))
