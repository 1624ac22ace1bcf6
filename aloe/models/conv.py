"""2-D convolutions in several equivalent formulations, and a `Conv` module.

All formulations compute the same cross-correlation as
`lax.conv_general_dilated(x, kernel, strides, padding, ("NHWC", "HWIO", "NHWC"))`:

    out[n, i, j, f] = sum_{a, b, c} xpad[n, s*i + a, s*j + b, c] * kernel[a, b, c, f]

- "xla": `lax.conv_general_dilated` itself;
- "taps": one matmul per kernel tap, `sum_{a, b} xpad[:, a::s, b::s] @ kernel[a, b]`,
  summed as they come (no `k*k`-times larger array);
- "patches": the `k*k` shifted slices concatenated on the channel axis (im2col)
  and one matmul with the kernel flattened to `[k*k*C, F]`;
- "xla_taps_grad": XLA's convolution forward, and both gradients as those of
  "taps": the input's as `d out @ kernel[a, b]^T` per tap, padded back into
  place and summed, the kernel's as `d kernel[a, b] = xpad[:, a::s, b::s]^T @
  d out` (one matmul contracting over every output pixel of the batch).

Measured on 2 CPU cores (forward + both gradients, float32), one convolution
alone: a decoder conv3x3 32 -> 32 on 128 x 70 x 70 takes 2.02 s as "xla",
1.52 s as "taps", 1.82 s as "patches", 1.76 s as "xla_taps_grad"; the U-Net's
largest (64 -> 32, SAME, 64 x 64 x 64) 1.35 s, 0.99 s, 1.62 s and 1.21 s. Inside
the whole MONet training step, though, "xla_taps_grad" was slower than "xla"
(paper size, batch 64: 57.8 s against 49.6 s per step), so the models use "xla".

Gradients of "taps" and "patches" are JAX's autodiff of each form: slices,
pads and matmuls, with no convolution primitive.

`Conv` has the parameters of `flax.linen.Conv` (`kernel [kh, kw, C, F]`, `bias [F]`,
the same initialisers, drawn in the same order), so swapping one for the other
keeps parameter trees, checkpoints and initial values.
"""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from aloe.models.precision import compute_dtype

FORMULATIONS = ("xla", "taps", "patches", "xla_taps_grad")
Padding = Sequence[tuple[int, int]]


