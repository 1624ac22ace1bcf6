"""Row and frame selection shared by the batch pipelines."""

import numpy as np
import pytest

from aloe.data import sampling


def test_spanning_frames_include_both_ends():
    np.testing.assert_array_equal(sampling.spanning_frames(301, 5), [0, 75, 150, 225, 300])
    frames = sampling.spanning_frames(301, 80)
    assert frames[0] == 0 and frames[-1] == 300 and (np.diff(frames) > 0).all()
    np.testing.assert_array_equal(sampling.spanning_frames(301, 1), [300])
    with pytest.raises(ValueError, match="num_frames must lie in 1..301"):
        sampling.spanning_frames(301, 302)


def test_evenly_spaced_frames_follow_the_release_stride():
    np.testing.assert_array_equal(sampling.evenly_spaced_frames(128, 25), np.arange(25) * 5)


def test_sampled_frames_are_distinct_sorted_and_in_range():
    frames = sampling.sample_frames(np.random.default_rng(0), 50, 30, 10)
    assert frames.shape == (50, 10)
    assert (np.diff(frames, axis=1) > 0).all() and frames.min() >= 0 and frames.max() < 30
    # Every frame is drawn at about the same rate (10 of 30 per row).
    counts = np.bincount(sampling.sample_frames(np.random.default_rng(1), 3000, 30, 10).ravel(),
                         minlength=30)
    assert np.abs(counts / 3000 - 1 / 3).max() < 0.04


def test_strided_frames_use_the_evaluation_stride_from_every_start():
    frames = sampling.strided_frames(np.random.default_rng(2), 4000, 128, 25)
    assert frames.shape == (4000, 25)
    np.testing.assert_array_equal(np.diff(frames, axis=1), 5)  # 128 // 25
    starts = frames[:, 0]
    # Starts 0..7 (the last frame 120 + start stays below 128), each about equally often.
    np.testing.assert_array_equal(np.unique(starts), np.arange(8))
    assert np.abs(np.bincount(starts) / 4000 - 1 / 8).max() < 0.03
    np.testing.assert_array_equal(frames[starts == 0][0], sampling.evenly_spaced_frames(128, 25))
    np.testing.assert_array_equal(sampling.strided_frames(np.random.default_rng(0), 3, 25, 25),
                                  np.broadcast_to(np.arange(25), (3, 25)))
    with pytest.raises(ValueError, match="num_frames must lie in 1..128"):
        sampling.strided_frames(np.random.default_rng(0), 1, 128, 129)


def test_train_frame_samplers_by_name():
    assert sampling.train_frame_sampler("random") is sampling.sample_frames
    assert sampling.train_frame_sampler("strided") is sampling.strided_frames
    with pytest.raises(ValueError, match="train_frames must be one of"):
        sampling.train_frame_sampler("sorted")


def test_eval_frame_choices_by_name():
    strided, spanning = (sampling.eval_frame_choice(name) for name in ("strided", "spanning"))
    # 12 of 128: the release's stride stops at frame 110, spanning frames reach the last.
    np.testing.assert_array_equal(strided(128, 12), np.arange(12) * 10)
    assert spanning(128, 12)[0] == 0 and spanning(128, 12)[-1] == 127
    with pytest.raises(ValueError, match="eval_frames must be one of"):
        sampling.eval_frame_choice("random")


@pytest.mark.parametrize("num_rows, count", [(10, 3), (2, 4), (0, 2), (7, 1)])
def test_process_shares_cover_every_row_once(num_rows, count):
    shares = [sampling.ProcessShard(index, count).rows(num_rows) for index in range(count)]
    np.testing.assert_array_equal(np.concatenate(shares), np.arange(num_rows))
    sizes = [len(share) for share in shares]
    assert max(sizes) - min(sizes) <= 1


def test_local_slices_tile_the_global_batch():
    shards = [sampling.ProcessShard(index, 4) for index in range(4)]
    rows = np.arange(12)
    np.testing.assert_array_equal(np.concatenate([rows[s.local(12, "b")] for s in shards]), rows)
    with pytest.raises(ValueError, match="b = 6 must be a non-negative multiple of "
                                         "process_count = 4"):
        shards[0].local(6, "b")
    with pytest.raises(ValueError, match="process_index 4 is outside 0..3"):
        sampling.ProcessShard(4, 4)


def test_every_process_runs_enough_eval_batches_for_the_largest_share():
    shard = sampling.ProcessShard(0, 2)
    # Shares of 7 and 3 rows: 4 and 2 per process; 2 rows per process per batch.
    assert shard.num_eval_batches(4, 7, 3) == 2
    assert shard.num_eval_batches(4, 9) == 3
    with pytest.raises(ValueError, match="batch_size must be positive"):
        shard.num_eval_batches(0, 9)


@pytest.mark.parametrize("count", [1, 2, 3])
def test_eval_rows_cover_every_row_once_in_the_same_number_of_batches(count):
    shards = [sampling.ProcessShard(index, count) for index in range(count)]
    batch_size = 2 * count  # Two rows per process per batch.
    batches = [list(shard.eval_rows(batch_size, 7, 3)) for shard in shards]
    assert len({len(b) for b in batches}) == 1
    assert len(batches[0]) == shards[0].num_eval_batches(batch_size, 7, 3)
    for which, num_rows in enumerate((7, 3)):
        rows = [r for process in batches for batch in process for r in batch[which]]
        assert sorted(rows) == list(range(num_rows))
        assert all(len(batch[which]) <= 2 for process in batches for batch in process)


def test_pad_rows_fills_per_key():
    padded = sampling.pad_rows({"a": np.ones((2, 3), np.float32), "b": np.arange(2)}, 4,
                               {"b": -1})
    np.testing.assert_array_equal(padded["a"], [[1] * 3, [1] * 3, [0] * 3, [0] * 3])
    np.testing.assert_array_equal(padded["b"], [0, 1, -1, -1])
    assert padded["a"].dtype == np.float32
