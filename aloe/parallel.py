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
import zlib

import jax
from jax.experimental import multihost_utils
import numpy as np

AXIS = "batch"
P = jax.sharding.PartitionSpec

PyTree = Any


def split_cpu(count: int) -> None:
    """Makes this process's CPU `count` JAX devices; call it before any JAX computation.

    Each device then takes its share of every batch in the data-parallel step the
    training system runs. With XLA's own convolutions (`aloe.xla_cpu`) the
    paper-size MONet's training step of 16 frames on a 2-core AMD EPYC takes
    1.13 s as 2 devices against 1.24 s as one (`benchmarks/monet.py
    --cpu_devices`, BUILD_NOTES.md); with YNNPACK's convolutions, which ran on
    about one thread, the split was worth 2x. Every global batch must then divide
    among the devices. Accelerator backends are unaffected.

    Args:
      count: CPU devices, overriding XLA_FLAGS' `--xla_force_host_platform_device_count`;
        0 leaves JAX's default (one, or what that flag says).

    Raises:
      ValueError: a negative count.
      RuntimeError: (JAX's) a JAX computation has already started the backends.
    """
    if count < 0:
        raise ValueError(f"CPU devices must be 0 (JAX's default) or more, got {count}.")
    if count:
        jax.config.update("jax_num_cpu_devices", count)


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
    """Concatenates every process's NumPy rows (in process order) on every process.

    Processes may hold different numbers of rows (an evaluation keeps only its
    valid rows), but every leaf must have the same dtype and trailing shape on
    every process. The rows travel as raw bytes, so dtypes (int64, float64,
    bool) come back unchanged whatever JAX's x64 setting.

    Args:
      tree: a pytree of arrays `[rows_p, ...]` on process p.

    Returns:
      The same pytree of NumPy arrays `[sum_p rows_p, ...]`, on every process.

    Raises:
      ValueError: a leaf without a leading axis, or leaves whose dtype or
        trailing shape differ between processes.
    """
    if jax.process_count() == 1:
        return tree
    leaves, treedef = jax.tree.flatten(tree)
    leaves = [np.ascontiguousarray(x) for x in leaves]
    for i, leaf in enumerate(leaves):
        if leaf.ndim == 0:
            raise ValueError(f"gather_from_processes: leaf {i} is a scalar; every leaf needs "
                             f"a leading rows axis.")
    row_bytes = [leaf.itemsize * int(np.prod(leaf.shape[1:], dtype=np.int64)) for leaf in leaves]
    layout = repr([(leaf.dtype.str, leaf.shape[1:]) for leaf in leaves])
    layout_hash = zlib.crc32(layout.encode()) & 0x7FFFFFFF
    header = np.asarray([layout_hash, sum(leaf.nbytes for leaf in leaves)]
                        + [leaf.shape[0] for leaf in leaves], dtype=np.int64)
    if np.any(header >= 2**31):  # The header travels as int32, JAX's default integer.
        raise ValueError("gather_from_processes: 2**31 bytes or rows or more per process.")
    # [processes, 2 + leaves]: layout hash, payload bytes, rows of every leaf.
    headers = np.asarray(multihost_utils.process_allgather(header.astype(np.int32)), np.int64)
    if np.any(headers[:, 0] != layout_hash):
        raise ValueError(
            "gather_from_processes: the leaves' dtypes or trailing shapes differ between "
            f"processes; this process has {layout}.")
    payload = np.zeros(max(1, int(headers[:, 1].max())), np.uint8)
    offset = 0
    for leaf in leaves:
        payload[offset:offset + leaf.nbytes] = leaf.reshape(-1).view(np.uint8)
        offset += leaf.nbytes
    payloads = np.asarray(multihost_utils.process_allgather(payload))  # [processes, bytes]
    parts: list[list[np.ndarray]] = [[] for _ in leaves]
    for process, counts in enumerate(headers[:, 2:]):
        offset = 0
        for i, (leaf, count) in enumerate(zip(leaves, counts)):
            size = int(count) * row_bytes[i]
            data = payloads[process, offset:offset + size].view(leaf.dtype)
            parts[i].append(data.reshape((int(count),) + leaf.shape[1:]))
            offset += size
    return jax.tree.unflatten(treedef, [np.concatenate(p) for p in parts])


def any_process(flag: bool) -> bool:
    """True on every process when `flag` is true on at least one of them."""
    if jax.process_count() == 1:
        return flag
    flags = multihost_utils.process_allgather(np.asarray([flag], dtype=np.int32), tiled=True)
    return bool(np.any(flags))