def _padding(padding: Any, kernel_shape: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Explicit `((top, bottom), (left, right))` of "SAME" (stride 1), "VALID" or pairs."""
    if padding == "VALID":
        return ((0, 0), (0, 0))
    if padding == "SAME":
        return tuple(((k - 1) // 2, k // 2) for k in kernel_shape)
    return tuple((int(lo), int(hi)) for lo, hi in padding)


def _shifted_slices(x: jax.Array, kernel_shape: Sequence[int], strides: Sequence[int],
                    out_shape: Sequence[int]) -> list[jax.Array]:
    """`x[:, a + s*i, b + s*j]` over the output grid, for every tap `(a, b)` row-major."""
    (kh, kw), (sh, sw), (oh, ow) = kernel_shape, strides, out_shape
    return [jax.lax.slice(x, (0, a, b, 0),
                          (x.shape[0], a + sh * (oh - 1) + 1, b + sw * (ow - 1) + 1, x.shape[3]),
                          (1, sh, sw, 1))
            for a in range(kh) for b in range(kw)]


def _xla_conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
              pads: tuple[tuple[int, int], ...]) -> jax.Array:
    """`lax.conv_general_dilated` in NHWC / HWIO."""
    return jax.lax.conv_general_dilated(x, kernel, strides, pads,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_taps_grad(x, kernel, strides, pads):
    return _xla_conv(x, kernel, strides, pads)


def _conv_taps_grad_forward(x, kernel, strides, pads):
    return _xla_conv(x, kernel, strides, pads), (x, kernel)


def _conv_taps_grad_backward(strides, pads, residuals, d_out):
    x, kernel = residuals
    _, vjp = jax.vjp(lambda x, k: _taps_conv(x, k, strides, pads), x, kernel)
    return vjp(d_out)


_conv_taps_grad.defvjp(_conv_taps_grad_forward, _conv_taps_grad_backward)


def conv2d(x: jax.Array, kernel: jax.Array, strides: Sequence[int] = (1, 1),
           padding: Any = "VALID", formulation: str = "xla") -> jax.Array:
    """NHWC / HWIO cross-correlation in the chosen formulation.

    Args:
      x: `[N, H, W, C]`.
      kernel: `[kh, kw, C, F]`, cast to x's dtype.
      strides: `(sh, sw)`.
      padding: "VALID", "SAME" (stride 1 only) or `((top, bottom), (left, right))`.
      formulation: one of `FORMULATIONS`.

    Returns:
      `[N, H', W', F]` in x's dtype.
    """
    if formulation not in FORMULATIONS:
        raise ValueError(f"conv formulation must be one of {FORMULATIONS}, got {formulation!r}.")
    kernel = kernel.astype(x.dtype)
    kh, kw, channels, features = kernel.shape
    if x.ndim != 4 or x.shape[3] != channels:
        raise ValueError(f"conv2d input must be [N, H, W, {channels}], got shape {x.shape}.")
    pads = _padding(padding, (kh, kw))
    if formulation == "xla":
        return _xla_conv(x, kernel, tuple(strides), pads)
    if formulation == "xla_taps_grad":
        return _conv_taps_grad(x, kernel, tuple(strides), pads)
    return _taps_conv(x, kernel, tuple(strides), pads, concatenate=formulation == "patches")


def _taps_conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
               pads: tuple[tuple[int, int], ...], concatenate: bool = False) -> jax.Array:
    """The "taps" form (per-tap matmuls, summed), or with `concatenate` the "patches" one."""
    kh, kw, channels, features = kernel.shape
    if any(pads[0]) or any(pads[1]):
        x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    out_shape = ((x.shape[1] - kh) // strides[0] + 1, (x.shape[2] - kw) // strides[1] + 1)
    slices = _shifted_slices(x, (kh, kw), strides, out_shape)
    rows = x.shape[0] * out_shape[0] * out_shape[1]
    if concatenate:
        patches = jnp.concatenate(slices, axis=-1).reshape(rows, kh * kw * channels)
        out = patches @ kernel.reshape(kh * kw * channels, features)
    else:
        taps = kernel.reshape(kh * kw, channels, features)
        out = sum(s.reshape(rows, channels) @ taps[t] for t, s in enumerate(slices))
    return out.reshape(x.shape[0], out_shape[0], out_shape[1], features)


class Conv(nn.Module):
    """`flax.linen.Conv` (NHWC, 2-D) computed by `conv2d` in a chosen formulation.

    Attributes:
      features: output channels.
      kernel_size: `(kh, kw)`.
      strides: `(sh, sw)`.
      padding: "VALID", "SAME" (stride 1) or `((top, bottom), (left, right))`.
      use_bias: adds a learned bias.
      formulation: one of `FORMULATIONS`.
      dtype: compute dtype (parameters stay float32); the output is in it.
    """

    features: int
    kernel_size: Sequence[int] = (3, 3)
    strides: Sequence[int] = (1, 1)
    padding: Any = "SAME"
    use_bias: bool = True
    formulation: str = "xla"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """`[N, H, W, C] -> [N, H', W', features]`."""
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            tuple(self.kernel_size) + (x.shape[-1], self.features), jnp.float32)
        dtype = compute_dtype(self.dtype)
        x = x.astype(dtype)
        if tuple(self.kernel_size) == (1, 1) and tuple(self.strides) == (1, 1):
            out = x @ kernel[0, 0].astype(dtype)  # A 1x1 convolution is a matmul.
        else:
            out = conv2d(x, kernel, self.strides, self.padding, self.formulation)
        if self.use_bias:
            out = out + self.param("bias", nn.initializers.zeros_init(), (self.features,),
                                   jnp.float32).astype(dtype)
        return out
