"""The ablations of the paper's Table 1 as Flax modules.

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
  no words there, they reach stage 2 through the frame vectors. The defaults
  split the flat model's budget: 13 + 13 blocks plus the frame projection give
  15,166,604 parameters at the CLEVRER size against 14,921,872 for the flat
  28-block transformer (+1.6%); 14 + 14 would keep the depth but add 8.8%.
- `ResNetEntities` ("object-repr. + ResNet"): a small ResNet trained from
  scratch on the frames; the cells of its last feature map ("hyperpixels", as
  in Zambaldi et al. 2019) become the entities of a frame, each projected to
  `d` so that `[B, T, h*w, d]` takes the place of the MONet latents
  `[B, T, slots, d]`. It normalises with GroupNorm (or nothing): BatchNorm
  would add mutable batch statistics to the train state, need a cross-device
  mean under data parallelism, and compute statistics over the frames of only
  a few videos, which are strongly correlated; GroupNorm is per frame, has no
  state and gives the same result however the batch is split over devices.

`ALOE` and `ALOECater` (`aloe.models.aloe`) use these through their `variant`
field ("mlp", "hierarchical", "resnet"); configs/ablations.py holds the rows.
"""

from typing import Optional, Sequence

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

    def setup(self):
        """Declares the two transformers, the frame projection and the CLS."""
        if self.frame_summary not in FRAME_SUMMARIES:
            raise ValueError(f"HierarchicalReasoner.frame_summary must be one of "
                             f"{FRAME_SUMMARIES}, got {self.frame_summary!r}.")
        width = self.num_heads * self.head_dim
        self.frame_transformer = transformer.RelativeTransformer(
            num_layers=self.num_layers_frame, num_heads=self.num_heads, head_dim=self.head_dim,
            mlp_dim=self.mlp_dim, dropout_rate=self.dropout_rate,
            attention_chains=self.attention_chains)
        self.frame_norm = nn.LayerNorm()
        self.frame_projection = nn.Dense(width)
        self.video_transformer = transformer.RelativeTransformer(
            num_layers=self.num_layers_video, num_heads=self.num_heads, head_dim=self.head_dim,
            mlp_dim=self.mlp_dim, dropout_rate=self.dropout_rate,
            attention_chains=self.attention_chains)
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


