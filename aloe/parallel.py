"""The one place that maps per-device code onto the devices of every process.

Training code is written per device, in the pmap programming model: a step sees
its own slice of the batch and averages gradients with
`jax.lax.pmean(grads, axis_name=AXIS)`. `data_parallel` runs such a function with
`jax.shard_map` inside `jax.jit` over a 1-D mesh of all devices of all
processes, which is how JAX itself now implements `jax.pmap`.

Batches arrive from the input pipeline as process-local NumPy arrays whose
leading axis is this process's share of the global batch; `shard_batch` turns
them into global arrays split along that axis, one contiguous block per device.
"""

from collections.abc import Callable
from typing import Any

import jax
from jax.experimental import multihost_utils
import numpy as np

AXIS = "batch"
P = jax.sharding.PartitionSpec

PyTree = Any


def make_mesh(devices: list[jax.Device] | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh over `devices` (default: every device of every process)."""
    devices = jax.devices() if devices is None else devices
    return jax.make_mesh((len(devices),), (AXIS,),
                         axis_types=(jax.sharding.AxisType.Auto,), devices=devices)


def data_parallel(fn: Callable[..., Any], mesh: jax.sharding.Mesh, *,
                  in_specs: tuple[Any, ...], out_specs: Any,
                  donate_argnums: tuple[int, ...] = ()) -> Callable[..., Any]:
    """Compiles a per-device function to run on every device of `mesh`.

    Args:
      fn: the per-device function; inside it `jax.lax.axis_index(AXIS)` is the
        global device index and collectives use `axis_name=AXIS`.
      mesh: from `make_mesh`.
      in_specs: one spec per argument: `REPLICATED` for values every device
        holds whole (parameters), `SHARDED` for values split along their
        leading axis (batches).
      out_specs: specs of the outputs, likewise.
      donate_argnums: arguments whose buffers the step may reuse (the state).

    Returns:
      A jitted function of global arrays.
    """
    # check_vma=False is the pmap programming model: values are per device and
    # only explicit collectives combine them. With varying-axis checking on, JAX
    # would also insert a psum into the gradient of every replicated parameter,
    # so an explicit `pmean(grads)` would yield the sum over devices, not the mean.
    mapped = jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                           check_vma=False)
    return jax.jit(mapped, donate_argnums=donate_argnums)


REPLICATED = P()
SHARDED = P(AXIS)


def local_batch_size(global_size: int) -> int:
    """This process's share of a global batch, checking it divides evenly."""
    devices = jax.device_count()
    if global_size % devices:
        raise ValueError(
            f"A global batch of {global_size} cannot be split evenly over {devices} devices; "
            f"choose a multiple of {devices}.")
    return global_size // jax.process_count()


def shard_batch(batch: PyTree, mesh: jax.sharding.Mesh) -> PyTree:
    """Process-local NumPy arrays -> global arrays split over devices on axis 0.

    Every leaf's leading axis is this process's rows; it must divide evenly
    over this process's devices.
    """
    sharding = jax.sharding.NamedSharding(mesh, SHARDED)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
                        batch)


def replicate(tree: PyTree, mesh: jax.sharding.Mesh) -> PyTree:
    """Places a pytree (equal on every process) whole on every device of `mesh`."""
    sharding = jax.sharding.NamedSharding(mesh, REPLICATED)
    return jax.device_put(tree, sharding)


def to_host(tree: PyTree, mesh: jax.sharding.Mesh, spec: Any = SHARDED) -> PyTree:
    """Global arrays -> this process's rows as NumPy (inverse of `shard_batch`)."""
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, tree)
    local = multihost_utils.global_array_to_host_local_array(tree, mesh, spec)
    return jax.tree.map(np.asarray, local)


def gather_from_processes(tree: PyTree) -> PyTree:
    """Concatenates every process's NumPy rows (in process order) on every process."""
    if jax.process_count() == 1:
        return tree
    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


def any_process(flag: bool) -> bool:
    """True on every process when `flag` is true on at least one of them."""
    if jax.process_count() == 1:
        return flag
    flags = multihost_utils.process_allgather(np.asarray([flag], dtype=np.int32), tiled=True)
    return bool(np.any(flags))
