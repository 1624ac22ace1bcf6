"""Tests of the auxiliary losses and latent metrics against independent NumPy loops."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aloe import losses

B, T, K, D = 2, 3, 4, 5
CONTRASTIVE_VARIANTS = list(itertools.product(
    ["all_frames", "same_frame"], ["dot", "cosine"], [1.0, 0.1]))


@pytest.fixture(scope="module")
def inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pred, target [B, T, K, D] float32 and tau [B, T, K] bool with ~half the tokens."""
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(B, T, K, D)).astype(np.float32)
    target = rng.normal(size=(B, T, K, D)).astype(np.float32)
    tau = rng.random((B, T, K)) < 0.5
    tau[0, 0, 0] = True
    return pred, target, tau


def numpy_l2(pred, target, tau) -> float:
    total, count = 0.0, 0
    for b, t, k in zip(*np.nonzero(tau)):
        total += float(np.sum((pred[b, t, k].astype(np.float64) - target[b, t, k]) ** 2))
        count += 1
    return total / count if count else 0.0


def numpy_contrastive(pred, target, tau, negatives, similarity, temperature) -> float:
    """Explicit per-token InfoNCE in float64."""
    def sim(x, y):
        x, y = x.astype(np.float64), y.astype(np.float64)
        if similarity == "cosine":
            return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))
        return float(x @ y)

    total, count = 0.0, 0
    for b, t, k in zip(*np.nonzero(tau)):
        if negatives == "all_frames":
            candidates = [(s, j) for s in range(T) for j in range(K)]
        else:
            candidates = [(t, j) for j in range(K)]
        logits = np.array([sim(pred[b, t, k], target[b, s, j]) / temperature
                           for s, j in candidates])
        positive = logits[candidates.index((t, k))]
        top = logits.max()
        total += float(top + np.log(np.exp(logits - top).sum()) - positive)
        count += 1
    return total / count if count else 0.0


def test_l2_matches_numpy(inputs):
    pred, target, tau = inputs
    np.testing.assert_allclose(losses.auxiliary_l2(pred, target, tau),
                               numpy_l2(pred, target, tau), rtol=1e-5)
    np.testing.assert_allclose(losses.auxiliary_loss("l2", pred, target, tau.astype(np.float32)),
                               numpy_l2(pred, target, tau), rtol=1e-5)


@pytest.mark.parametrize("negatives,similarity,temperature", CONTRASTIVE_VARIANTS)
def test_contrastive_matches_numpy(inputs, negatives, similarity, temperature):
    pred, target, tau = inputs
    options = dict(negatives=negatives, similarity=similarity, temperature=temperature)
    expected = numpy_contrastive(pred, target, tau, negatives, similarity, temperature)
    np.testing.assert_allclose(losses.auxiliary_contrastive(pred, target, tau, **options),
                               expected, rtol=1e-4)
    np.testing.assert_allclose(losses.auxiliary_loss("contrastive", pred, target, tau, **options),
                               expected, rtol=1e-4)


def test_contrastive_is_low_when_prediction_is_the_target(inputs):
    _, target, tau = inputs
    options = dict(negatives="all_frames", similarity="cosine", temperature=0.05)
    exact = float(losses.auxiliary_contrastive(target, target, tau, **options))
    assert exact < 0.5 < np.log(T * K)  # chance level is log(12) = 2.48


LOSS_FUNCTIONS = [("l2", {})] + [
    ("contrastive", dict(negatives=n, similarity=s, temperature=t))
    for n, s, t in CONTRASTIVE_VARIANTS]


@pytest.mark.parametrize("kind,options", LOSS_FUNCTIONS)
def test_gradients_reach_only_the_prediction(inputs, kind, options):
    pred, target, tau = inputs
    grad_pred, grad_target = jax.grad(
        lambda p, t: losses.auxiliary_loss(kind, p, t, tau, **options), argnums=(0, 1))(
            jnp.asarray(pred), jnp.asarray(target))
    np.testing.assert_array_equal(grad_target, 0.0)
    scored = np.abs(np.asarray(grad_pred)).sum(-1) > 0
    # Exactly the target tokens' predictions receive gradient.
    np.testing.assert_array_equal(scored, tau)


@pytest.mark.parametrize("kind,options", LOSS_FUNCTIONS)
def test_tokens_that_are_not_targets_do_not_matter(inputs, kind, options):
    pred, target, tau = inputs
    noise = np.random.default_rng(1).normal(size=pred.shape).astype(np.float32) * 10
    off = ~tau[..., None]
    base = losses.auxiliary_loss(kind, pred, target, tau, **options)
    moved_pred = losses.auxiliary_loss(kind, pred + off * noise, target, tau, **options)
    np.testing.assert_allclose(moved_pred, base, rtol=1e-6)
    inf_pred = losses.auxiliary_loss(kind, np.where(off, np.inf, pred), target, tau, **options)
    np.testing.assert_allclose(inf_pred, base, rtol=1e-6)
    moved_target = losses.auxiliary_loss(kind, pred, target + off * noise, tau, **options)
    if kind == "l2":
        np.testing.assert_allclose(moved_target, base, rtol=1e-6)
    elif options["negatives"] == "all_frames":
        # Every latent of the example is a negative, targets or not.
        assert abs(float(moved_target) - float(base)) > 1e-3


