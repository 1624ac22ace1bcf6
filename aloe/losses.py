"""Auxiliary self-supervised losses on masked object latents, and related metrics.

The auxiliary loss of the paper (Section 2.1, Appendix A.2) is
`sum_{t,i} tau_ti * l(f(mu'_ti), mu)`, where `mu'` are the transformer's object
outputs, `f` a learned linear map (part of the model), `mu` the MONet latents and
`tau` the target mask of `aloe.masking`. Here `pred = f(mu')` and `target = mu`,
both `[batch, frames, slots, d]`, and `tau` is `[batch, frames, slots]` (nonzero =
scored). Every loss is the mean over the target tokens of the whole batch (a token
with `tau` 0 contributes nothing; no target at all gives 0, never NaN). Targets are
constants: they pass through `jax.lax.stop_gradient`, so gradients reach only the
prediction (hence `f` and the transformer).

Also here: `masked_latent_error` and `mean_baseline_latent_error`, metrics to log
beside the loss. The classification cross-entropies are optax's
(`optax.softmax_cross_entropy_with_integer_labels`,
`optax.sigmoid_binary_cross_entropy`); the CATER expected cell-distance loss is
`aloe.cater.grid.expected_l1_loss`.
"""

import jax
import jax.numpy as jnp

NEGATIVES = ("all_frames", "same_frame")
SIMILARITIES = ("dot", "cosine")
_COSINE_EPS = 1e-6


def _check_shapes(pred: jax.Array, target: jax.Array, tau: jax.Array) -> None:
    """Raises ValueError unless pred, target are `[B, T, K, d]` and tau `[B, T, K]`."""
    if pred.ndim != 4:
        raise ValueError(f"pred must be [batch, frames, slots, d], got shape {pred.shape}.")
    if target.shape != pred.shape:
        raise ValueError(f"target shape {target.shape} differs from pred shape {pred.shape}.")
    if tau.shape != pred.shape[:3]:
        raise ValueError(f"tau must be [batch, frames, slots] = {pred.shape[:3]}, "
                         f"got shape {tau.shape}.")


def _mean_over_targets(per_token: jax.Array, tau: jax.Array) -> jax.Array:
    """Mean of `per_token` `[B, T, K]` over the tokens where `tau` is nonzero (0 if none)."""
    scored = tau.astype(bool)
    total = jnp.where(scored, per_token, 0.0).sum()
    return total / jnp.maximum(scored.sum(), 1).astype(per_token.dtype)


def auxiliary_l2(pred: jax.Array, target: jax.Array, tau: jax.Array) -> jax.Array:
    """L2 auxiliary loss: squared distance to the true latent, mean over targets.

    `l = ||pred_ti - target_ti||^2` (summed over the d latent dimensions), averaged
    over all target tokens of the batch.

    Args:
      pred: predicted latents `[batch, frames, slots, d]`.
      target: true latents `[batch, frames, slots, d]` (gradient stopped).
      tau: `[batch, frames, slots]`, nonzero where the loss is computed.

    Returns:
      Scalar float32 loss; 0 when no token is a target.
    """
    _check_shapes(pred, target, tau)
    target = jax.lax.stop_gradient(target)
    squared = jnp.sum(jnp.square(pred.astype(jnp.float32) - target.astype(jnp.float32)), -1)
    return _mean_over_targets(squared, tau)


def _similarities(pred: jax.Array, target: jax.Array, negatives: str,
                  similarity: str) -> jax.Array:
    """Similarity of each prediction to each candidate latent.

    Returns:
      `[B, N, N]` with N = frames * slots for "all_frames" (flattened frame-major),
      or `[B, T, K, K]` for "same_frame"; the positive of row n is column n.
    """
    if similarity == "cosine":
        pred = pred * jax.lax.rsqrt(
            jnp.maximum(jnp.sum(jnp.square(pred), -1, keepdims=True), _COSINE_EPS**2))
        target = target * jax.lax.rsqrt(
            jnp.maximum(jnp.sum(jnp.square(target), -1, keepdims=True), _COSINE_EPS**2))
    if negatives == "same_frame":
        return jnp.einsum("btkd,btjd->btkj", pred, target)
    batch, frames, slots, dim = pred.shape
    pred = pred.reshape(batch, frames * slots, dim)
    target = target.reshape(batch, frames * slots, dim)
    return jnp.einsum("bnd,bmd->bnm", pred, target)


