"""Compute dtypes (mixed precision) of the models.

A model's `dtype` is its compute dtype: matmuls, convolutions and the
activations between them run in it, while parameters (and therefore the
optimizer state) are float32 and every loss is computed in float32. Softmax
and normalisation statistics are accumulated in float32 whatever the compute
dtype.

`model.dtype` in a config is a name (`DTYPE_NAMES`); "auto" picks float32 on
CPU (XLA:CPU's bfloat16 matmul is not faster than its float32 one) and
bfloat16 on GPU and TPU.
"""

from typing import Any, Optional

import jax
import jax.numpy as jnp

DTYPE_NAMES = ("auto", "float32", "bfloat16")


def compute_dtype(name: Any = "auto", backend: Optional[str] = None) -> jnp.dtype:
    """The compute dtype a name stands for.

    Args:
      name: one of `DTYPE_NAMES`, a float32 / bfloat16 dtype (returned as is), or
        None (float32).
      backend: the JAX backend "auto" is resolved for; None: the default backend.

    Returns:
      `jnp.float32` or `jnp.bfloat16`.
    """
    if name is None:
        return jnp.dtype(jnp.float32)
    if not isinstance(name, str):
        dtype = jnp.dtype(name)
        if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16)):
            raise ValueError(f"model.dtype must be float32 or bfloat16, got {dtype}.")
        return dtype
    if name not in DTYPE_NAMES:
        raise ValueError(f"model.dtype must be one of {DTYPE_NAMES}, got {name!r}.")
    if name == "auto":
        backend = backend or jax.default_backend()
        name = "float32" if backend == "cpu" else "bfloat16"
    return jnp.dtype(name)