@pytest.mark.parametrize("kind,options", LOSS_FUNCTIONS)
def test_no_targets_gives_zero_and_finite_gradient(inputs, kind, options):
    pred, target, _ = inputs
    tau = np.zeros((B, T, K), bool)
    value, grad = jax.value_and_grad(
        lambda p: losses.auxiliary_loss(kind, p, target, tau, **options))(jnp.asarray(pred))
    assert float(value) == 0.0
    np.testing.assert_array_equal(grad, 0.0)


def test_latent_error_metrics(inputs):
    pred, target, tau = inputs
    np.testing.assert_allclose(losses.masked_latent_error(pred, target, tau),
                               numpy_l2(pred, target, tau) / D, rtol=1e-5)
    mean = target.astype(np.float64).reshape(-1, D).mean(0)
    expected = np.mean([np.mean((mean - target[b, t, k]) ** 2)
                        for b, t, k in zip(*np.nonzero(tau))])
    baseline = losses.mean_baseline_latent_error(target, tau)
    np.testing.assert_allclose(baseline, expected, rtol=1e-5)
    # Predicting the truth beats the mean; the metric is zero there.
    assert float(losses.masked_latent_error(target, target, tau)) == 0.0
    assert float(baseline) > 0.5


def test_bad_arguments(inputs):
    pred, target, tau = inputs
    with pytest.raises(ValueError, match="unknown auxiliary loss 'l1'"):
        losses.auxiliary_loss("l1", pred, target, tau)
    with pytest.raises(ValueError, match="takes no options"):
        losses.auxiliary_loss("l2", pred, target, tau, temperature=1.0)
    with pytest.raises(ValueError, match="got \\['temp'\\]"):
        losses.auxiliary_loss("contrastive", pred, target, tau, temp=1.0)
    with pytest.raises(ValueError, match="negatives must be one of"):
        losses.auxiliary_contrastive(pred, target, tau, negatives="same_example")
    with pytest.raises(ValueError, match="similarity must be one of"):
        losses.auxiliary_contrastive(pred, target, tau, similarity="l2")
    with pytest.raises(ValueError, match="temperature must be > 0"):
        losses.auxiliary_contrastive(pred, target, tau, temperature=0.0)
    with pytest.raises(ValueError, match="tau must be \\[batch, frames, slots\\]"):
        losses.auxiliary_l2(pred, target, tau[:, :2])
    with pytest.raises(ValueError, match="differs from pred shape"):
        losses.auxiliary_l2(pred, target[..., :3], tau)


@pytest.mark.parametrize("similarity,temperature,floor", [
    ("dot", 1.0, 0.6), ("cosine", 0.1, 0.1), ("cosine", 1.0, 0.9)])
def test_contrastive_trains_a_predictor_below_chance(similarity, temperature, floor):
    # A linear map of noisy copies learns to pick its latent among 96 candidates. At
    # the start (dot products of near-0 predictions) the loss is ln(96), chance, the
    # value a prediction that ignores its input settles at; training goes far
    # below it, except that cosine logits lie in [-1, 1] / temperature, so at
    # temperature 1 the loss cannot fall much under ln(96) - 2 (the third case).
    batch, frames, slots, dim = 4, 12, 8, 16
    target = 0.25 * jax.random.normal(jax.random.key(0), (batch, frames, slots, dim))
    inputs = target + 0.05 * jax.random.normal(jax.random.key(1), target.shape)
    tau = jnp.ones(target.shape[:3], bool)
    loss = lambda w: losses.auxiliary_contrastive(inputs @ w, target, tau,
                                                  similarity=similarity, temperature=temperature)
    weights = 1e-3 * jax.random.normal(jax.random.key(2), (dim, dim))
    chance = np.log(frames * slots)
    if similarity == "dot":  # Cosine normalises even tiny predictions.
        np.testing.assert_allclose(loss(weights), chance, atol=0.02)
    tx = optax.adam(1e-2)
    state = tx.init(weights)
    step = jax.jit(jax.value_and_grad(loss))
    for _ in range(300):
        value, grad = step(weights)
        updates, state = tx.update(grad, state)
        weights = optax.apply_updates(weights, updates)
    assert loss(weights) < floor * chance, float(loss(weights))
    if similarity == "cosine" and temperature == 1.0:
        assert loss(weights) > chance - 2.0 / temperature
