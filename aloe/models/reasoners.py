"""Reasoners: one interface from tokens to the outputs the heads read.

A reasoner maps raw `d + 2` tokens `[B, N, d+2]` laid out as `[CLS, words,
objects]` (`aloe.models.tokens`), their mask `[B, N]` (True = real token; None:
every token real) and their `TokenLayout` to

- a CLS-role vector `[B, width]`, read by the answer heads, and
- object outputs `[B, T, K, width]`, read by the latent prediction f of the
  auxiliary loss, or None for a reasoner that has none (`has_object_outputs`).

`width` is `num_heads * head_dim` (the paper: `head_dim = d + 2`). Three reasoners
implement it, the rows of the paper's Table 1 (modules in `aloe.models.ablations`):

- `RelativeTransformerReasoner` (ALOE): one shared `Dense(width)` lifts every
  token (ReLU after dropout, as the release's input MLP) and a relative
  transformer (`aloe.models.transformer`) attends globally.
- `HierarchicalTransformerReasoner`: the same projection; then attention within
  each frame with the words, and across frame vectors (`HierarchicalReasoner`).
  It honours the block count it is given: `num_layers // 2` blocks in the
  within-frame transformer and the rest in the across-frame one (at least one
  each; `hierarchical_layers`), so 26 gives the paper budget's 13 + 13. Its
  object outputs are the stage-1 object outputs: a hidden object is then
  predicted from the words and the other objects of its own frame only.
- `MLPTokenReasoner`: fully connected layers over the flattened raw tokens (no
  projection, `MLPReasoner`). The token count is baked into its first layer,
  and it has no object outputs.

`needs_one_layout()` says whether every sequence of one pass must have the same
layout (the MLP, and the hierarchical reasoner when a frame vector holds the
words). A model shares its scope with its reasoner (`flax.linen.share_scope`),
so the parameter names are `token_projection`, `transformer`,
`hierarchical_reasoner` and `mlp_reasoner` at the model's top level.
"""

from typing import Any, ClassVar, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from aloe.models import ablations
from aloe.models import tokens as tokens_lib
from aloe.models import transformer

Outputs = tuple[jax.Array, Optional[jax.Array]]


def hierarchical_layers(num_layers: int) -> tuple[int, int]:
    """(within-frame, across-frame) blocks of a hierarchical reasoner of `num_layers` blocks."""
    if num_layers < 1:
        raise ValueError(f"num_layers must be at least 1, got {num_layers}.")
    frame = num_layers // 2
    return max(1, frame), max(1, num_layers - frame)


def _check(tokens: jax.Array, mask: Optional[jax.Array], layout: tokens_lib.TokenLayout
           ) -> None:
    expected = 1 + layout.num_words + layout.frames * layout.slots
    if tokens.ndim != 3 or tokens.shape[1] != expected:
        raise ValueError(f"tokens must be [batch, {expected}, token_dim] for {layout}, got shape "
                         f"{tokens.shape}.")
    if mask is not None and mask.shape != tokens.shape[:2]:
        raise ValueError(f"mask must be [batch, tokens] = {tokens.shape[:2]}, got shape "
                         f"{mask.shape}.")


class _ProjectedTokens(nn.Module):
    """Shared by the attention reasoners: `ReLU(Dropout(Dense(width)))` of the raw tokens."""
    num_heads: int
    head_dim: int
    dropout_rate: float = 0.1
    input_dropout_rate: Optional[float] = 0.0
    initialization: str = "flax"
    has_object_outputs: ClassVar[bool] = True

    def _setup_projection(self) -> None:
        init = tokens_lib.model_init(self.initialization)
        self.token_projection = nn.Dense(self.num_heads * self.head_dim,
                                         kernel_init=init.projection, name="token_projection")
        self.input_dropout = transformer.Dropout(self._rate(self.input_dropout_rate))

    def _rate(self, rate: Optional[float]) -> float:
        """A release dropout's rate: `rate`, or `dropout_rate` when None."""
        return self.dropout_rate if rate is None else rate

    def _project(self, tokens: jax.Array, *, deterministic: bool) -> jax.Array:
        """Raw tokens `[B, N, d+2]` -> `[B, N, width]`; the dropout comes before the ReLU."""
        return nn.relu(self.input_dropout(self.token_projection(tokens),
                                          deterministic=deterministic))


