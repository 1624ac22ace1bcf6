"""Entity encoders: what turns a video into entities `[B, T, K, d]` for the object tokens.

Every encoder reads one kind of input (`input_kind`) and says how many entities
a frame gives (`entities_per_frame`, which works on an unbound module):

- `LatentEntities` ("latents"): the identity on cached object latents
  `[B, T, K, d]` (MONet means, or object states), checked and cast to float32.
- `ResNetHyperpixels` ("frames", the "object-repr. + ResNet" row of the paper's
  Table 1): a small ResNet (`ResNetEntities`) trained from scratch on frames
  `[B, T, H, W, 3]`; the cells of its last feature map ("hyperpixels", as in
  Zambaldi et al. 2019) become the entities of a frame, each projected to `d`.
  It normalises with GroupNorm (or nothing): BatchNorm would add mutable batch
  statistics to the train state, need a cross-device mean under data
  parallelism, and compute statistics over the frames of only a few videos,
  which are strongly correlated; GroupNorm is per frame, has no state and gives
  the same result however the batch is split over devices.

A model shares its scope with its encoder (`flax.linen.share_scope`), so the
ResNet's parameters sit under `resnet_entities` at the model's top level.
"""

from typing import ClassVar, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

LATENTS = "latents"
FRAMES = "frames"


class LatentEntities(nn.Module):
    """The identity on object latents: `[B, T, K, d]` in, the same (float32) out.

    Attributes:
      latent_dim: d.
    """
    latent_dim: int
    input_kind: ClassVar[str] = LATENTS

    def entities_per_frame(self, frame_shape: Sequence[int]) -> int:
        """K of one frame's latents `[K, d]`."""
        if len(frame_shape) != 2 or frame_shape[-1] != self.latent_dim:
            raise ValueError(f"latents must be [batch, frames, slots, {self.latent_dim}], got a "
                             f"frame of shape {tuple(frame_shape)}.")
        return int(frame_shape[0])

    def __call__(self, latents: jax.Array) -> jax.Array:
        """latents `[B, T, K, d]` -> the same, float32."""
        if latents.ndim != 4 or latents.shape[-1] != self.latent_dim:
            raise ValueError(f"latents must be [batch, frames, slots, {self.latent_dim}], "
                             f"got shape {latents.shape}.")
        return latents.astype(jnp.float32)


class ResNetHyperpixels(nn.Module):
    """ResNet hyperpixels of frames as entities (`ResNetEntities` as `resnet_entities`).

    Attributes:
      latent_dim: d, the entity size (the latent size it replaces).
      stage_sizes: residual blocks per stage.
      widths: channels per stage.
      stage_strides: stride of each stage's first block.
      stem_width: channels of the stem convolution.
      stem_stride: stride of the stem convolution.
      num_groups: GroupNorm groups (None: no normalisation).
    """
    latent_dim: int
    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    widths: Sequence[int] = (32, 64, 128, 128)
    stage_strides: Sequence[int] = (1, 2, 2, 2)
    stem_width: int = 32
    stem_stride: int = 2
    num_groups: Optional[int] = 8
    input_kind: ClassVar[str] = FRAMES

    def _resnet(self, **kwargs) -> "ResNetEntities":
        return ResNetEntities(
            output_dim=self.latent_dim, stage_sizes=tuple(self.stage_sizes),
            widths=tuple(self.widths), stage_strides=tuple(self.stage_strides),
            stem_width=self.stem_width, stem_stride=self.stem_stride,
            num_groups=self.num_groups, **kwargs)

    def setup(self):
        """Declares the ResNet."""
        self.resnet_entities = self._resnet(name="resnet_entities")

    def entities_per_frame(self, frame_shape: Sequence[int]) -> int:
        """Cells of the final feature map of a `[H, W, C]` frame."""
        if len(frame_shape) != 3:
            raise ValueError(f"The ResNet encoder reads frames [batch, frames, height, width, "
                             f"channels], got a frame of shape {tuple(frame_shape)}.")
        height, width = frame_shape[:2]
        stride = self._resnet(parent=None).total_stride()
        if height % stride or width % stride:
            raise ValueError(f"Frame size {height}x{width} is not divisible by the ResNet's "
                             f"total stride {stride}.")
        return (height // stride) * (width // stride)

    def __call__(self, frames: jax.Array) -> jax.Array:
        """frames `[B, T, H, W, 3]` (uint8 or float in [0, 1]) -> `[B, T, K, d]`."""
        return self.resnet_entities(frames)


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
