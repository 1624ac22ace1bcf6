"""The reasoners of the paper's Table 1 ablations as Flax modules.

- `MLPReasoner` ("self-attention + MLP"): the token projection and the
  transformer are replaced by fully connected layers (4 x 2048 in the paper)
  over the flattened raw `d + 2` tokens `[CLS, words, objects]`. It returns one
  vector that takes the place of the CLS output for the answer heads. At the
  CLEVRER size (233 tokens of 18, output 180) the reasoner has 21,549,236
  parameters and the whole model (plus word embedding, CLS token and the two
  answer heads) 21,599,576, the paper's "20M vs 15M".
- `HierarchicalReasoner` ("hierarchical + global attn."): two transformers.
  Stage 1 runs one transformer over `[words, objects of frame t]` for every
  frame separately (frames folded into the batch, so a frame sees no other
  frame); the outputs of a frame (the words' and the objects', padding words
  zeroed) are concatenated into one vector and projected to the model width.
  Stage 2 runs a second transformer over `[CLS, frame vectors]`; the paper puts
  no words there, they reach stage 2 through the frame vectors. 13 + 13 blocks
  plus the frame projection give 15,166,604 parameters at the CLEVRER size
  against 14,921,872 for the flat 28-block transformer (+1.6%), the flat
  model's budget; 14 + 14 would keep the depth but add 8.8%.

The ResNet row's encoder (`ResNetEntities`) is an entity encoder and lives in
`aloe.models.entities`. `aloe.models.reasoners` wraps these modules in the
reasoner interface that `ALOE` and `ALOECater` read; configs/ablations.py holds
the rows.
"""

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from aloe.models import transformer

FRAME_SUMMARIES = ("words_and_objects", "objects")


class MLPReasoner(nn.Module):
    """Fully connected layers over the flattened raw tokens, in place of attention.

    `Dense(hidden_dim) + ReLU + Dropout`, `num_layers` times, then a linear
    `Dense(output_dim)`. The number of tokens is fixed by the first layer's
    kernel `[tokens * token_dim, hidden_dim]`, so every sequence must have the
    same layout (ALOE pads words to fixed lengths).

    Attributes:
      output_dim: size of the returned vector (CLEVRER: the transformer width 180).
      hidden_dim: units per hidden layer (paper: 2048).
      num_layers: hidden layers (paper: 4).
      dropout_rate: dropout after every hidden layer's ReLU.
    """
    output_dim: int
    hidden_dim: int = 2048
    num_layers: int = 4
    dropout_rate: float = 0.1

    @nn.compact
    def __call__(self, tokens: jax.Array, mask: Optional[jax.Array] = None, *,
                 deterministic: bool) -> jax.Array:
        """Maps a token sequence to one vector.

        Args:
          tokens: `[B, N, d+2]` raw tokens (not projected): CLS, words, objects.
          mask: `[B, N]` bool, True for real tokens; masked tokens (padding words)
            are zeroed before flattening, so their contents do not matter. None:
            every token is real.
          deterministic: True disables dropout; otherwise the 'dropout' rng is used.

        Returns:
          `[B, output_dim]`, the vector the answer heads read in place of CLS.
        """
        if self.num_layers < 1:
            raise ValueError(f"MLPReasoner.num_layers must be at least 1, got {self.num_layers}.")
        if tokens.ndim != 3:
            raise ValueError(f"MLPReasoner tokens must be [batch, tokens, token_dim], "
                             f"got shape {tokens.shape}.")
        if mask is not None:
            if mask.shape != tokens.shape[:2]:
                raise ValueError(f"MLPReasoner mask shape {mask.shape} != [batch, tokens] "
                                 f"{tokens.shape[:2]}.")
            tokens = jnp.where(mask[..., None], tokens, 0.0)
        x = tokens.reshape(tokens.shape[0], -1).astype(jnp.float32)
        for layer in range(self.num_layers):
            x = nn.relu(nn.Dense(self.hidden_dim, name=f"hidden_{layer}")(x))
            x = transformer.Dropout(self.dropout_rate)(x, deterministic=deterministic)
        return nn.Dense(self.output_dim, name="output")(x)


