"""Transformer with Transformer-XL relative positions (Dai et al. 2019), no memory.

The attention of every layer scores a query `i` against a key `j` as

    logits[i, j] = (q_i + u) . k_j + relshift((q + v) . R^T)[i, j]

where `q = x W_q / sqrt(head_dim)`, `k = x W_k`, `u` and `v` are learned per-head
biases, and `R = r W_r` projects sinusoidal encodings `r` of the distances
N-1, N-2, ..., 0 (`[sin | cos]`, Transformer-XL's `pos_seq = arange(N-1, -1, -1)`).
`relshift` is Transformer-XL's pad-reshape-slice shift (`relative_shift`). For
`j <= i` it places the encoding of distance `i - j` at `[i, j]`; above the
diagonal it yields a zero at `j = i + 1` and row `i + 1`'s values beyond it. The
model attends bidirectionally with exactly those values, as the released model does.

Masking: a masked token (padding) is never attended to as a key. The shift
also carries row `i + 1`'s position scores into row `i` above the diagonal, which
would let a padding token's query reach its neighbour; the position scores of a
masked token's row are therefore zero. Together these make every unmasked
token's output independent of the masked tokens' contents. Without a mask the
computation is exactly the formula above.

Nothing here knows about questions or objects: the input is a sequence of
`[batch, tokens, width]` vectors and an optional token mask.

How it is computed (the mathematics above is unchanged by any of this):
- q, k and v come from one matmul; the relative keys `R W_r` are computed once
  per layer and shared by the whole batch.
- On CPU `relative_attention` runs the attention one sequence at a time (a
  `lax.scan`), so the `[heads, N, N]` logits of a sequence stay in cache instead
  of streaming `[batch, heads, N, N]` arrays through memory several times. Its backward
  pass is written by hand (a custom VJP): it keeps only q, k, v, the output and
  the log-normaliser of each row and recomputes the logits, as FlashAttention does.
- The shift is done without index division: the position scores are computed
  against `[0; R]`, whose first column of scores is exactly zero, i.e. the
  padded matrix of the shift; its flattened form is then sliced contiguously.
- Dropout draws its mask from a counter-based hash seeded by the caller's key
  (see `dropout`) instead of threefry, which cost more than the model's matmuls.
"""

import functools
import math
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

_MASKED_LOGIT = -1e30


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
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"Dropout rate must be in [0, 1), got {rate}.")
    size = math.prod(x.shape)
    if size >= 2**32:
        raise ValueError(f"dropout supports fewer than 2^32 elements, got shape {x.shape}.")
    threshold = round(rate * 2**32)
    if threshold == 0:
        return x
    seeds = jax.random.bits(rng, (2,), jnp.uint32)
    index = jax.lax.iota(jnp.uint32, size).reshape(x.shape)
    bits = _mix32(_mix32(index + seeds[0]) ^ seeds[1])
    scale = jnp.asarray(2**32 / (2**32 - threshold), x.dtype)
    return jnp.where(bits >= jnp.uint32(threshold), x * scale, jnp.zeros((), x.dtype))


class Dropout(nn.Module):
    """`dropout` as a module drawing its key from the 'dropout' rng stream."""
    rate: float

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        """x: any shape; identity when `deterministic` or the rate is 0."""
        if deterministic or self.rate == 0.0:
            return x
        return dropout(x, self.rate, self.make_rng("dropout"))


# Relative attention of one sequence: q, k, v [heads, N, head_dim]; the relative
# keys with a zero row in front, rel_ext [heads, N+1, head_dim]; biases
# [heads, head_dim]; mask [N] bool.

def _position_queries(q, position_bias, mask):
    """q + v, zero in the rows of masked tokens: [heads, N, head_dim]."""
    return jnp.where(mask[None, :, None], q + position_bias[:, None], 0.0)


