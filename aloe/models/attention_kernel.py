"""The relative attention kernel of `aloe.models.transformer`, and its dropout.

Functions on arrays (no modules): Transformer-XL's sinusoidal encodings and
shift, the attention of many sequences with a hand-written backward pass, and
the counter-based dropout used by the transformer (also on the attention
weights, inside the kernel). The mathematics is in `aloe.models.transformer`.

How it is computed:
- On CPU `relative_attention` runs the attention one sequence at a time (a
  `lax.scan`), so the `[heads, N, N]` logits of a sequence stay in cache instead
  of streaming `[batch, heads, N, N]` arrays through memory several times. Its backward
  pass is written by hand (a custom VJP): it keeps only q, k, v, the output and
  the log-normaliser of each row and recomputes the logits, as FlashAttention does.
  With attention dropout the backward pass recomputes the dropout mask from
  the sequence's seeds as well.
- The shift is done without index division: the position scores are computed
  against `[0; R]`, whose first column of scores is exactly zero, i.e. the
  padded matrix of the shift; its flattened form is then sliced contiguously.
- Dropout draws its mask from a counter-based hash seeded by the caller's key
  (see `dropout`) instead of threefry, which cost more than the model's matmuls.
- Mixed precision: q, k, v, the relative keys and the biases may be bfloat16
  (the transformer's compute dtype). Every product then accumulates in float32
  (`preferred_element_type`), the logits, softmax statistics and gradient
  accumulators are float32, and the weights are cast to the compute dtype only
  as operands of the next product; outputs and gradients come back in the
  inputs' dtypes. With float32 inputs every cast is the identity.
"""

import functools
import math
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

_MASKED_LOGIT = -1e30


def _dot(spec: str, a: jax.Array, b: jax.Array) -> jax.Array:
    """`jnp.einsum(spec, a, b)` of operands in one dtype, accumulated and returned in float32."""
    return jnp.einsum(spec, a, b.astype(a.dtype), preferred_element_type=jnp.float32)


def sinusoid_encodings(length: int, width: int) -> jax.Array:
    """Transformer-XL encodings of the distances length-1, ..., 1, 0.

    Args:
      length: number of tokens N.
      width: encoding width (even).

    Returns:
      `[length, width]` float32: row `j` is `[sin(p_j f) | cos(p_j f)]` with
      `p_j = length - 1 - j` and `f = 1 / 10000^(arange(0, width, 2) / width)`.
    """
    if width % 2:
        raise ValueError(f"Sinusoid encodings need an even width, got {width}.")
    positions = jnp.arange(length - 1, -1, -1, dtype=jnp.float32)
    inv_freq = 1.0 / (10000.0 ** (jnp.arange(0, width, 2, dtype=jnp.float32) / width))
    angles = positions[:, None] * inv_freq[None, :]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


def relative_shift(x: jax.Array) -> jax.Array:
    """Transformer-XL's shift: pad a zero column, reshape, drop the first row.

    Args:
      x: `[..., N, N]` scores of query `i` against relative encoding `j`.

    Returns:
      `[..., N, N]`: entry `[i, j]` is `x[i, N-1-i+j]` for `j <= i`, zero for
      `j == i + 1` and `x[i+1, j-i-2]` for `j >= i + 2`.
    """
    *lead, q, k = x.shape
    padded = jnp.pad(x, [(0, 0)] * len(lead) + [(0, 0), (1, 0)])
    padded = padded.reshape(*lead, k + 1, q)
    return padded[..., 1:, :].reshape(*lead, q, k)


def _mix32(x: jax.Array) -> jax.Array:
    """MurmurHash3's 32-bit finaliser: a bijection with full avalanche."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def _check_size(shape: tuple[int, ...]) -> int:
    """The element count of `shape`, which the hash's uint32 counter must cover."""
    size = math.prod(shape)
    if size >= 2**32:
        raise ValueError(f"dropout supports fewer than 2^32 elements, got shape {shape}.")
    return size


def _hash_bits(shape: tuple[int, ...], seeds: jax.Array) -> jax.Array:
    """uint32 `shape`: element `n` (row-major) gets `mix(mix(n + seeds[0]) ^ seeds[1])`."""
    size = _check_size(shape)
    index = jax.lax.iota(jnp.uint32, size).reshape(shape)
    return _mix32(_mix32(index + seeds[0]) ^ seeds[1])


