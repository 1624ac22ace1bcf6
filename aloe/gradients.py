"""A batch's loss and gradients computed in equal parts, one after another, then averaged.

`value_and_grad_in_parts(fn, parts)` is `jax.value_and_grad(fn, has_aux=True)`
for a batch too large to run well at once: every leaf of the batch is cut
along its leading (rows) axis into `parts` equal slices, part i is the i-th
slice of every leaf (so sub-batches of different sizes, such as CLEVRER's
descriptive and multiple-choice questions, are each cut in the same number of
parts), and the value, auxiliary outputs and gradients are the means over the
parts. For a loss that is a mean over examples this is exactly the whole
batch's gradient; a mean over a varying number of tokens per example (the
auxiliary loss over masked objects) is weighted per part instead.

Why: on a CPU, XLA runs MONet's convolutions far faster on small batches whose
activations stay in cache. The paper-size MONet's gradient of 64 frames on 2
cores split into 2 devices takes 20.4 s at once and 12.3 s in 8 parts
(BUILD_NOTES.md, `benchmarks/monet.py --microbatches`). The parts are an
unrolled Python loop inside one program, not a `lax.scan`: XLA:CPU runs a
convolution's backward pass inside a loop body many times slower.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any


def split_rows(batch: PyTree, parts: int) -> PyTree:
    """Every leaf `[rows, ...]` -> `[parts, rows / parts, ...]`.

    Raises:
      ValueError: a leaf without a leading axis, or whose rows `parts` does not
        divide, named by its path in the batch.
    """
    def split(path, x):
        if x.ndim == 0 or x.shape[0] % parts:
            raise ValueError(
                f"Cannot cut batch field {jax.tree_util.keystr(path)} of shape {x.shape} into "
                f"{parts} equal parts (train.microbatches): every field's rows on a device must "
                f"divide by it.")
        return x.reshape(parts, x.shape[0] // parts, *x.shape[1:])
    return jax.tree_util.tree_map_with_path(split, batch)


def value_and_grad_in_parts(
        fn: Callable[[PyTree, PyTree, jax.Array], tuple[jax.Array, PyTree]],
        parts: int) -> Callable[[PyTree, PyTree, jax.Array], tuple[tuple[jax.Array, PyTree], PyTree]]:
    """`jax.value_and_grad(fn, has_aux=True)`, run on `parts` equal parts of the batch.

    Args:
      fn: `(params, batch, rng) -> (loss, aux)`, the loss a scalar mean over the batch.
      parts: how many parts; 1 is `jax.value_and_grad(fn, has_aux=True)` itself.

    Returns:
      `(params, batch, rng) -> ((loss, aux), grads)`, each the mean over the
      parts; part i gets `jax.random.fold_in(rng, i)`.
    """
    if parts < 1:
        raise ValueError(f"train.microbatches must be 1 or more, got {parts}.")
    grad_fn = jax.value_and_grad(fn, has_aux=True)
    if parts == 1:
        return grad_fn

    def in_parts(params: PyTree, batch: PyTree, rng: jax.Array):
        sliced = split_rows(batch, parts)
        total = None
        for i in range(parts):  # Unrolled on purpose (see the module docstring).
            part = jax.tree.map(lambda x, i=i: x[i], sliced)
            out = grad_fn(params, part, jax.random.fold_in(rng, i))
            total = out if total is None else jax.tree.map(jnp.add, total, out)
        return jax.tree.map(lambda x: x / parts, total)

    return in_parts
