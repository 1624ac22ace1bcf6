"""Tests of the adjusted Rand index against a direct pair-counting computation."""

import itertools

import numpy as np
import pytest

from aloe import segmentation


def pair_counting_ari(true: np.ndarray, pred: np.ndarray) -> float:
    """ARI of two 1-D labelings from the 2x2 table of all pixel pairs (float64).

    With n11 pairs together in both, n10 together only in `true`, n01 only in
    `pred` and n00 in neither, ARI = 2 (n11 n00 - n10 n01) /
    ((n11 + n10)(n10 + n00) + (n11 + n01)(n01 + n00)).
    """
    n11 = n10 = n01 = n00 = 0
    for i, j in itertools.combinations(range(len(true)), 2):
        same_true, same_pred = true[i] == true[j], pred[i] == pred[j]
        n11 += same_true and same_pred
        n10 += same_true and not same_pred
        n01 += same_pred and not same_true
        n00 += not same_true and not same_pred
    denominator = (n11 + n10) * (n10 + n00) + (n11 + n01) * (n01 + n00)
    if len(true) < 2:
        return float("nan")
    if denominator == 0:
        return 1.0
    return 2.0 * (n11 * n00 - n10 * n01) / denominator


def test_matches_pair_counting_on_random_labelings():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, size=(30, 12))
    pred = rng.integers(0, 3, size=(30, 12))
    pred[:10] = true[:10] % 2  # some correlated cases as well
    pred[10:13] = 0  # one predicted segment
    true[13:15] = np.arange(12)  # every pixel its own segment
    ari = segmentation.adjusted_rand_index(true, pred)
    expected = [pair_counting_ari(t, p) for t, p in zip(true, pred)]
    np.testing.assert_allclose(ari, expected, rtol=1e-12, atol=1e-12)


def test_foreground_matches_pair_counting_on_foreground_pixels():
    rng = np.random.default_rng(1)
    true = rng.integers(0, 4, size=(30, 15))
    pred = rng.integers(0, 4, size=(30, 15))
    ari = segmentation.adjusted_rand_index(true, pred, foreground=True)
    expected = [pair_counting_ari(t[t != 0], p[t != 0]) for t, p in zip(true, pred)]
    np.testing.assert_allclose(ari, expected, rtol=1e-12, atol=1e-12)


def test_hand_worked_cases():
    ari = segmentation.adjusted_rand_index(
        [[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 2, 2]],
        [[0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 0, 0], [5, 5, 3, 3, 9, 9]])
    # Row 0: index 2, expected 6 * 3 / 15 = 1.2, maximum 4.5 -> 0.8 / 3.3 = 8/33.
    # Row 1: one predicted segment -> index = expected -> 0.
    # Row 2: the same partition with other label values -> 1.
    np.testing.assert_allclose(ari, [8 / 33, 0.0, 1.0], rtol=1e-12)


def test_identical_partitions_and_label_permutations_score_one():
    rng = np.random.default_rng(2)
    true = rng.integers(0, 5, size=(6, 40))
    permutation = rng.permutation(5)
    np.testing.assert_array_equal(segmentation.adjusted_rand_index(true, true), 1.0)
    np.testing.assert_allclose(segmentation.adjusted_rand_index(true, permutation[true] + 7),
                               1.0, rtol=1e-12)
    pred = rng.integers(0, 3, size=(6, 40))
    np.testing.assert_allclose(segmentation.adjusted_rand_index(true, pred),
                               segmentation.adjusted_rand_index(permutation[true], pred),
                               rtol=1e-12)


def test_foreground_ignores_how_the_background_is_split():
    true = np.array([[0, 0, 0, 0, 1, 1, 2, 2]])
    good_objects = np.array([[3, 4, 5, 6, 1, 1, 2, 2]])
    assert segmentation.adjusted_rand_index(true, good_objects, foreground=True)[0] == 1.0
    assert segmentation.adjusted_rand_index(true, good_objects)[0] < 1.0
    np.testing.assert_allclose(
        segmentation.adjusted_rand_index(true + 1, good_objects, foreground=True,
                                         background_label=1), 1.0)


def test_fewer_than_two_counted_pixels_is_nan():
    ari = segmentation.adjusted_rand_index([[0, 0, 0], [0, 0, 1]], [[1, 2, 3], [1, 2, 3]],
                                           foreground=True)
    assert np.isnan(ari).all()


def test_degenerate_partitions():
    ari = segmentation.adjusted_rand_index([[1, 1, 1, 1], [0, 1, 2, 3], [1, 1, 1, 1]],
                                           [[2, 2, 2, 2], [3, 2, 1, 0], [0, 1, 2, 3]])
    np.testing.assert_allclose(ari, [1.0, 1.0, 0.0])
    np.testing.assert_allclose(ari[2], pair_counting_ari(np.ones(4), np.arange(4)))


def test_masks_to_labels_takes_the_largest_mask():
    masks = np.zeros((2, 3, 2, 2, 1))
    masks[0, 2, 0, 1] = 1.0
    masks[1, 1] = 0.5
    labels = segmentation.masks_to_labels(masks)
    np.testing.assert_array_equal(labels, [[0, 2, 0, 0], [1, 1, 1, 1]])


@pytest.mark.parametrize("true, pred, message", [
    ([[0, 1]], [[0, 1, 2]], "same shape"),
    ([0, 1], [0, 1], "true_labels must be \\[batch, pixels\\]"),
    ([[0.0, 1.0]], [[0, 1]], "true_labels must hold integer"),
    ([[0, 1]], [[0, -1]], "pred_labels must hold non-negative"),
])
def test_bad_input_is_rejected(true, pred, message):
    with pytest.raises(ValueError, match=message):
        segmentation.adjusted_rand_index(np.array(true), np.array(pred))