class RelativeTransformerReasoner(_ProjectedTokens):
    """ALOE's reasoner: the token projection and a relative transformer over every token.

    Attributes:
      num_heads: attention heads; width = num_heads * head_dim.
      head_dim: size per head (ALOE: d + 2).
      num_layers: transformer blocks.
      mlp_dim: feed-forward hidden size.
      dropout_rate: residual and feed-forward dropout.
      attention_dropout_rate: on the attention weights (None: dropout_rate).
      position_dropout_rate: on the position encodings (None: dropout_rate).
      input_dropout_rate: on the token projection before its ReLU (None: dropout_rate).
      attention_output_bias: a bias on the attention output projections (release).
      layer_norm_epsilon: of the LayerNorms (release: Sonnet's 1e-5).
      initialization: "flax" or "release" (`tokens.MODEL_INITS`, `transformer.tower_init`).
      dtype: the transformer's compute dtype (`aloe.models.precision`).
    """
    num_layers: int = 28
    mlp_dim: int = 1024
    kind: ClassVar[str] = "transformer"
    attention_dropout_rate: Optional[float] = 0.0
    position_dropout_rate: Optional[float] = 0.0
    attention_output_bias: bool = False
    layer_norm_epsilon: float = 1e-6
    dtype: Any = jnp.float32

    def setup(self):
        """Declares the projection and the transformer."""
        self._setup_projection()
        self.transformer = transformer.RelativeTransformer(
            num_layers=self.num_layers, num_heads=self.num_heads, head_dim=self.head_dim,
            mlp_dim=self.mlp_dim, dropout_rate=self.dropout_rate,
            attention_dropout_rate=self._rate(self.attention_dropout_rate),
            position_dropout_rate=self._rate(self.position_dropout_rate),
            output_bias=self.attention_output_bias, layer_norm_epsilon=self.layer_norm_epsilon,
            initialization=self.initialization, dtype=self.dtype, name="transformer")

    def needs_one_layout(self) -> bool:
        """False: any number of tokens."""
        return False

    def __call__(self, tokens: jax.Array, mask: Optional[jax.Array],
                 layout: tokens_lib.TokenLayout, *, deterministic: bool) -> Outputs:
        """See the module docstring: `(cls [B, width], objects [B, T, K, width])`."""
        _check(tokens, mask, layout)
        out = self.transformer(self._project(tokens, deterministic=deterministic), mask,
                               deterministic=deterministic)
        objects = out[:, 1 + layout.num_words:]
        return out[:, 0], objects.reshape(out.shape[0], layout.frames, layout.slots, -1)


class HierarchicalTransformerReasoner(_ProjectedTokens):
    """Attention within each frame (with the words), then across frame vectors.

    Attributes:
      num_heads, head_dim, dropout_rate, input_dropout_rate, initialization: as in
        `RelativeTransformerReasoner` (both transformers keep Flax's initialisers).
      num_layers: blocks in all, split by `hierarchical_layers`.
      mlp_dim: feed-forward hidden size of both transformers.
      frame_summary: which stage-1 outputs form a frame vector
        (`ablations.FRAME_SUMMARIES`).
      dtype: both transformers' compute dtype (`aloe.models.precision`).
    """
    num_layers: int = 26
    mlp_dim: int = 1024
    frame_summary: str = "words_and_objects"
    dtype: Any = jnp.float32
    kind: ClassVar[str] = "hierarchical"

    def setup(self):
        """Declares the projection and the two-stage reasoner."""
        self._setup_projection()
        frame_layers, video_layers = hierarchical_layers(self.num_layers)
        self.hierarchical_reasoner = ablations.HierarchicalReasoner(
            num_layers_frame=frame_layers, num_layers_video=video_layers,
            num_heads=self.num_heads, head_dim=self.head_dim, mlp_dim=self.mlp_dim,
            dropout_rate=self.dropout_rate, frame_summary=self.frame_summary, dtype=self.dtype,
            name="hierarchical_reasoner")

    def needs_one_layout(self) -> bool:
        """True when frame vectors hold the words' outputs (their number is then fixed)."""
        return self.frame_summary == "words_and_objects"

    def __call__(self, tokens: jax.Array, mask: Optional[jax.Array],
                 layout: tokens_lib.TokenLayout, *, deterministic: bool) -> Outputs:
        """`(stage-2 CLS [B, width], stage-1 object outputs [B, T, K, width])`."""
        _check(tokens, mask, layout)
        x = self._project(tokens, deterministic=deterministic)
        batch, num_words = x.shape[0], layout.num_words
        objects = x[:, 1 + num_words:].reshape(batch, layout.frames, layout.slots, x.shape[-1])
        word_mask = None if mask is None else mask[:, 1:1 + num_words]
        cls, _, stage_one = self.hierarchical_reasoner(
            x[:, 1:1 + num_words], word_mask, objects, x[:, 0], deterministic=deterministic,
            return_frame_outputs=True)
        return cls, stage_one[:, :, num_words:]


class MLPTokenReasoner(nn.Module):
    """Fully connected layers over the flattened raw tokens, in place of attention.

    Attributes:
      output_dim: size of the CLS-role vector (CLEVRER: the transformer width 180).
      hidden_dim: units per hidden layer (paper: 2048).
      hidden_layers: hidden layers (paper: 4).
      dropout_rate: dropout after every hidden layer's ReLU.
    """
    output_dim: int
    hidden_dim: int = 2048
    hidden_layers: int = 4
    dropout_rate: float = 0.1
    has_object_outputs: ClassVar[bool] = False
    kind: ClassVar[str] = "mlp"

    def setup(self):
        """Declares the MLP."""
        self.mlp_reasoner = ablations.MLPReasoner(
            output_dim=self.output_dim, hidden_dim=self.hidden_dim,
            num_layers=self.hidden_layers, dropout_rate=self.dropout_rate, name="mlp_reasoner")

    def needs_one_layout(self) -> bool:
        """True: the first layer's kernel fixes the token count."""
        return True

    def __call__(self, tokens: jax.Array, mask: Optional[jax.Array],
                 layout: tokens_lib.TokenLayout, *, deterministic: bool) -> Outputs:
        """`(the MLP's vector [B, output_dim], None)`."""
        _check(tokens, mask, layout)
        return self.mlp_reasoner(tokens, mask, deterministic=deterministic), None


Reasoner = RelativeTransformerReasoner | HierarchicalTransformerReasoner | MLPTokenReasoner
