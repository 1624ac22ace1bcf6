"""The CATER localization grid: cells, metrics and the expected-distance loss.

CATER's snitch localization task (Girdhar & Ramanan 2020) divides the floor
`[-3, 3)^2` into a 6x6 grid of unit cells and asks for the cell of the snitch's
final (x, y) position: `col = floor(x) + 3`, `row = floor(y) + 3`, class
`row * 6 + col` (0..35). Predictions are scored by top-1 and top-5 accuracy and
by the L1 distance: the Manhattan distance, in cells, between the predicted
(argmax) cell and the true cell, averaged over videos. ALOE reports all three
separately for the static and the moving camera (paper Table 2).

`expected_l1_loss` is the differentiable L1 auxiliary loss of "Ours (with L1
loss)": the Manhattan distance to the true cell expected under the predicted
distribution, which (unlike cross-entropy) charges a wrong guess by how far it
is from the right cell.

Scores given to the metrics may be logits or probabilities: both rank the
cells the same way.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

GRID_SIZE = 6                # Cells per side.
NUM_CELLS = GRID_SIZE ** 2   # 36 classes.
HALF_EXTENT = 3.0            # The grid covers [-HALF_EXTENT, HALF_EXTENT)^2.

ArrayLike = Any


def position_to_class(xy: ArrayLike) -> np.ndarray:
    """int64 `[...]`: the class of each (x, y) position `[..., 2]` on the floor.

    `col = floor(x) + 3`, `row = floor(y) + 3`, each clipped to 0..5 (positions
    on or beyond the border fall in the border cells), class `row * 6 + col`.
    """
    xy = np.asarray(xy, np.float64)
    if xy.shape[-1:] != (2,):
        raise ValueError(f"positions must be [..., 2] (x, y), got shape {xy.shape}.")
    cells = np.clip(np.floor(xy) + HALF_EXTENT, 0, GRID_SIZE - 1).astype(np.int64)
    return cells[..., 1] * GRID_SIZE + cells[..., 0]


def cell_coordinates(classes: ArrayLike) -> tuple[ArrayLike, ArrayLike]:
    """`(row, col)` of classes (NumPy or JAX integer arrays of any shape)."""
    return classes // GRID_SIZE, classes % GRID_SIZE


def cell_centers(classes: ArrayLike) -> np.ndarray:
    """float64 `[..., 2]`: the (x, y) centre of each class's cell."""
    row, col = cell_coordinates(np.asarray(classes, np.int64))
    return np.stack([col, row], axis=-1) - HALF_EXTENT + 0.5


def cell_distances() -> np.ndarray:
    """int64 `[36, 36]`: Manhattan distance in cells between every two classes."""
    row, col = cell_coordinates(np.arange(NUM_CELLS))
    return np.abs(row[:, None] - row[None, :]) + np.abs(col[:, None] - col[None, :])


def _check(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validated float `[N, 36]` scores and int64 `[N]` labels."""
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape[1] != NUM_CELLS:
        raise ValueError(f"scores must be [videos, {NUM_CELLS}], got shape {scores.shape}.")
    if labels.shape != scores.shape[:1]:
        raise ValueError(f"labels must be [videos={scores.shape[0]}], got shape {labels.shape}.")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer classes, got dtype {labels.dtype}.")
    labels = labels.astype(np.int64)
    bad = (labels < 0) | (labels >= NUM_CELLS)
    if bad.any():
        raise ValueError(f"labels must lie in 0..{NUM_CELLS - 1}; got {labels[bad][:5].tolist()} "
                         f"at rows {np.flatnonzero(bad)[:5].tolist()}.")
    return scores, labels


def top_k_hits(scores: ArrayLike, labels: ArrayLike, k: int) -> np.ndarray:
    """bool `[N]`: whether the true class is among the `k` highest scores.

    Args:
      scores: `[N, 36]` logits or probabilities.
      labels: int `[N]` true classes.
      k: how many of the best-scored classes count (ties keep the lower class).
    """
    scores, labels = _check(scores, labels)
    if not 1 <= k <= NUM_CELLS:
        raise ValueError(f"k must lie in 1..{NUM_CELLS}, got {k}.")
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return (best == labels[:, None]).any(axis=1)


def l1_errors(scores: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """int64 `[N]`: Manhattan distance in cells from the argmax cell to the true cell."""
    scores, labels = _check(scores, labels)
    return cell_distances()[scores.argmax(axis=1), labels]


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def top1(scores: ArrayLike, labels: ArrayLike) -> float:
    """Top-1 accuracy of `[N, 36]` scores against `[N]` labels (NaN if N = 0)."""
    return _mean(top_k_hits(scores, labels, 1))


def top5(scores: ArrayLike, labels: ArrayLike) -> float:
    """Top-5 accuracy of `[N, 36]` scores against `[N]` labels (NaN if N = 0)."""
    return _mean(top_k_hits(scores, labels, 5))


def l1_distance(scores: ArrayLike, labels: ArrayLike) -> float:
    """Mean Manhattan distance in cells between argmax and true cells (NaN if N = 0)."""
    return _mean(l1_errors(scores, labels))


def cater_metrics(scores: ArrayLike, labels: ArrayLike,
                  camera_moving: ArrayLike) -> dict[str, float | int]:
    """Top-1, top-5 and L1 over all videos and per camera.

    Args:
      scores: `[N, 36]` logits or probabilities.
      labels: int `[N]` true classes.
      camera_moving: bool `[N]`: the video comes from the moving-camera variant.

    Returns:
      `top1`, `top5`, `l1` (all videos), the same with suffixes `_static` and
      `_moving`, and the counts `num_videos`, `num_static`, `num_moving`. The
      metrics of an empty group are left out (only its count, 0, is given).
    """
    scores, labels = _check(scores, labels)
    moving = np.asarray(camera_moving)
    if moving.shape != labels.shape:
        raise ValueError(f"camera_moving must be [videos={labels.shape[0]}], got shape "
                         f"{moving.shape}.")
    moving = moving.astype(bool)
    hits1 = top_k_hits(scores, labels, 1)
    hits5 = top_k_hits(scores, labels, 5)
    errors = l1_errors(scores, labels)
    results: dict[str, float | int] = {"num_videos": int(labels.size),
                                       "num_static": int((~moving).sum()),
                                       "num_moving": int(moving.sum())}
    for suffix, rows in (("", np.ones_like(moving)), ("_static", ~moving), ("_moving", moving)):
        if rows.any():
            results[f"top1{suffix}"] = float(hits1[rows].mean())
            results[f"top5{suffix}"] = float(hits5[rows].mean())
            results[f"l1{suffix}"] = float(errors[rows].mean())
    return results


def expected_l1_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """`[B]`: expected Manhattan distance (cells) to the true cell under softmax(logits).

    `sum_c softmax(logits)_c * (|row_c - row_y| + |col_c - col_y|)`; zero only
    when all probability is on the true cell. Its gradient moves probability
    from far cells to near ones, so a near miss costs less than a far one.

    Args:
      logits: `[B, 36]`.
      labels: int `[B]` true classes.
    """
    if logits.ndim != 2 or logits.shape[-1] != NUM_CELLS:
        raise ValueError(f"logits must be [batch, {NUM_CELLS}], got shape {logits.shape}.")
    distances = jnp.asarray(cell_distances(), logits.dtype)[labels]
    return (jax.nn.softmax(logits, axis=-1) * distances).sum(axis=-1)
