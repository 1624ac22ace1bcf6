"""The CATER grid: cell geometry, top-1 / top-5 / L1 metrics and the expected-L1 loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aloe.cater import grid


def test_position_to_class_follows_cater_rule():
    # col = floor(x) + 3, row = floor(y) + 3, class = row * 6 + col.
    positions = [(-3.0, -3.0), (-1.5, -3.0), (0.0, 0.0), (-0.01, 0.99), (2.99, 2.99),
                 (1.5, -0.5), (5.0, -7.0)]
    expected = [0, 1, 3 * 6 + 3, 3 * 6 + 2, 35, 2 * 6 + 4, 0 * 6 + 5]
    np.testing.assert_array_equal(grid.position_to_class(positions), expected)


def test_cell_coordinates_and_centers_round_trip():
    classes = np.arange(grid.NUM_CELLS)
    row, col = grid.cell_coordinates(classes)
    np.testing.assert_array_equal(row * 6 + col, classes)
    np.testing.assert_array_equal(grid.position_to_class(grid.cell_centers(classes)), classes)
    np.testing.assert_allclose(grid.cell_centers(7), [-1.5, -1.5])  # Row 1, column 1.
    jrow, jcol = grid.cell_coordinates(jnp.arange(36))
    np.testing.assert_array_equal(jrow, row)
    np.testing.assert_array_equal(jcol, col)


def test_cell_distances_are_manhattan():
    distances = grid.cell_distances()
    assert distances.shape == (36, 36)
    assert distances[0, 35] == 10 and distances[7, 7] == 0
    assert distances[3 * 6 + 2, 1 * 6 + 5] == 2 + 3
    np.testing.assert_array_equal(distances, distances.T)


def _one_hot_scores(order):
    """Scores whose ranking is `order` (best first), the rest below."""
    scores = np.zeros(36)
    for rank, cell in enumerate(order):
        scores[cell] = 10.0 - rank
    return scores


def test_metrics_on_hand_made_predictions():
    # Video 0: argmax = label 14.           top-1 yes, top-5 yes, L1 0.
    # Video 1: label 20 (row 3, col 2) ranked 3rd; argmax 0 (row 0, col 0): L1 3 + 2 = 5.
    # Video 2: label 35 ranked 6th; argmax 29 (row 4, col 5): L1 1.
    # Video 3: label 8 (row 1, col 2); argmax 10 (row 1, col 4): L1 2; label not in top 5.
    scores = np.stack([
        _one_hot_scores([14, 1, 2]),
        _one_hot_scores([0, 5, 20, 7]),
        _one_hot_scores([29, 1, 2, 3, 4, 35]),
        _one_hot_scores([10, 11, 12, 13, 15]),
    ])
    labels = np.array([14, 20, 35, 8])
    assert grid.top1(scores, labels) == pytest.approx(1 / 4)
    assert grid.top5(scores, labels) == pytest.approx(2 / 4)
    assert grid.l1_distance(scores, labels) == pytest.approx((0 + 5 + 1 + 2) / 4)
    # Probabilities rank the cells as the logits do.
    probs = np.asarray(jax.nn.softmax(scores))
    assert grid.top5(probs, labels) == grid.top5(scores, labels)

    moving = np.array([False, True, False, True])
    metrics = grid.cater_metrics(scores, labels, moving)
    assert metrics["num_videos"] == 4 and metrics["num_static"] == 2
    assert metrics["top1_static"] == pytest.approx(1 / 2)
    assert metrics["top1_moving"] == pytest.approx(0.0)
    assert metrics["top5_static"] == pytest.approx(1 / 2)
    assert metrics["top5_moving"] == pytest.approx(1 / 2)
    assert metrics["l1_static"] == pytest.approx((0 + 1) / 2)
    assert metrics["l1_moving"] == pytest.approx((5 + 2) / 2)
    assert metrics["l1"] == pytest.approx(2.0)

    only_static = grid.cater_metrics(scores, labels, np.zeros(4, bool))
    assert only_static["num_moving"] == 0 and "top1_moving" not in only_static
    assert only_static["top1_static"] == only_static["top1"]


def test_metrics_reject_bad_input():
    scores = np.zeros((2, 36))
    with pytest.raises(ValueError, match="labels must lie in 0..35"):
        grid.top1(scores, np.array([0, 36]))
    with pytest.raises(ValueError, match=r"scores must be \[videos, 36\]"):
        grid.top1(np.zeros((2, 35)), np.array([0, 1]))
    with pytest.raises(ValueError, match="camera_moving"):
        grid.cater_metrics(scores, np.array([0, 1]), np.zeros(3, bool))


def _expected_l1_numpy(logits, labels):
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    out = []
    for p, label in zip(probs, labels):
        r, c = divmod(int(label), 6)
        out.append(sum(p[k] * (abs(k // 6 - r) + abs(k % 6 - c)) for k in range(36)))
    return np.array(out)


def test_expected_l1_matches_numpy_and_is_zero_only_at_certainty():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 36)).astype(np.float32) * 2
    labels = np.array([0, 7, 20, 35, 14])
    np.testing.assert_allclose(grid.expected_l1_loss(jnp.asarray(logits), jnp.asarray(labels)),
                               _expected_l1_numpy(logits, labels), rtol=1e-5)
    certain = np.full((1, 36), -1e4, np.float32)
    certain[0, 9] = 1e4
    assert float(grid.expected_l1_loss(jnp.asarray(certain), jnp.array([9]))[0]) == 0.0
    uniform = grid.expected_l1_loss(jnp.zeros((1, 36)), jnp.array([0]))
    assert float(uniform[0]) == pytest.approx(grid.cell_distances()[0].mean())


def test_expected_l1_gradient_moves_probability_toward_the_true_cell():
    label = 3 * 6 + 2  # Row 3, column 2.
    logits = jnp.zeros((1, 36))
    loss = lambda x: grid.expected_l1_loss(x, jnp.array([label])).sum()
    gradient = jax.grad(loss)(logits)
    stepped = logits - 0.5 * gradient
    assert float(loss(stepped)) < float(loss(logits))
    probs = np.asarray(jax.nn.softmax(stepped))[0]
    distances = grid.cell_distances()[label]
    # Probability rises with nearness: the true cell, then its neighbours, then far cells.
    assert probs[label] > probs[distances == 1].min()
    assert probs[distances == 1].min() > probs[distances == 2].max()
    assert probs[distances == 2].min() > probs[distances >= 6].max()
    assert probs[distances == 1].min() > 1 / 36 > probs[distances >= 5].max()