def _drop_threshold(rate: float) -> int:
    """The hash value below which an element is dropped, `round(rate * 2^32)`."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"Dropout rate must be in [0, 1), got {rate}.")
    return round(rate * 2**32)


def _apply_drop(x: jax.Array, rate: float, seeds: jax.Array) -> jax.Array:
    """`x` with the elements whose hash bits fall below the threshold zeroed, others rescaled.

    Args:
      x: any shape, fewer than 2^32 elements.
      rate: drop probability in [0, 1).
      seeds: uint32 `[2]`.
    """
    threshold = _drop_threshold(rate)
    if threshold == 0:
        return x
    bits = _hash_bits(x.shape, seeds)
    # The scale in (at least) float32, so that bfloat16 inputs are rounded once, after it.
    scale = jnp.asarray(2**32 / (2**32 - threshold), jnp.promote_types(x.dtype, jnp.float32))
    return jnp.where(bits >= jnp.uint32(threshold), (x * scale).astype(x.dtype),
                     jnp.zeros((), x.dtype))


def dropout(x: jax.Array, rate: float, rng: jax.Array) -> jax.Array:
    """Inverted dropout with a cheap counter-based mask.

    The caller's key (any JAX key, e.g. the default threefry one) gives two
    32-bit seeds; element `n` (row-major) gets the bits
    `mix(mix(n + seed_0) ^ seed_1)`, `mix` being MurmurHash3's finaliser, and is
    dropped when they are below `round(rate * 2^32)`. Survivors are scaled by
    the inverse of that exact keep probability. XLA fuses the hash into the
    masking, so the mask costs a few integer operations per element instead of
    a threefry evaluation.

    Args:
      x: any shape, fewer than 2^32 elements.
      rate: drop probability in [0, 1).
      rng: a JAX PRNG key (typed `jax.random.key` or raw uint32 key data).

    Returns:
      An array like `x`.
    """
    if _drop_threshold(rate) == 0:
        return x
    _check_size(x.shape)
    return _apply_drop(x, rate, jax.random.bits(rng, (2,), jnp.uint32))


# Relative attention of one sequence: q, k, v [heads, N, head_dim]; the relative
# keys with a zero row in front, rel_ext [heads, N+1, head_dim]; biases
# [heads, head_dim]; mask [N] bool; seeds uint32 [2], the sequence's dropout seeds.

def _position_queries(q, position_bias, mask):
    """q + v, zero in the rows of masked tokens: [heads, N, head_dim]."""
    return jnp.where(mask[None, :, None], q + position_bias[:, None], 0.0)


def _sequence_logits(q, k, rel_ext, content_bias, position_bias, mask):
    """Masked attention logits of one sequence, [heads, N, N]."""
    n = q.shape[1]
    content = _dot("hid,hjd->hij", q + content_bias[:, None], k)
    # Scores against [0; R]: column 0 is exactly zero, so this is relshift's padded
    # matrix; the shift is then the contiguous slice [N, N + N*N) of it, flattened.
    padded = _dot("hid,hjd->hij", _position_queries(q, position_bias, mask), rel_ext)
    position = padded.reshape(-1, n * (n + 1))[:, n:n + n * n].reshape(-1, n, n)
    return jnp.where(mask[None, None, :], content + position, _MASKED_LOGIT)


def _sequence_forward(q, k, v, rel_ext, content_bias, position_bias, mask, seeds, rate):
    """(output [heads, N, head_dim], log-normaliser [heads, N]) of one sequence.

    With `rate` > 0 the attention weights are dropped out (mask from `seeds`);
    the log-normaliser is that of the weights before dropout.
    """
    logits = _sequence_logits(q, k, rel_ext, content_bias, position_bias, mask)
    top = jnp.max(logits, axis=-1, keepdims=True)
    unnormalised = jnp.exp(logits - top)
    total = jnp.sum(unnormalised, axis=-1, keepdims=True)
    out = _dot("hij,hjd->hid", _apply_drop(unnormalised, rate, seeds).astype(v.dtype), v)
    return (out / total).astype(v.dtype), (top + jnp.log(total))[..., 0]


def _sequence_backward(q, k, v, rel_ext, content_bias, position_bias, mask, seeds, out,
                       log_norm, d_out, rate):
    """Gradients of one sequence: (d(q+u), d(q+v), dk, dv, d rel_ext).

    With attention dropout the output is `(w * m) @ v` for the weights `w` and
    the scaled keep mask `m`, recomputed from the seeds. Then
    `d logits = w * (m * d_out v^T - d_out . out)`, since
    `sum_j w_ij m_ij (d_out_i . v_j) = d_out_i . out_i`. Gradients are float32.
    """
    compute = q.dtype
    n = q.shape[1]
    logits = _sequence_logits(q, k, rel_ext, content_bias, position_bias, mask)
    weights = jnp.exp(logits - log_norm[..., None])
    # Contractions over the query axis are written as [d, i] @ [i, j] products of
    # small transposes, the layout the matmul library handles fastest.
    t = lambda a: a.transpose(0, 2, 1)
    td = lambda a, b: t(jax.lax.optimization_barrier(_dot("hdi,hij->hdj", t(a), b)))
    dv = td(d_out, _apply_drop(weights, rate, seeds).astype(compute))
    d_weights = _apply_drop(_dot("hid,hjd->hij", d_out, v), rate, seeds)
    # sum_j w_ij dw_ij = d_out_i . out_i (no extra pass over the [N, N] weights).
    d_out_dot_out = jnp.sum(d_out.astype(jnp.float32) * out.astype(jnp.float32), axis=-1,
                            keepdims=True)
    d_logits = (weights * (d_weights - d_out_dot_out)).astype(compute)
    dq_content = _dot("hij,hjd->hid", d_logits, k)
    dk = td(q + content_bias[:, None], d_logits)
    # Transpose of the flattened slice: zeros in front, back to [N, N+1].
    d_padded = jnp.pad(d_logits.reshape(-1, n * n), [(0, 0), (n, 0)]).reshape(-1, n, n + 1)
    dq_position = jnp.where(mask[None, :, None],
                            _dot("hij,hjd->hid", d_padded, rel_ext), 0.0)
    d_rel_ext = td(_position_queries(q, position_bias, mask), d_padded)
    return dq_content, dq_position, dk, dv, d_rel_ext


def _map_sequences(fn, xs: tuple, chains: int, summed: tuple = ()):
    """`fn` on every sequence of `xs` (leading axis).

    Args:
      fn: sequence -> tuple of arrays.
      xs: arrays with a leading batch axis.
      chains: 0 vectorises over the whole batch (for accelerators); >= 1 splits
        the batch into that many contiguous groups, each a sequential loop.
      summed: zeros shaped like the trailing outputs of `fn` that are summed over
        the sequences instead of stacked.

    Returns:
      The stacked outputs, then the summed ones.
    """
    if chains == 0:
        outs = jax.vmap(fn)(xs)
        stacked = outs[:len(outs) - len(summed)]
        return stacked + tuple(o.sum(axis=0) for o in outs[len(stacked):])

    def step(totals, x):
        outs = fn(x)
        stacked = outs[:len(outs) - len(summed)]
        return tuple(t + o for t, o in zip(totals, outs[len(stacked):])), stacked

    batch = xs[0].shape[0]
    bounds = np.linspace(0, batch, min(chains, batch) + 1).round().astype(int)
    parts = [jax.lax.scan(step, summed, tuple(x[a:b] for x in xs))
             for a, b in zip(bounds[:-1], bounds[1:])]
    stacked = tuple(jnp.concatenate(x, axis=0) for x in zip(*(p[1] for p in parts)))
    return stacked + tuple(sum(x) for x in zip(*(p[0] for p in parts)))


def relative_attention(q: jax.Array, k: jax.Array, v: jax.Array, rel: jax.Array,
                       content_bias: jax.Array, position_bias: jax.Array,
                       mask: jax.Array, chains: int = 1,
                       dropout_seeds: Optional[jax.Array] = None,
                       dropout_rate: float = 0.0) -> jax.Array:
    """Transformer-XL relative attention, computed sequence by sequence.

    Args:
      q: `[batch, heads, N, head_dim]` queries, already scaled by 1/sqrt(head_dim).
      k: `[batch, heads, N, head_dim]` keys.
      v: `[batch, heads, N, head_dim]` values.
      rel: `[heads, N, head_dim]` relative keys `R W_r` (row j: distance N-1-j).
      content_bias: `[heads, head_dim]` u.
      position_bias: `[heads, head_dim]` v.
      mask: `[batch, N]` bool, True for real tokens. Masked tokens are never
        attended to as keys and their rows of position scores are zero (see the
        module docstring); all True gives the unmasked formula.
      chains: >= 1: the sequences are computed one after another in this many
        independent loops (on CPU, so that a sequence's logits stay in cache;
        XLA's CPU runtime was measured to run such loops one after the other, so
        1 is the default); 0: all sequences at once (GPU / TPU).
      dropout_seeds: uint32 `[batch, 2]`, each sequence's seeds of the dropout
        mask on its attention weights (`attention_dropout_seeds` draws them);
        needed when `dropout_rate` > 0.
      dropout_rate: drop probability of every attention weight (after the
        softmax, before the weighted sum of the values; survivors are rescaled
        by 1 / keep probability). The backward pass recomputes the mask.

    Returns:
      `[batch, heads, N, head_dim]`: dropout(softmax(logits)) @ v per head.
    """
    _drop_threshold(dropout_rate)
    if dropout_seeds is None:
        if dropout_rate > 0.0:
            raise ValueError("Attention dropout (dropout_rate > 0) needs dropout_seeds.")
        dropout_seeds = jnp.zeros((q.shape[0], 2), jnp.uint32)
    _check_size(q.shape[1:3] + q.shape[2:3])
    return _relative_attention(q, k, v, rel, content_bias, position_bias, mask, chains,
                               dropout_seeds, dropout_rate)


def attention_dropout_seeds(rng: jax.Array, batch: int) -> jax.Array:
    """uint32 `[batch, 2]`: independent attention-dropout seeds per sequence from a key."""
    return jax.random.bits(rng, (batch, 2), jnp.uint32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(7, 9))
def _relative_attention(q, k, v, rel, content_bias, position_bias, mask, chains, seeds, rate):
    return _relative_attention_forward(q, k, v, rel, content_bias, position_bias, mask, chains,
                                       seeds, rate)[0]


def _relative_attention_forward(q, k, v, rel, content_bias, position_bias, mask, chains, seeds,
                                rate):
    rel_ext = jnp.pad(rel, ((0, 0), (1, 0), (0, 0)))
    out, log_norm = _map_sequences(
        lambda s: _sequence_forward(s[0], s[1], s[2], rel_ext, content_bias, position_bias,
                                    s[3], s[4], rate), (q, k, v, mask, seeds), chains)
    return out, (q, k, v, rel_ext, content_bias, position_bias, mask, seeds, out, log_norm)


def _relative_attention_backward(chains, rate, residuals, d_out):
    q, k, v, rel_ext, content_bias, position_bias, mask, seeds, out, log_norm = residuals
    dq_content, dq_position, dk, dv, d_rel_ext = _map_sequences(
        lambda s: _sequence_backward(s[0], s[1], s[2], rel_ext, content_bias, position_bias,
                                     *s[3:], rate),
        (q, k, v, mask, seeds, out, log_norm, d_out), chains,
        summed=(jnp.zeros(rel_ext.shape, jnp.float32),))
    return ((dq_content + dq_position).astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype),
            d_rel_ext[:, 1:].astype(rel_ext.dtype),
            dq_content.sum(axis=(0, 2)).astype(content_bias.dtype),
            dq_position.sum(axis=(0, 2)).astype(position_bias.dtype), None, None)


_relative_attention.defvjp(_relative_attention_forward, _relative_attention_backward)


def relative_attention_weights(q: jax.Array, k: jax.Array, rel: jax.Array,
                               content_bias: jax.Array, position_bias: jax.Array,
                               mask: jax.Array) -> jax.Array:
    """The attention weights of `relative_attention` (same arguments), [batch, heads, N, N]."""
    rel_ext = jnp.pad(rel, ((0, 0), (1, 0), (0, 0)))
    logits = jax.vmap(_sequence_logits, in_axes=(0, 0, None, None, None, 0))(
        q, k, rel_ext, content_bias, position_bias, mask)
    return jax.nn.softmax(logits, axis=-1)