def _sequence_logits(q, k, rel_ext, content_bias, position_bias, mask):
    """Masked attention logits of one sequence, [heads, N, N]."""
    n = q.shape[1]
    content = jnp.einsum("hid,hjd->hij", q + content_bias[:, None], k)
    # Scores against [0; R]: column 0 is exactly zero, so this is relshift's padded
    # matrix; the shift is then the contiguous slice [N, N + N*N) of it, flattened.
    padded = jnp.einsum("hid,hjd->hij", _position_queries(q, position_bias, mask), rel_ext)
    position = padded.reshape(-1, n * (n + 1))[:, n:n + n * n].reshape(-1, n, n)
    return jnp.where(mask[None, None, :], content + position, _MASKED_LOGIT)


def _sequence_forward(q, k, v, rel_ext, content_bias, position_bias, mask):
    """(output [heads, N, head_dim], log-normaliser [heads, N]) of one sequence."""
    logits = _sequence_logits(q, k, rel_ext, content_bias, position_bias, mask)
    top = jnp.max(logits, axis=-1, keepdims=True)
    unnormalised = jnp.exp(logits - top)
    total = jnp.sum(unnormalised, axis=-1, keepdims=True)
    out = jnp.einsum("hij,hjd->hid", unnormalised, v) / total
    return out, (top + jnp.log(total))[..., 0]


def _sequence_backward(q, k, v, rel_ext, content_bias, position_bias, mask, out, log_norm,
                       d_out):
    """Gradients of one sequence: (d(q+u), d(q+v), dk, dv, d rel_ext)."""
    n = q.shape[1]
    logits = _sequence_logits(q, k, rel_ext, content_bias, position_bias, mask)
    weights = jnp.exp(logits - log_norm[..., None])
    # Contractions over the query axis are written as [d, i] @ [i, j] products of
    # small transposes, the layout the matmul library handles fastest.
    t = lambda a: a.transpose(0, 2, 1)
    td = lambda a, b: t(jax.lax.optimization_barrier(jnp.einsum("hdi,hij->hdj", t(a), b)))
    dv = td(d_out, weights)
    d_weights = jnp.einsum("hid,hjd->hij", d_out, v)
    # sum_j w_ij dw_ij = d_out_i . out_i (no extra pass over the [N, N] weights).
    d_logits = weights * (d_weights - jnp.sum(d_out * out, axis=-1, keepdims=True))
    dq_content = jnp.einsum("hij,hjd->hid", d_logits, k)
    dk = td(q + content_bias[:, None], d_logits)
    # Transpose of the flattened slice: zeros in front, back to [N, N+1].
    d_padded = jnp.pad(d_logits.reshape(-1, n * n), [(0, 0), (n, 0)]).reshape(-1, n, n + 1)
    dq_position = jnp.where(mask[None, :, None],
                            jnp.einsum("hij,hjd->hid", d_padded, rel_ext), 0.0)
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


