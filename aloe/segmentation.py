"""Adjusted Rand index (ARI) of segmentations, with the foreground-only variant (FG-ARI).

The ARI of two partitions of the same `n` pixels (Hubert & Arabie 1985) compares
the pairs of pixels they put together. With the contingency table `n_ij` (pixels
with true label `i` and predicted label `j`), its row sums `a_i` and column
sums `b_j`, and `C(x) = x (x - 1) / 2`:

    index    = sum_ij C(n_ij)
    expected = sum_i C(a_i) * sum_j C(b_j) / C(n)
    maximum  = (sum_i C(a_i) + sum_j C(b_j)) / 2
    ARI      = (index - expected) / (maximum - expected)

It is 1 for identical partitions (whatever the label values), about 0 for
independent ones, and may be negative. The denominator vanishes only when both
partitions put all pixels in one segment or both make every pixel its own
segment; the partitions are then identical and the ARI is 1. With fewer than two
pixels counted there are no pairs and the ARI is undefined: NaN (use
`np.nanmean` to average).

FG-ARI (`foreground=True`) counts only the pixels whose true label is not the
background label, as is usual for object discovery (MONet, Slot Attention):
how the background is split does not matter.
"""

from typing import Any

import numpy as np


def masks_to_labels(masks: Any) -> np.ndarray:
    """Per-pixel labels from soft masks: the index of the slot with the largest mask.

    Args:
      masks: `[B, K, H, W]` or `[B, K, H, W, 1]` masks (e.g. MONet's `masks`).

    Returns:
      `[B, H * W]` int32 slot indices.
    """
    masks = np.asarray(masks)
    if masks.ndim == 5 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    if masks.ndim != 4:
        raise ValueError(f"masks must be [batch, slots, height, width(, 1)], "
                         f"got shape {masks.shape}.")
    labels = np.argmax(masks, axis=1).astype(np.int32)
    return labels.reshape(labels.shape[0], -1)


def _check_labels(name: str, labels: Any) -> np.ndarray:
    """`labels` as a `[B, pixels]` array of non-negative integers, or a ValueError naming it."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"{name} must be [batch, pixels], got shape {labels.shape}.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must hold integer labels, got dtype {labels.dtype}.")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name} must hold non-negative labels, got {labels.min()}.")
    return labels


def _pairs(counts: np.ndarray) -> np.ndarray:
    """`C(x) = x (x - 1) / 2` of integer counts, as int64."""
    counts = counts.astype(np.int64)
    return counts * (counts - 1) // 2


def contingency_tables(true_labels: np.ndarray, pred_labels: np.ndarray,
                       weights: np.ndarray) -> np.ndarray:
    """Per-image contingency tables of two labelings.

    Args:
      true_labels: `[B, N]` non-negative integers.
      pred_labels: `[B, N]` non-negative integers.
      weights: `[B, N]` 0/1 integers: which pixels are counted.

    Returns:
      `[B, T, P]` int64 counts, `T` and `P` the numbers of distinct label values
      in the whole batch (values are renumbered in increasing order).
    """
    _, true_ids = np.unique(true_labels, return_inverse=True)
    _, pred_ids = np.unique(pred_labels, return_inverse=True)
    true_ids = true_ids.reshape(true_labels.shape)
    pred_ids = pred_ids.reshape(pred_labels.shape)
    num_true, num_pred = int(true_ids.max()) + 1, int(pred_ids.max()) + 1
    batch = true_labels.shape[0]
    cells = (np.arange(batch)[:, None] * num_true + true_ids) * num_pred + pred_ids
    counts = np.bincount(cells.ravel(), weights=weights.ravel(),
                         minlength=batch * num_true * num_pred)
    return np.rint(counts).astype(np.int64).reshape(batch, num_true, num_pred)


def adjusted_rand_index(true_labels: Any, pred_labels: Any, *, foreground: bool = False,
                        background_label: int = 0) -> np.ndarray:
    """ARI of each image's predicted segmentation against its true one.

    Args:
      true_labels: `[B, pixels]` non-negative integer labels (e.g. the renderer's
        masks: 0 floor, 1..n objects), flattened per image.
      pred_labels: `[B, pixels]` non-negative integer labels (e.g.
        `masks_to_labels(outputs.masks)`).
      foreground: count only pixels whose true label is not `background_label`
        (FG-ARI).
      background_label: the true label of the background.

    Returns:
      `[B]` float64 ARI per image; NaN where fewer than two pixels are counted.
    """
    true_labels = _check_labels("true_labels", true_labels)
    pred_labels = _check_labels("pred_labels", pred_labels)
    if true_labels.shape != pred_labels.shape:
        raise ValueError(f"true_labels {true_labels.shape} and pred_labels "
                         f"{pred_labels.shape} must have the same shape.")
    if true_labels.shape[0] == 0:
        return np.zeros((0,), np.float64)
    if true_labels.shape[1] == 0:
        return np.full((true_labels.shape[0],), np.nan)
    if foreground:
        weights = (true_labels != background_label).astype(np.int64)
    else:
        weights = np.ones(true_labels.shape, np.int64)
    table = contingency_tables(true_labels, pred_labels, weights)
    num_pixels = table.sum(axis=(1, 2))
    index = _pairs(table).sum(axis=(1, 2))
    true_pairs = _pairs(table.sum(axis=2)).sum(axis=1)
    pred_pairs = _pairs(table.sum(axis=1)).sum(axis=1)
    all_pairs = _pairs(num_pixels)
    # The denominator is zero exactly when both partitions are one segment or both
    # are all singletons (then they are identical); integer tests avoid rounding.
    degenerate = (true_pairs == pred_pairs) & ((true_pairs == all_pairs) | (true_pairs == 0))
    safe_pairs = np.maximum(all_pairs, 1).astype(np.float64)
    expected = true_pairs.astype(np.float64) * pred_pairs / safe_pairs
    maximum = 0.5 * (true_pairs + pred_pairs).astype(np.float64)
    denominator = np.where(degenerate, 1.0, maximum - expected)
    ari = np.where(degenerate, 1.0, (index - expected) / denominator)
    return np.where(num_pixels < 2, np.nan, ari)