def auxiliary_contrastive(pred: jax.Array, target: jax.Array, tau: jax.Array, *,
                          negatives: str = "all_frames", temperature: float = 1.0,
                          similarity: str = "dot") -> jax.Array:
    """InfoNCE auxiliary loss: pick the true latent among the example's latents.

    For a target token (t, i) of example b the logits are
    `sim(pred[b,t,i], target[b,s,j]) / temperature` over the candidates (s, j):
    every token of example b ("all_frames", the paper's main formula) or the tokens
    of frame t only ("same_frame", its first variation). The positive is
    `target[b,t,i]`; every other candidate is a negative, whether or not it is a
    target and whether or not it is visible, as in the paper's sum over all (s, j).
    The loss is the softmax cross-entropy of the positive, averaged over the target
    tokens of the batch.

    Chance is ln(N) for N candidates (`frames * slots`, or `slots` for
    "same_frame"): a predictor that ignores its context settles there (exactly
    ln N when every logit is equal, e.g. dot products of predictions near 0), so
    a value near ln N early in training means nothing is learned yet. The
    logits' scale is the latents' (dot) or at most 1 / temperature (cosine): with
    cosine at temperature 1 the loss cannot fall much below ln N - 2, and a
    temperature near 0.1 is needed (tests/test_losses.py trains both).

    Args:
      pred: predicted latents `[batch, frames, slots, d]`.
      target: true latents `[batch, frames, slots, d]` (gradient stopped).
      tau: `[batch, frames, slots]`, nonzero where the loss is computed.
      negatives: "all_frames" or "same_frame".
      temperature: positive softmax temperature (the paper found about 1 best).
      similarity: "dot" (dot product) or "cosine" (dot product of unit vectors; a
        vector shorter than 1e-6 is divided by 1e-6 instead of its norm).

    Returns:
      Scalar float32 loss; 0 when no token is a target.
    """
    _check_shapes(pred, target, tau)
    if negatives not in NEGATIVES:
        raise ValueError(f"negatives must be one of {NEGATIVES}, got {negatives!r}.")
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}.")
    if isinstance(temperature, (int, float)) and not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    target = jax.lax.stop_gradient(target).astype(jnp.float32)
    logits = _similarities(pred.astype(jnp.float32), target, negatives, similarity)
    log_probs = jax.nn.log_softmax(logits / temperature, axis=-1)
    per_token = -jnp.diagonal(log_probs, axis1=-2, axis2=-1).reshape(tau.shape)
    return _mean_over_targets(per_token, tau)


AUXILIARY_LOSSES = {"l2": auxiliary_l2, "contrastive": auxiliary_contrastive}


def auxiliary_loss(kind: str, pred: jax.Array, target: jax.Array, tau: jax.Array,
                   **kwargs) -> jax.Array:
    """The auxiliary loss named by a config string.

    Args:
      kind: "l2" (`auxiliary_l2`, takes no keyword) or "contrastive"
        (`auxiliary_contrastive`, takes `negatives`, `temperature`, `similarity`).
      pred: predicted latents `[batch, frames, slots, d]`.
      target: true latents `[batch, frames, slots, d]`.
      tau: `[batch, frames, slots]`, nonzero where the loss is computed.
      **kwargs: the keyword arguments of the chosen loss.

    Returns:
      Scalar loss.

    Raises:
      ValueError: for an unknown kind or keyword.
    """
    if kind not in AUXILIARY_LOSSES:
        raise ValueError(f"unknown auxiliary loss {kind!r}; known: {sorted(AUXILIARY_LOSSES)}.")
    if kind == "l2" and kwargs:
        raise ValueError(f"the l2 auxiliary loss takes no options, got {sorted(kwargs)}.")
    allowed = {"negatives", "temperature", "similarity"}
    if kind == "contrastive" and set(kwargs) - allowed:
        raise ValueError(f"the contrastive auxiliary loss takes {sorted(allowed)}, "
                         f"got {sorted(set(kwargs) - allowed)}.")
    return AUXILIARY_LOSSES[kind](pred, target, tau, **kwargs)


def masked_latent_error(pred: jax.Array, target: jax.Array, tau: jax.Array) -> jax.Array:
    """Metric: mean squared error per latent dimension at the target tokens.

    `mean over targets of mean_d (pred - target)^2`, i.e. `auxiliary_l2 / d`. Compare
    with `mean_baseline_latent_error` (the same metric for predicting the mean
    latent) to see whether predictions use the context.

    Args:
      pred: predicted latents `[batch, frames, slots, d]`.
      target: true latents `[batch, frames, slots, d]`.
      tau: `[batch, frames, slots]`, nonzero at the tokens to score.

    Returns:
      Scalar float32; 0 when no token is a target.
    """
    _check_shapes(pred, target, tau)
    diff = pred.astype(jnp.float32) - target.astype(jnp.float32)
    return _mean_over_targets(jnp.mean(jnp.square(diff), -1), tau)


def mean_baseline_latent_error(target: jax.Array, tau: jax.Array) -> jax.Array:
    """Metric: `masked_latent_error` of predicting the batch's mean latent everywhere.

    The constant prediction is the per-dimension mean of `target` over all tokens
    of the batch (visible or not), which is what a predictor that ignores the
    context can at best learn.

    Args:
      target: true latents `[batch, frames, slots, d]`.
      tau: `[batch, frames, slots]`, nonzero at the tokens to score.

    Returns:
      Scalar float32; 0 when no token is a target.
    """
    target = target.astype(jnp.float32)
    mean = jnp.mean(target, axis=(0, 1, 2), keepdims=True)
    return masked_latent_error(jnp.broadcast_to(mean, target.shape), target, tau)