@functools.partial(jax.custom_vjp, nondiff_argnums=(7,))
def relative_attention(q: jax.Array, k: jax.Array, v: jax.Array, rel: jax.Array,
                       content_bias: jax.Array, position_bias: jax.Array,
                       mask: jax.Array, chains: int = 1) -> jax.Array:
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

    Returns:
      `[batch, heads, N, head_dim]`: softmax(logits) @ v per head.
    """
    return _relative_attention_forward(q, k, v, rel, content_bias, position_bias, mask,
                                       chains)[0]


def _relative_attention_forward(q, k, v, rel, content_bias, position_bias, mask, chains):
    rel_ext = jnp.pad(rel, ((0, 0), (1, 0), (0, 0)))
    out, log_norm = _map_sequences(
        lambda s: _sequence_forward(s[0], s[1], s[2], rel_ext, content_bias, position_bias,
                                    s[3]), (q, k, v, mask), chains)
    return out, (q, k, v, rel_ext, content_bias, position_bias, mask, out, log_norm)


def _relative_attention_backward(chains, residuals, d_out):
    q, k, v, rel_ext, content_bias, position_bias, mask, out, log_norm = residuals
    dq_content, dq_position, dk, dv, d_rel_ext = _map_sequences(
        lambda s: _sequence_backward(s[0], s[1], s[2], rel_ext, content_bias, position_bias,
                                     *s[3:]), (q, k, v, mask, out, log_norm, d_out), chains,
        summed=(jnp.zeros_like(rel_ext),))
    return (dq_content + dq_position, dk, dv, d_rel_ext[:, 1:],
            dq_content.sum(axis=(0, 2)), dq_position.sum(axis=(0, 2)), None)


relative_attention.defvjp(_relative_attention_forward, _relative_attention_backward)


def relative_attention_weights(q: jax.Array, k: jax.Array, rel: jax.Array,
                               content_bias: jax.Array, position_bias: jax.Array,
                               mask: jax.Array) -> jax.Array:
    """The attention weights of `relative_attention` (same arguments), [batch, heads, N, N]."""
    rel_ext = jnp.pad(rel, ((0, 0), (1, 0), (0, 0)))
    logits = jax.vmap(_sequence_logits, in_axes=(0, 0, None, None, None, 0))(
        q, k, rel_ext, content_bias, position_bias, mask)
    return jax.nn.softmax(logits, axis=-1)


class RelativeMultiHeadAttention(nn.Module):
    """Multi-head self-attention with Transformer-XL relative positions, no memory.

    Parameters: `query`, `key`, `value`, `relative_key` and `output` kernels
    `[width, width]`, all without bias (head h uses columns / rows
    `h*head_dim:(h+1)*head_dim`); `content_bias` (u) and `position_bias` (v),
    `[heads, head_dim]`.

    `chains` is passed to `relative_attention`; None picks 1 (one sequence at a
    time) on CPU and 0 (all sequences at once) on other backends.
    """
    num_heads: int
    head_dim: int
    chains: Optional[int] = None

    @nn.compact
    def __call__(self, x: jax.Array, mask: Optional[jax.Array] = None) -> jax.Array:
        """Attends every token to every (unmasked) token.

        Args:
          x: `[batch, tokens, heads*head_dim]`.
          mask: `[batch, tokens]` bool, True for real tokens. Unmasked tokens'
            outputs do not depend on masked tokens (see the module docstring);
            masked tokens still get outputs of their own. None: all real.

        Returns:
          `[batch, tokens, heads*head_dim]`. With the 'intermediates' collection
          mutable, the attention weights `[batch, heads, query, key]` are sown
          as 'attention'.
        """
        batch, length, width = x.shape
        heads, head_dim = self.num_heads, self.head_dim
        if width != heads * head_dim:
            raise ValueError(f"Input width {width} != num_heads {heads} * head_dim {head_dim}.")
        init = nn.initializers.lecun_normal()
        kernels = [self.param(name, init, (width, width), jnp.float32)
                   for name in ("query", "key", "value")]
        relative_kernel = self.param("relative_key", init, (width, width), jnp.float32)
        output_kernel = self.param("output", init, (width, width), jnp.float32)
        content_bias = self.param("content_bias", nn.initializers.zeros, (heads, head_dim),
                                  jnp.float32)
        position_bias = self.param("position_bias", nn.initializers.zeros, (heads, head_dim),
                                   jnp.float32)
        if mask is None:
            mask = jnp.ones((batch, length), bool)

        # One matmul for q, k, v; the query scale is folded into its kernel.
        kernels[0] = kernels[0] * (1.0 / math.sqrt(head_dim))
        qkv = x.reshape(batch * length, width) @ jnp.concatenate(kernels, axis=1)
        qkv = qkv.reshape(batch, length, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [batch, heads, tokens, head_dim]
        # Relative keys, once per layer for the whole batch: [heads, tokens, head_dim].
        rel = (sinusoid_encodings(length, width) @ relative_kernel).reshape(
            length, heads, head_dim).transpose(1, 0, 2)

        if self.is_mutable_collection("intermediates"):
            self.sow("intermediates", "attention", relative_attention_weights(
                q, k, rel, content_bias, position_bias, mask))
        chains = self.chains
        if chains is None:
            chains = 1 if jax.default_backend() == "cpu" else 0
        attended = relative_attention(q, k, v, rel, content_bias, position_bias, mask, chains)
        attended = attended.transpose(0, 2, 1, 3).reshape(batch * length, width)
        return (attended @ output_kernel).reshape(batch, length, width)


class RelativeTransformerBlock(nn.Module):
    """One pre-LayerNorm block: attention and a ReLU feed-forward, each residual.

    x + Dropout(Attention(LN(x))), then x + Dropout(Dense(Dropout(ReLU(Dense(LN(x)))))).
    """
    num_heads: int
    head_dim: int
    mlp_dim: int
    dropout_rate: float
    attention_chains: Optional[int] = None

    @nn.compact
    def __call__(self, x: jax.Array, mask: Optional[jax.Array], *,
                 deterministic: bool) -> jax.Array:
        """x: `[batch, tokens, width]`; mask: `[batch, tokens]` bool or None."""
        batch, length, width = x.shape
        attended = RelativeMultiHeadAttention(self.num_heads, self.head_dim,
                                              self.attention_chains, name="attention")(
            nn.LayerNorm(name="attention_norm")(x), mask)
        x = x + Dropout(self.dropout_rate)(attended, deterministic=deterministic)
        hidden = nn.LayerNorm(name="mlp_norm")(x).reshape(batch * length, width)
        hidden = nn.relu(nn.Dense(self.mlp_dim, name="mlp_hidden")(hidden))
        hidden = Dropout(self.dropout_rate)(hidden, deterministic=deterministic)
        out = nn.Dense(width, name="mlp_output")(hidden).reshape(batch, length, width)
        return x + Dropout(self.dropout_rate)(out, deterministic=deterministic)


class RelativeTransformer(nn.Module):
    """A stack of pre-LayerNorm relative-attention blocks, no final LayerNorm.

    Dropout (rate `dropout_rate`, rng stream 'dropout') sits where Transformer-XL
    puts it inside a layer: on the attention output after its projection, on the
    feed-forward hidden units after the ReLU, and on the feed-forward output,
    each before its residual addition. There is no dropout on the attention
    weights (Transformer-XL's `dropatt` = 0) and none on the input sequence or
    the positional encodings. `attention_chains`: see `RelativeMultiHeadAttention`.
    """
    num_layers: int
    num_heads: int
    head_dim: int
    mlp_dim: int
    dropout_rate: float = 0.1
    attention_chains: Optional[int] = None

    @nn.compact
    def __call__(self, x: jax.Array, mask: Optional[jax.Array] = None, *,
                 deterministic: bool) -> jax.Array:
        """Runs every block.

        Args:
          x: `[batch, tokens, num_heads*head_dim]`.
          mask: `[batch, tokens]` bool, True = real token; unmasked tokens'
            outputs do not depend on masked tokens. None: every token is real.
          deterministic: True disables dropout.

        Returns:
          `[batch, tokens, num_heads*head_dim]`.
        """
        if x.ndim != 3 or x.shape[-1] != self.num_heads * self.head_dim:
            raise ValueError(f"Expected x of shape [batch, tokens, {self.num_heads * self.head_dim}]"
                             f", got {x.shape}.")
        if mask is not None and mask.shape != x.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} != [batch, tokens] {x.shape[:2]}.")
        for layer in range(self.num_layers):
            x = RelativeTransformerBlock(self.num_heads, self.head_dim, self.mlp_dim,
                                         self.dropout_rate, self.attention_chains,
                                         name=f"layer_{layer}")(
                x, mask, deterministic=deterministic)
        return x
