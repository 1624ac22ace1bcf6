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

How it is computed: q, k and v come from one matmul; the relative keys `R W_r`
are computed once per layer and shared by the whole batch; the attention
itself is `aloe.models.attention_kernel` (its functions are importable from
here too).

Mixed precision (`dtype`, see `aloe.models.precision`): parameters stay
float32 and are cast to the compute dtype where they are used; the attention,
the feed-forward and the LayerNorms' outputs are computed in it (LayerNorm
statistics, logits and softmax in float32), while the residual stream stays
float32, so a block adds each branch's output to a float32 sum. The default,
float32, is the computation above exactly.

Release options (the released model's choices, off by default): a bias on the
attention output projection, LayerNorm epsilon 1e-5, dropout on the attention
weights and on the position encodings, and the release's initialisers
(`tower_init`).
"""

import math
from typing import Any, Callable, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

# The kernel's functions stay importable from here.
from aloe.models.attention_kernel import attention_dropout_seeds
from aloe.models.attention_kernel import dropout
from aloe.models.attention_kernel import relative_attention
from aloe.models.attention_kernel import relative_attention_weights
from aloe.models.attention_kernel import relative_shift  # pylint: disable=unused-import
from aloe.models.attention_kernel import sinusoid_encodings
from aloe.models.precision import compute_dtype

# Standard deviation of a unit normal truncated at two standard deviations.
_TRUNCATION_STD = .87962566103423978
Initializer = Callable[..., jax.Array]


class Dropout(nn.Module):
    """`dropout` as a module drawing its key from the 'dropout' rng stream."""
    rate: float

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        """x: any shape; identity when `deterministic` or the rate is 0."""
        if deterministic or self.rate == 0.0:
            return x
        return dropout(x, self.rate, self.make_rng("dropout"))


class TowerInit(NamedTuple):
    """Initialisers of a relative transformer's parameters (biases and norms: zeros / ones).

    Attributes:
      attention_kernel: the query, key, value and relative-key kernels `[width, width]`.
      output_kernel: the attention output projection `[width, width]`.
      relative_bias: u and v, `[heads, head_dim]`.
      mlp_kernel: both feed-forward kernels.
    """
    attention_kernel: Initializer = nn.initializers.lecun_normal()
    output_kernel: Initializer = nn.initializers.lecun_normal()
    relative_bias: Initializer = nn.initializers.zeros
    mlp_kernel: Initializer = nn.initializers.lecun_normal()


def release_relative_bias_init(key: jax.Array, shape: tuple[int, int],
                               dtype=jnp.float32) -> jax.Array:
    """Glorot-uniform u / v `[heads, head_dim]` with the fans of the release's variable.

    The release stores them as `[1, heads, 1, head_dim]`, so TensorFlow's Glorot
    limit is `sqrt(6 / (heads + heads * head_dim))`.
    """
    heads, head_dim = shape
    return nn.initializers.glorot_uniform()(key, (1, heads, 1, head_dim), dtype).reshape(shape)


# Sonnet's default `Linear` kernel: a normal of std 1/sqrt(fan_in) truncated at two std.
SONNET_LINEAR_INIT = nn.initializers.variance_scaling(_TRUNCATION_STD**2, "fan_in",
                                                      "truncated_normal")


def release_tower_init(num_layers: int) -> TowerInit:
    """The release's tower: fan-in truncated-normal variance scaling 2/sqrt(layers) for
    q, k, v, relative keys and the feed-forward; Sonnet's `Linear` default for the
    attention output; Glorot-uniform u and v."""
    scaled = nn.initializers.variance_scaling(2.0 / math.sqrt(num_layers), "fan_in",
                                              "truncated_normal")
    return TowerInit(attention_kernel=scaled, output_kernel=SONNET_LINEAR_INIT,
                     relative_bias=release_relative_bias_init, mlp_kernel=scaled)


INITIALIZATIONS = ("flax", "release")


def tower_init(initialization: str, num_layers: int) -> TowerInit:
    """`TowerInit` of an initialisation scheme (`INITIALIZATIONS`): Flax's defaults or the release's."""
    if initialization == "flax":
        return TowerInit()
    if initialization == "release":
        return release_tower_init(num_layers)
    raise ValueError(f"initialization must be one of {INITIALIZATIONS}, got {initialization!r}.")


class RelativeMultiHeadAttention(nn.Module):
    """Multi-head self-attention with Transformer-XL relative positions, no memory.

    Parameters: `query`, `key`, `value`, `relative_key` and `output` kernels
    `[width, width]` (head h uses columns / rows `h*head_dim:(h+1)*head_dim`),
    without bias except `output_bias` `[width]` when `output_bias` is set (the
    release's output projection has one); `content_bias` (u) and
    `position_bias` (v), `[heads, head_dim]`.

    Attributes:
      num_heads: heads.
      head_dim: size per head; the width is num_heads * head_dim.
      chains: passed to `relative_attention`; None picks 1 (one sequence at a
        time) on CPU and 0 (all sequences at once) on other backends.
      dropout_rate: dropout on the attention weights (the release: 0.1).
      output_bias: adds a bias to the output projection.
      init: the parameters' initialisers.
      dtype: compute dtype (a dtype or a `precision.DTYPE_NAMES` name); the
        output is in it.
    """
    num_heads: int
    head_dim: int
    chains: Optional[int] = None
    dropout_rate: float = 0.0
    output_bias: bool = False
    init: TowerInit = TowerInit()
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, mask: Optional[jax.Array] = None,
                 encodings: Optional[jax.Array] = None, *,
                 deterministic: bool = True) -> jax.Array:
        """Attends every token to every (unmasked) token.

        Args:
          x: `[batch, tokens, heads*head_dim]`.
          mask: `[batch, tokens]` bool, True for real tokens. Unmasked tokens'
            outputs do not depend on masked tokens (see the module docstring);
            masked tokens still get outputs of their own. None: all real.
          encodings: `[tokens, heads*head_dim]` relative position encodings
            (row j: distance tokens-1-j); None: `sinusoid_encodings`.
          deterministic: True disables the attention-weight dropout.

        Returns:
          `[batch, tokens, heads*head_dim]`. With the 'intermediates' collection
          mutable, the attention weights `[batch, heads, query, key]` (before
          dropout) are sown as 'attention'.
        """
        batch, length, width = x.shape
        heads, head_dim = self.num_heads, self.head_dim
        if width != heads * head_dim:
            raise ValueError(f"Input width {width} != num_heads {heads} * head_dim {head_dim}.")
        init = self.init
        kernels = [self.param(name, init.attention_kernel, (width, width), jnp.float32)
                   for name in ("query", "key", "value")]
        relative_kernel = self.param("relative_key", init.attention_kernel, (width, width),
                                     jnp.float32)
        output_kernel = self.param("output", init.output_kernel, (width, width), jnp.float32)
        content_bias = self.param("content_bias", init.relative_bias, (heads, head_dim),
                                  jnp.float32)
        position_bias = self.param("position_bias", init.relative_bias, (heads, head_dim),
                                   jnp.float32)
        if mask is None:
            mask = jnp.ones((batch, length), bool)
        if encodings is None:
            encodings = sinusoid_encodings(length, width)
        if encodings.shape != (length, width):
            raise ValueError(f"encodings shape {encodings.shape} != [tokens, width] "
                             f"{(length, width)}.")

        dtype = compute_dtype(self.dtype)
        x = x.astype(dtype)
        content_bias, position_bias = content_bias.astype(dtype), position_bias.astype(dtype)
        # One matmul for q, k, v; the query scale is folded into its kernel.
        kernels[0] = kernels[0] * (1.0 / math.sqrt(head_dim))
        qkv = x.reshape(batch * length, width) @ jnp.concatenate(kernels, axis=1).astype(dtype)
        qkv = qkv.reshape(batch, length, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [batch, heads, tokens, head_dim]
        # Relative keys, once per layer for the whole batch: [heads, tokens, head_dim].
        rel = (encodings.astype(dtype) @ relative_kernel.astype(dtype)).reshape(
            length, heads, head_dim).transpose(1, 0, 2)

        if self.is_mutable_collection("intermediates"):
            self.sow("intermediates", "attention", relative_attention_weights(
                q, k, rel, content_bias, position_bias, mask))
        chains = self.chains
        if chains is None:
            chains = 1 if jax.default_backend() == "cpu" else 0
        rate = 0.0 if deterministic else self.dropout_rate
        seeds = (attention_dropout_seeds(self.make_rng("dropout"), batch) if rate > 0.0
                 else None)
        attended = relative_attention(q, k, v, rel, content_bias, position_bias, mask, chains,
                                      seeds, rate)
        attended = attended.transpose(0, 2, 1, 3).reshape(batch * length, width)
        out = attended @ output_kernel.astype(dtype)
        if self.output_bias:
            out = out + self.param("output_bias", nn.initializers.zeros, (width,),
                                   jnp.float32).astype(dtype)
        return out.reshape(batch, length, width)


class RelativeTransformerBlock(nn.Module):
    """One pre-LayerNorm block: attention and a ReLU feed-forward, each residual.

    x + Dropout(Attention(LN(x))), then x + Dropout(Dense(Dropout(ReLU(Dense(LN(x)))))).
    `attention_dropout_rate`, `output_bias`, `init`, `dtype`: see
    `RelativeMultiHeadAttention`; `layer_norm_epsilon`: of both LayerNorms. The
    residual stream keeps the input's dtype (float32 in the models).
    """
    num_heads: int
    head_dim: int
    mlp_dim: int
    dropout_rate: float
    attention_chains: Optional[int] = None
    attention_dropout_rate: float = 0.0
    output_bias: bool = False
    layer_norm_epsilon: float = 1e-6
    init: TowerInit = TowerInit()
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, mask: Optional[jax.Array], *,
                 deterministic: bool, encodings: Optional[jax.Array] = None) -> jax.Array:
        """x: `[batch, tokens, width]`; mask: `[batch, tokens]` bool or None;
        encodings: `[tokens, width]` or None (see `RelativeMultiHeadAttention`)."""
        batch, length, width = x.shape
        attention = RelativeMultiHeadAttention(
            self.num_heads, self.head_dim, self.attention_chains,
            dropout_rate=self.attention_dropout_rate, output_bias=self.output_bias,
            init=self.init, dtype=self.dtype, name="attention")
        dtype = compute_dtype(self.dtype)
        norm = lambda name: nn.LayerNorm(epsilon=self.layer_norm_epsilon, dtype=dtype,
                                         param_dtype=jnp.float32, name=name)
        attended = attention(norm("attention_norm")(x), mask, encodings,
                             deterministic=deterministic)
        x = x + Dropout(self.dropout_rate)(attended, deterministic=deterministic)
        dense = lambda size, name: nn.Dense(size, kernel_init=self.init.mlp_kernel, dtype=dtype,
                                            param_dtype=jnp.float32, name=name)
        hidden = norm("mlp_norm")(x).reshape(batch * length, width)
        hidden = nn.relu(dense(self.mlp_dim, "mlp_hidden")(hidden))
        hidden = Dropout(self.dropout_rate)(hidden, deterministic=deterministic)
        out = dense(width, "mlp_output")(hidden).reshape(batch, length, width)
        return x + Dropout(self.dropout_rate)(out, deterministic=deterministic)


class RelativeTransformer(nn.Module):
    """A stack of pre-LayerNorm relative-attention blocks, no final LayerNorm.

    Dropout (rate `dropout_rate`, rng stream 'dropout') sits where Transformer-XL
    puts it inside a layer: on the attention output after its projection, on the
    feed-forward hidden units after the ReLU, and on the feed-forward output,
    each before its residual addition. The release adds two more, off by
    default here: `attention_dropout_rate` on the attention weights, and
    `position_dropout_rate` on the sinusoidal position encodings (one mask for
    the whole batch and every layer, as the release draws it once per call).

    Attributes:
      num_layers: blocks.
      num_heads: heads.
      head_dim: size per head.
      mlp_dim: feed-forward hidden size.
      dropout_rate: residual-branch and feed-forward dropout.
      attention_chains: see `RelativeMultiHeadAttention`.
      attention_dropout_rate: dropout on the attention weights.
      position_dropout_rate: dropout on the position encodings.
      output_bias: a bias on every attention output projection (the release's).
      layer_norm_epsilon: of every LayerNorm (Flax 1e-6; the release's Sonnet 1e-5).
      initialization: `INITIALIZATIONS`: "flax" (Flax's defaults, zero u / v)
        or "release" (`release_tower_init`).
      dtype: compute dtype of every block (see the module docstring); a dtype
        or a `precision.DTYPE_NAMES` name ("auto": per backend).
    """
    num_layers: int
    num_heads: int
    head_dim: int
    mlp_dim: int
    dropout_rate: float = 0.1
    attention_chains: Optional[int] = None
    attention_dropout_rate: float = 0.0
    position_dropout_rate: float = 0.0
    output_bias: bool = False
    layer_norm_epsilon: float = 1e-6
    initialization: str = "flax"
    dtype: Any = jnp.float32

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
        init = tower_init(self.initialization, self.num_layers)
        encodings = sinusoid_encodings(x.shape[1], x.shape[2])
        encodings = Dropout(self.position_dropout_rate)(encodings, deterministic=deterministic)
        for layer in range(self.num_layers):
            x = RelativeTransformerBlock(
                self.num_heads, self.head_dim, self.mlp_dim, self.dropout_rate,
                self.attention_chains, attention_dropout_rate=self.attention_dropout_rate,
                output_bias=self.output_bias, layer_norm_epsilon=self.layer_norm_epsilon,
                init=init, dtype=self.dtype, name=f"layer_{layer}")(
                x, mask, deterministic=deterministic, encodings=encodings)
        return x