class HierarchicalReasoner(nn.Module):
    """Attention within each frame (with the words), then across frame vectors.

    Stage 1 (`frame_transformer`) sees `[words, objects of frame t]`, one frame
    per sequence. Stage 2 (`video_transformer`) sees `[CLS, frame vectors]`.
    A frame vector is `ReLU(Dense(LayerNorm(concat)))` of the frame's stage-1
    outputs: all of them (`frame_summary="words_and_objects"`, the paper's "the
    outputs of the first transformer for each frame are concatenated"; padding
    words' outputs are zeroed first, so they carry nothing) or only the objects'
    (`"objects"`). The LayerNorm is there because the pre-LayerNorm transformer
    ends without one; Dense + ReLU mirrors ALOE's token projection. Both
    transformers have relative positions: stage 1 knows word order and slot
    order, stage 2 knows frame order.

    Attributes:
      num_layers_frame: blocks of the stage-1 transformer.
      num_layers_video: blocks of the stage-2 transformer.
      num_heads: heads of both; the width is num_heads * head_dim.
      head_dim: head size (CLEVRER: d + 2 = 18).
      mlp_dim: feed-forward size of both.
      dropout_rate: dropout of both transformers.
      frame_summary: which stage-1 outputs form a frame vector (`FRAME_SUMMARIES`).
      learned_cls: True: the module has its own CLS vector `cls_token [width]`
        and `__call__` must get `cls=None`; False: the caller passes the CLS.
      attention_chains: see `transformer.RelativeMultiHeadAttention`.
      dtype: the compute dtype of both transformers (`aloe.models.precision`); the
        frame projection and the outputs stay float32.
    """
    num_layers_frame: int = 13
    num_layers_video: int = 13
    num_heads: int = 10
    head_dim: int = 18
    mlp_dim: int = 1024
    dropout_rate: float = 0.1
    frame_summary: str = "words_and_objects"
    learned_cls: bool = False
    attention_chains: Optional[int] = None
    dtype: Any = jnp.float32

    def setup(self):
        """Declares the two transformers, the frame projection and the CLS."""
        if self.frame_summary not in FRAME_SUMMARIES:
            raise ValueError(f"HierarchicalReasoner.frame_summary must be one of "
                             f"{FRAME_SUMMARIES}, got {self.frame_summary!r}.")
        width = self.num_heads * self.head_dim
        self.frame_transformer = transformer.RelativeTransformer(
            num_layers=self.num_layers_frame, num_heads=self.num_heads, head_dim=self.head_dim,
            mlp_dim=self.mlp_dim, dropout_rate=self.dropout_rate,
            attention_chains=self.attention_chains, dtype=self.dtype)
        self.frame_norm = nn.LayerNorm()
        self.frame_projection = nn.Dense(width)
        self.video_transformer = transformer.RelativeTransformer(
            num_layers=self.num_layers_video, num_heads=self.num_heads, head_dim=self.head_dim,
            mlp_dim=self.mlp_dim, dropout_rate=self.dropout_rate,
            attention_chains=self.attention_chains, dtype=self.dtype)
        if self.learned_cls:
            # Unit scale, like the projected tokens it sits beside.
            self.cls_token = self.param("cls_token", nn.initializers.normal(1.0), (width,),
                                        jnp.float32)

    def _check_inputs(self, words, word_mask, objects):
        width = self.num_heads * self.head_dim
        if words.ndim != 3 or words.shape[-1] != width:
            raise ValueError(f"HierarchicalReasoner words must be [batch, words, {width}], "
                             f"got shape {words.shape}.")
        if objects.ndim != 4 or objects.shape[-1] != width or objects.shape[0] != words.shape[0]:
            raise ValueError(f"HierarchicalReasoner objects must be [batch={words.shape[0]}, "
                             f"frames, slots, {width}], got shape {objects.shape}.")
        if word_mask is None:
            return jnp.ones(words.shape[:2], bool)
        if word_mask.shape != words.shape[:2]:
            raise ValueError(f"HierarchicalReasoner word_mask shape {word_mask.shape} != "
                             f"[batch, words] {words.shape[:2]}.")
        return word_mask.astype(bool)

    def encode_frames(self, words: jax.Array, word_mask: Optional[jax.Array],
                      objects: jax.Array, *, deterministic: bool) -> jax.Array:
        """Stage 1: the frame transformer on every frame separately.

        Args:
          words: `[B, L, width]` projected word tokens (question, then choice).
          word_mask: `[B, L]` bool, True for real words; padding words are
            masked in attention and their outputs zeroed. None: all real.
          objects: `[B, T, K, width]` projected object tokens.
          deterministic: True disables dropout.

        Returns:
          `[B, T, L+K, width]`: for frame t, the outputs of `[words, objects of
          frame t]`, computed from that frame alone. Also sown as
          'intermediates'/'frame_outputs'.
        """
        word_mask = self._check_inputs(words, word_mask, objects)
        batch, frames, slots, width = objects.shape
        num_words = words.shape[1]
        per_frame = lambda a: jnp.repeat(a, frames, axis=0)  # [B, ...] -> [B*T, ...]
        sequence = jnp.concatenate(
            [per_frame(words), objects.reshape(batch * frames, slots, width)], axis=1)
        mask = jnp.concatenate(
            [per_frame(word_mask), jnp.ones((batch * frames, slots), bool)], axis=1)
        out = self.frame_transformer(sequence, mask, deterministic=deterministic)
        out = jnp.where(mask[..., None], out, 0.0)
        out = out.reshape(batch, frames, num_words + slots, width)
        self.sow("intermediates", "frame_outputs", out)
        return out

    def __call__(self, words: jax.Array, word_mask: Optional[jax.Array], objects: jax.Array,
                 cls: Optional[jax.Array] = None, *, deterministic: bool,
                 return_frame_outputs: bool = False) -> tuple[jax.Array, ...]:
        """Both stages.

        Args:
          words: `[B, L, width]` projected word tokens.
          word_mask: `[B, L]` bool (True = real word) or None.
          objects: `[B, T, K, width]` projected object tokens.
          cls: `[B, width]` CLS vector (e.g. ALOE's projected CLS token); must be
            None when `learned_cls` (the module's own is used).
          deterministic: True disables dropout.
          return_frame_outputs: also return the stage-1 outputs (`encode_frames`).

        Returns:
          `(cls output [B, width], frame outputs [B, T, width])` of stage 2, and
          with `return_frame_outputs` the stage-1 outputs `[B, T, L+K, width]`.
        """
        batch, width = words.shape[0], self.num_heads * self.head_dim
        if self.learned_cls:
            if cls is not None:
                raise ValueError("HierarchicalReasoner has learned_cls=True: pass cls=None.")
            cls = jnp.broadcast_to(self.cls_token, (batch, width))
        elif cls is None:
            raise ValueError("HierarchicalReasoner has learned_cls=False: pass cls [batch, "
                             f"{width}].")
        if cls.shape != (batch, width):
            raise ValueError(f"HierarchicalReasoner cls must be [batch={batch}, {width}], "
                             f"got shape {cls.shape}.")
        stage_one = self.encode_frames(words, word_mask, objects, deterministic=deterministic)
        summarized = stage_one
        if self.frame_summary == "objects":
            summarized = stage_one[:, :, words.shape[1]:]
        summarized = summarized.reshape(*summarized.shape[:2], -1)
        frame_vectors = nn.relu(self.frame_projection(self.frame_norm(summarized)))
        out = self.video_transformer(jnp.concatenate([cls[:, None], frame_vectors], axis=1),
                                     None, deterministic=deterministic)
        if return_frame_outputs:
            return out[:, 0], out[:, 1:], stage_one
        return out[:, 0], out[:, 1:]
