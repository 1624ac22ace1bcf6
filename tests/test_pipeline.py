"""The tf.data frame pipelines, on a `cater` dataset built from mini-CATER files."""

import itertools
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from aloe.data import cater, pipeline
from aloe.synthetic import cater as cater_gen

NUM_VIDEOS, SEED, NUM_FRAMES = 7, 4, 301  # validation 2 videos, train 5


@pytest.fixture(scope="session")
def cater_root(tmp_path_factory) -> str:
    root = os.fspath(tmp_path_factory.mktemp("mini_cater"))
    cater_gen.generate_cater(root, NUM_VIDEOS, SEED, width=64, height=48, workers=2,
                             val_fraction=0.3, variants=("all_actions",), progress=False)
    return root


@pytest.fixture(scope="session")
def builder(cater_root, tmp_path_factory) -> tfds.core.DatasetBuilder:
    root = cater_root
    built = cater.Cater(data_dir=tmp_path_factory.mktemp("tfds"), config="all_actions")
    built.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(root)))
    return built


@pytest.fixture(scope="session")
def videos(builder) -> dict[str, dict[str, np.ndarray]]:
    """split -> video name -> uint8 frames [301, 64, 64, 3], decoded by TFDS itself."""
    return {split: {ex["video_name"].decode(): ex["video"]
                    for ex in tfds.as_numpy(builder.as_dataset(split=split))}
            for split in ("train", "validation")}


def _names(batch: dict) -> list[str]:
    return [n.decode() for n in batch["video_name"]]


def _as_uint8(frames: np.ndarray) -> np.ndarray:
    assert frames.dtype == np.float32 and frames.min() >= 0.0 and frames.max() <= 1.0
    return np.rint(frames * 255.0).astype(np.uint8)


# ---- Frame indices.

@pytest.mark.parametrize("total, count", [(128, 25), (301, 80)])
def test_training_frame_indices_are_sorted_distinct_in_range_and_seeded(total, count):
    draws = np.stack([pipeline.frame_indices(total, count, training=True, seed=3, position=p)
                      for p in range(300)])
    assert draws.shape == (300, count) and draws.dtype == np.int32
    assert (np.diff(draws, axis=1) > 0).all()  # sorted and distinct
    assert draws.min() == 0 and draws.max() == total - 1
    # Every frame is drawn about count / total of the time.
    share = np.bincount(draws.ravel(), minlength=total) / len(draws)
    assert np.abs(share - count / total).max() < 0.15
    again = pipeline.frame_indices(total, count, training=True, seed=3, position=17)
    np.testing.assert_array_equal(again, draws[17])
    assert len({d.tobytes() for d in draws}) == len(draws)  # new frames at every position
    for other in (dict(seed=4, position=17), dict(seed=3, position=17, process_index=1)):
        assert not np.array_equal(
            pipeline.frame_indices(total, count, training=True, **other), draws[17])


def test_evaluation_frame_indices_are_evenly_spaced():
    np.testing.assert_array_equal(pipeline.frame_indices(128, 25, training=False),
                                  np.arange(25) * 5)
    np.testing.assert_array_equal(
        pipeline.frame_indices(301, 80, training=False, seed=9, position=5), np.arange(80) * 3)
    with pytest.raises(ValueError, match="cannot take 26 frames of a 25-frame video"):
        pipeline.frame_indices(25, 26, training=True)


# ---- Video batches.

def _training_batches(builder, seed: int, steps: int = 3, **kwargs) -> list[dict]:
    batches = pipeline.video_batches(builder, "train", num_frames=80, global_batch_size=4,
                                     training=True, seed=seed, process_index=0,
                                     process_count=1, **kwargs)
    return list(itertools.islice(batches, steps))


def test_training_batches_hold_the_sampled_frames_and_replay_for_a_seed(builder, videos):
    batches = _training_batches(builder, seed=5)
    for step, batch in enumerate(batches):
        assert batch["frames"].shape == (4, 80, 64, 64, 3)
        assert batch["frame_indices"].shape == (4, 80) and batch["label"].shape == (4,)
        for row, name in enumerate(_names(batch)):
            indices = batch["frame_indices"][row]
            np.testing.assert_array_equal(indices, pipeline.frame_indices(
                NUM_FRAMES, 80, training=True, seed=5, position=step * 4 + row))
            np.testing.assert_array_equal(_as_uint8(batch["frames"][row]),
                                          videos["train"][name][indices])
    rows = np.concatenate([b["frame_indices"] for b in batches])
    assert len({r.tobytes() for r in rows}) == len(rows)  # random across steps
    replay = _training_batches(builder, seed=5)
    for first, second in zip(batches, replay):
        assert _names(first) == _names(second)
        np.testing.assert_array_equal(first["frames"], second["frames"])
    other = _training_batches(builder, seed=6)
    assert any(_names(a) != _names(b) or not np.array_equal(a["frame_indices"], b["frame_indices"])
               for a, b in zip(batches, other))


def test_evaluation_batches_visit_each_video_once_identically(builder, videos):
    def run():
        return list(pipeline.video_batches(builder, "validation", num_frames=80,
                                           global_batch_size=4, training=False,
                                           process_index=0, process_count=1))
    first, second = run(), run()
    names = [n for b in first for n in _names(b)]
    assert sorted(names) == sorted(videos["validation"])
    for a, b in zip(first, second):
        assert _names(a) == _names(b)
        np.testing.assert_array_equal(a["frames"], b["frames"])
    for batch in first:
        for row, name in enumerate(_names(batch)):
            np.testing.assert_array_equal(batch["frame_indices"][row], np.arange(80) * 3)
            np.testing.assert_array_equal(_as_uint8(batch["frames"][row]),
                                          videos["validation"][name][::3][:80])


def test_process_parts_are_disjoint_and_cover_the_split(builder, videos):
    parts = [[ex["video_name"].decode() for ex in pipeline.extraction_videos(
        builder, "train", process_index=p, process_count=2)] for p in range(2)]
    assert not set(parts[0]) & set(parts[1])
    assert sorted(parts[0] + parts[1]) == sorted(videos["train"])
    assert abs(len(parts[0]) - len(parts[1])) <= 1
    for p, part in enumerate(parts):
        # A process's training stream goes through its own part, each video once per epoch.
        stream = pipeline.video_batches(builder, "train", num_frames=25, global_batch_size=2,
                                        training=True, seed=0, process_index=p, process_count=2)
        epoch = [n for b in itertools.islice(stream, len(part)) for n in _names(b)]
        assert sorted(epoch) == sorted(part)


def test_extraction_gives_every_frame_in_order(cater_root, builder, videos):
    list_path = os.path.join(cater_root, "all_actions", "lists", "localize", "val.txt")
    with open(list_path) as f:
        labels = {name: int(label) for name, label in (line.split() for line in f)}
    seen = {}
    for example in pipeline.extraction_videos(builder, "validation", process_index=0,
                                              process_count=1):
        name = example["video_name"].decode()
        assert example["video"].shape == (NUM_FRAMES, 64, 64, 3)
        np.testing.assert_array_equal(_as_uint8(example["video"]), videos["validation"][name])
        seen[name] = int(example["label"])
    assert seen == labels


def test_global_batch_must_split_evenly_over_processes(builder):
    with pytest.raises(ValueError, match="global_batch_size 3 must be a positive multiple of "
                                         "the process count 2"):
        pipeline.video_batches(builder, "train", num_frames=25, global_batch_size=3,
                               training=True, process_index=0, process_count=2)
