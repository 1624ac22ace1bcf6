"""The U-Net of MONet's attention network (Burgess et al. 2019, Appendix B.2).

For `n` blocks and channels `c_0, ..., c_{n-1}` (64x64 images: 5 blocks,
32, 32, 64, 64, 64):

- down path: block `i` is conv3x3 (no bias) -> instance norm -> ReLU with `c_i`
  output channels; its output is kept as skip `i`, then halved by nearest-neighbour
  resizing (every block but the last), so the bottleneck is `H / 2^(n-1)` square
  (4x4 for 64x64 images);
- middle: the flattened bottleneck goes through an MLP (128, 128, ReLU) and a
  ReLU layer back to the bottleneck's size;
- up path: level `i` (from `n-1` down to 0) concatenates its skip, applies
  conv3x3 (no bias) -> instance norm -> ReLU with `c_{max(i-1, 0)}` channels and
  doubles the size by nearest-neighbour resizing (every level but the top);
- a final 1x1 convolution gives the output channels (1 attention logit).

Height and width must be divisible by `2^(n-1)` so that every resize is exact.

The convolutions are `aloe.models.conv.Conv` (the parameters of `nn.Conv`) in a
chosen formulation; `dtype` is the compute dtype (instance-norm statistics in
float32, parameters float32), and the output is in it.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from aloe.models import conv as conv_lib
from aloe.models.precision import compute_dtype


def downsample_nearest(x: jax.Array) -> jax.Array:
    """Nearest-neighbour resize by 1/2: `[N, H, W, C] -> [N, H/2, W/2, C]` (even rows/cols)."""
    return x[:, ::2, ::2, :]


def upsample_nearest(x: jax.Array) -> jax.Array:
    """Nearest-neighbour resize by 2: `[N, H, W, C] -> [N, 2H, 2W, C]`."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class ConvNormReLU(nn.Module):
    """conv3x3 without bias -> instance norm (learned scale and bias) -> ReLU.

    Attributes:
      features: output channels.
      conv_formulation: see `conv.FORMULATIONS`.
      dtype: compute dtype.
    """

    features: int
    conv_formulation: str = "xla"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """`[N, H, W, C_in] -> [N, H, W, features]`."""
        x = conv_lib.Conv(self.features, (3, 3), padding="SAME", use_bias=False,
                          formulation=self.conv_formulation, dtype=self.dtype, name="conv")(x)
        x = nn.InstanceNorm(epsilon=1e-5, dtype=compute_dtype(self.dtype),
                            param_dtype=jnp.float32, name="norm")(x)
        return nn.relu(x)


class UNet(nn.Module):
    """U-Net with skip connections and an MLP at the bottleneck.

    Attributes:
      channels: channels of the blocks, top (full resolution) first; its length is
        the number of blocks.
      mlp_hidden: hidden sizes of the bottleneck MLP.
      out_features: channels of the final 1x1 convolution.
      conv_formulation: see `conv.FORMULATIONS`.
      dtype: compute dtype (a dtype or a `precision.DTYPE_NAMES` name).
    """

    channels: Sequence[int] = (32, 32, 64, 64, 64)
    mlp_hidden: Sequence[int] = (128, 128)
    out_features: int = 1
    conv_formulation: str = "xla"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """`[N, H, W, C_in] -> [N, H, W, out_features]` (no activation on the output)."""
        num_blocks = len(self.channels)
        if num_blocks < 1:
            raise ValueError("UNet.channels must name at least one block.")
        factor = 2 ** (num_blocks - 1)
        if x.ndim != 4 or x.shape[1] % factor or x.shape[2] % factor:
            raise ValueError(
                f"UNet input must be [N, H, W, C] with H and W divisible by 2^(blocks-1) = "
                f"{factor} ({num_blocks} blocks), got shape {x.shape}.")
        dtype = compute_dtype(self.dtype)
        block = lambda features, name: ConvNormReLU(features, self.conv_formulation, dtype,
                                                    name=name)
        dense = lambda features, name: nn.Dense(features, dtype=dtype, param_dtype=jnp.float32,
                                                name=name)
        skips = []
        for i, features in enumerate(self.channels):
            x = block(features, f"down_{i}")(x)
            skips.append(x)
            if i < num_blocks - 1:
                x = downsample_nearest(x)
        bottleneck_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        for i, hidden in enumerate(self.mlp_hidden):
            x = nn.relu(dense(hidden, f"mlp_{i}")(x))
        bottleneck_size = bottleneck_shape[1] * bottleneck_shape[2] * bottleneck_shape[3]
        x = nn.relu(dense(bottleneck_size, "mlp_out")(x))
        x = x.reshape(bottleneck_shape)
        for i in reversed(range(num_blocks)):
            x = jnp.concatenate([x, skips[i]], axis=-1)
            x = block(self.channels[max(i - 1, 0)], f"up_{i}")(x)
            if i > 0:
                x = upsample_nearest(x)
        return conv_lib.Conv(self.out_features, (1, 1), dtype=dtype, name="out")(x)