class ResidualBlock(nn.Module):
    """Basic residual block: two 3x3 convolutions, projection shortcut when needed.

    `ReLU(norm(conv(ReLU(norm(conv_s(x))))) + shortcut(x))`, the shortcut a
    strided 1x1 convolution + norm when the stride or width changes.

    Attributes:
      width: output channels.
      stride: stride of the first convolution and of the shortcut.
      num_groups: GroupNorm groups; None: no normalisation (convolutions get biases).
    """
    width: int
    stride: int = 1
    num_groups: Optional[int] = 8

    def _norm(self, x: jax.Array, name: str) -> jax.Array:
        if self.num_groups is None:
            return x
        return nn.GroupNorm(num_groups=self.num_groups, name=name)(x)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: `[N, H, W, C]` -> `[N, H/stride, W/stride, width]`."""
        bias = self.num_groups is None
        y = nn.Conv(self.width, (3, 3), self.stride, use_bias=bias, name="conv_0")(x)
        y = nn.relu(self._norm(y, "norm_0"))
        y = nn.Conv(self.width, (3, 3), use_bias=bias, name="conv_1")(y)
        y = self._norm(y, "norm_1")
        if self.stride != 1 or x.shape[-1] != self.width:
            x = nn.Conv(self.width, (1, 1), self.stride, use_bias=bias, name="shortcut")(x)
            x = self._norm(x, "shortcut_norm")
        return nn.relu(y + x)


class ResNetEntities(nn.Module):
    """A small ResNet whose last feature map's cells are a frame's entities.

    Frames are folded into the batch (each frame is encoded alone). Layout: a 3x3
    stem convolution (stride `stem_stride`) + norm + ReLU, then one stage per
    entry of `stage_sizes` (that many `ResidualBlock`s of `widths[i]` channels,
    the first with stride `stage_strides[i]`). The final `[h, w, c]` map is
    flattened row-major into `h*w` entities; with `coordinate_features` each
    gets its cell's (row, column) in [-1, 1] appended, as in Zambaldi et al.
    (2019); a linear `Dense(output_dim)` projects every entity. The defaults give
    64 / (2*1*2*2*2) = 4 -> 16 entities per 64x64 frame.

    Attributes:
      output_dim: entity size (the MONet latent size d it replaces).
      stage_sizes: residual blocks per stage.
      widths: channels per stage.
      stage_strides: stride of each stage's first block.
      stem_width: channels of the stem convolution.
      stem_stride: stride of the stem convolution.
      num_groups: GroupNorm groups (must divide every width); None: no norm.
      coordinate_features: append each cell's (row, column) before projecting.
    """
    output_dim: int
    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    widths: Sequence[int] = (32, 64, 128, 128)
    stage_strides: Sequence[int] = (1, 2, 2, 2)
    stem_width: int = 32
    stem_stride: int = 2
    num_groups: Optional[int] = 8
    coordinate_features: bool = True

    def total_stride(self) -> int:
        """The downsampling factor from a frame to the final feature map."""
        stride = self.stem_stride
        for s in self.stage_strides:
            stride *= s
        return stride

    def _check(self, frames: jax.Array) -> None:
        if not len(self.stage_sizes) == len(self.widths) == len(self.stage_strides):
            raise ValueError(f"ResNetEntities stage_sizes {tuple(self.stage_sizes)}, widths "
                             f"{tuple(self.widths)} and stage_strides "
                             f"{tuple(self.stage_strides)} must have the same length.")
        if self.num_groups is not None:
            for width in (self.stem_width, *self.widths):
                if width % self.num_groups:
                    raise ValueError(f"ResNetEntities num_groups {self.num_groups} does not "
                                     f"divide the width {width}.")
        if frames.ndim != 5:
            raise ValueError(f"ResNetEntities frames must be [batch, frames, height, width, "
                             f"channels], got shape {frames.shape}.")
        stride = self.total_stride()
        if frames.shape[2] % stride or frames.shape[3] % stride:
            raise ValueError(f"ResNetEntities frame size {frames.shape[2:4]} is not divisible "
                             f"by the total stride {stride}.")

    @nn.compact
    def __call__(self, frames: jax.Array) -> jax.Array:
        """Encodes every frame into entities.

        Args:
          frames: `[B, T, H, W, C]` pixels, float in [0, 1] or uint8 (scaled by 1/255).

        Returns:
          `[B, T, (H/s) * (W/s), output_dim]`, s = `total_stride()`; entity
          `r * (W/s) + c` is cell (r, c) of the final feature map.
        """
        self._check(frames)
        batch, num_frames, height, width, channels = frames.shape
        x = frames.astype(jnp.float32)
        if frames.dtype == jnp.uint8:
            x = x / 255.0
        x = x.reshape(batch * num_frames, height, width, channels)
        x = nn.Conv(self.stem_width, (3, 3), self.stem_stride,
                    use_bias=self.num_groups is None, name="stem")(x)
        if self.num_groups is not None:
            x = nn.GroupNorm(num_groups=self.num_groups, name="stem_norm")(x)
        x = nn.relu(x)
        for stage, (size, stage_width, stride) in enumerate(
                zip(self.stage_sizes, self.widths, self.stage_strides)):
            for block in range(size):
                x = ResidualBlock(stage_width, stride if block == 0 else 1, self.num_groups,
                                  name=f"stage_{stage}_block_{block}")(x)
        _, rows, cols, features = x.shape
        entities = x.reshape(batch * num_frames, rows * cols, features)
        if self.coordinate_features:
            grid = jnp.stack(jnp.meshgrid(jnp.linspace(-1.0, 1.0, rows),
                                          jnp.linspace(-1.0, 1.0, cols), indexing="ij"),
                             axis=-1).reshape(rows * cols, 2)
            entities = jnp.concatenate(
                [entities, jnp.broadcast_to(grid, (batch * num_frames, rows * cols, 2))],
                axis=-1)
        entities = nn.Dense(self.output_dim, name="entity_projection")(entities)
        return entities.reshape(batch, num_frames, rows * cols, self.output_dim)
