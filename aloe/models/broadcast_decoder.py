"""MONet's spatial-broadcast decoder (Watters et al. 2019), used by `aloe.models.monet`.

A latent z `[N, d]` is tiled over an `(S + 2n) x (S + 2n)` grid with two
coordinate channels in [-1, 1] appended, then n unpadded conv3x3 with ReLU bring
it to `S x S` and a 1x1 conv gives RGB (through a sigmoid) and a mask logit. The
first conv is computed without materialising the tiled z (`BroadcastConv`): the
same result for 17% fewer of the decoder's FLOPs.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from aloe.models import conv as conv_lib
from aloe.models.precision import compute_dtype


def coordinate_grid(side: int) -> jax.Array:
    """`[side, side, 2]` coordinates `(y, x)`, each from -1 to 1."""
    coords = jnp.linspace(-1.0, 1.0, side, dtype=jnp.float32)
    y, x = jnp.meshgrid(coords, coords, indexing="ij")
    return jnp.stack([y, x], axis=-1)


class BroadcastConv(nn.Module):
    """Unpadded conv3x3 of `[z tiled over a side x side grid, coordinate_grid(side)]`.

    Computed without tiling z: since z is the same at every position, its part of
    the convolution is `z @ sum_taps(kernel[:, :, :d])` at every output pixel, and
    the coordinates' part is the same for all latents and is convolved once. The
    result and the parameters (`kernel [3, 3, d + 2, features]`, `bias`) are those
    of `nn.Conv(features, (3, 3), padding="VALID")` on the tiled input.

    Attributes:
      features: output channels.
      side: side of the grid z is tiled over.
      dtype: compute dtype; the output is in it.
    """

    features: int
    side: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        """`[N, d] -> [N, side - 2, side - 2, features]` (no activation)."""
        latent_dim = z.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (3, 3, latent_dim + 2, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        dtype = compute_dtype(self.dtype)
        coordinate_part = jax.lax.conv_general_dilated(
            coordinate_grid(self.side)[None].astype(dtype), kernel[:, :, latent_dim:].astype(dtype),
            (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        latent_kernel = jnp.sum(kernel[:, :, :latent_dim], axis=(0, 1)).astype(dtype)
        latent_part = z.astype(dtype) @ latent_kernel
        return latent_part[:, None, None, :] + coordinate_part + bias.astype(dtype)


class SpatialBroadcastDecoder(nn.Module):
    """Spatial-broadcast decoder: z `[N, d]` -> (rgb `[N, S, S, 3]`, mask logit `[N, S, S, 1]`).

    z is tiled over an `(S + 2n) x (S + 2n)` grid (n = `len(channels)`) with two
    coordinate channels appended (`coordinate_grid`), then n unpadded conv3x3 with
    ReLU bring it to `S x S`; the first of them is a `BroadcastConv`.

    Attributes:
      image_size: S, the side of the square output.
      channels: output channels of the unpadded conv3x3 layers (at least one).
      conv_formulation: see `conv.FORMULATIONS`.
      dtype: compute dtype; the outputs are float32.
    """

    image_size: int
    channels: Sequence[int] = (32, 32, 32, 32)
    conv_formulation: str = "xla"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array) -> tuple[jax.Array, jax.Array]:
        """RGB in [0, 1] (sigmoid) and a mask logit per pixel."""
        if not self.channels:
            raise ValueError("SpatialBroadcastDecoder.channels must name at least one conv.")
        side = self.image_size + 2 * len(self.channels)
        dtype = compute_dtype(self.dtype)
        h = nn.relu(BroadcastConv(self.channels[0], side, dtype, name="conv_0")(z))
        for i, features in enumerate(self.channels[1:], start=1):
            h = nn.relu(conv_lib.Conv(features, (3, 3), padding="VALID",
                                      formulation=self.conv_formulation, dtype=dtype,
                                      name=f"conv_{i}")(h))
        out = conv_lib.Conv(4, (1, 1), dtype=dtype, name="out")(h).astype(jnp.float32)
        return jax.nn.sigmoid(out[..., :3]), out[..., 3:]
