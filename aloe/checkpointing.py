"""Checkpoints: orbax `CheckpointManager` with resume and preemption handling.

A run saves every `every_steps` steps, at the end, and when the process is asked
to stop (SIGTERM, the signal schedulers and TPU/GPU preemption send). Started on
a workdir that already holds checkpoints, it resumes from the latest one, so a
preempted job loses at most the steps since its last save.
"""

import os
import signal
import threading
from typing import Any, Callable

from absl import logging
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

PyTree = Any


# The exit status of a run that stopped on request (SIGTERM, a preemption notice)
# after saving a checkpoint: 128 + SIGTERM, what a shell reports for a process
# killed by SIGTERM, so schedulers and job wrappers treat it as "requeue me", not
# as success (0) or a failure (1).
STOPPED_EXIT_STATUS = 128 + int(signal.SIGTERM)


class PreemptionFlag:
    """Records SIGTERM (and SIGINT, if asked) instead of dying at once.

    The train loop polls `is_set()` each step; when true it saves a checkpoint and
    exits cleanly. Only the main thread can install signal handlers, so in any
    other thread this is a flag that is never set by signals.
    """

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM,)):
        self._event = threading.Event()
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in signals:
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        del frame
        logging.warning("Received signal %d: will checkpoint and stop after this step.", signum)
        self._event.set()

    def set(self) -> None:
        """Requests a stop, as a signal would."""
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def restore(self) -> None:
        """Puts the signal handlers that were there before back in place."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


class UnreadableCheckpointError(OSError):
    """No checkpoint that was asked for could be read (missing or corrupt files)."""


class CheckpointMismatchError(ValueError):
    """A checkpoint holds another structure or other shapes than the state asked for."""


class NonFiniteStateError(FloatingPointError):
    """A state to be saved holds NaN or infinite values."""


@jax.jit
def _all_finite(tree: PyTree) -> jax.Array:
    """One boolean: whether every floating-point leaf of `tree` is finite."""
    checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(checks)) if checks else jnp.bool_(True)


def all_finite(tree: PyTree) -> bool:
    """Whether every floating-point array of `tree` is finite (one jitted reduction)."""
    result = _all_finite(tree)
    return bool(np.asarray(result.addressable_shards[0].data))


def non_finite_entries(tree: PyTree, *, examples: int = 3) -> str:
    """Names of up to `examples` leaves of `tree` that hold NaN or inf, for messages."""
    bad = [name for name, ok in _leaf_names(jax.tree.map(
        lambda x: all_finite(x) if jnp.issubdtype(x.dtype, jnp.inexact) else True, tree)).items()
        if not ok]
    return ", ".join(bad[:examples]) + (f" and {len(bad) - examples} more"
                                        if len(bad) > examples else "")


class Checkpointer:
    """Saves and restores a training-state pytree under `{workdir}/checkpoints`.

    Every save first checks the state finite, so the newest checkpoint on disk is
    always one whose values are all finite. Restoring without a step reads the
    newest checkpoint that can be read: an unreadable one (missing or truncated
    files) is reported with a warning naming it and why, and the one before it is
    tried; a checkpoint of another structure is an error, not a reason to fall back.
    """

    def __init__(self, workdir: str, *, every_steps: int, keep: int = 3,
                 read_only: bool = False):
        """Opens `{workdir}/checkpoints` (or `workdir` itself if it is one, when read-only).

        Args:
          workdir: the run's directory.
          every_steps: the regular checkpoint interval (0: none).
          keep: checkpoints kept on disk.
          read_only: only restore (the directory is not created; missing is an error).
        """
        directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        if read_only and not os.path.isdir(directory):
            if _looks_like_checkpoints(workdir):
                directory = os.path.abspath(workdir)
            else:
                raise FileNotFoundError(
                    f"No checkpoints in {os.path.abspath(workdir)}: neither it nor its "
                    f"'checkpoints' folder holds numbered checkpoint folders.")
        self.directory = directory
        self.every_steps = every_steps
        self.skipped: dict[int, str] = {}  # Unreadable steps passed over by the last restore.
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=None if read_only else keep, create=not read_only,
                enable_async_checkpointing=False, read_only=read_only,
                **({"save_interval_steps": 0} if read_only else {})),
            item_handlers=ocp.StandardCheckpointHandler())

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint (readable or not), or None."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def due(self, step: int) -> bool:
        """Whether the regular schedule asks for a checkpoint after `step` steps."""
        return self.every_steps > 0 and step % self.every_steps == 0

    def reached_preemption(self, step: int) -> bool:
        """True when the JAX distributed service reports a preemption notice."""
        return self._manager.reached_preemption(step)

    def save(self, step: int, state: PyTree) -> None:
        """Writes `state` as checkpoint `step` (atomically; no-op if it exists).

        Raises:
          NonFiniteStateError: naming the step, the non-finite entries and the
            newest checkpoint on disk, when `state` holds NaN or inf (nothing is
            written).
        """
        if not all_finite(state):
            raise NonFiniteStateError(
                f"The training state after step {step} is not finite (NaN or inf in "
                f"{non_finite_entries(state)}); it was not saved. The newest checkpoint in "
                f"{self.directory} is step {self.latest_step()}, whose values are finite. "
                f"Lower the learning rate or check the input data.")
        if step in self._manager.all_steps():
            return
        self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
        self._manager.wait_until_finished()
        logging.info("Saved checkpoint %d in %s", step, self.directory)

    def restore(self, target: PyTree, step: int | None = None) -> PyTree:
        """Restores checkpoint `step` (default: the newest readable) with `target`'s structure.

        Args:
          target: a pytree of arrays (or `jax.ShapeDtypeStruct`s) of the state's
            structure; restored arrays take its shardings.
          step: the checkpoint to read; None means the newest one that can be read.

        Raises:
          FileNotFoundError: naming the directory, when there is no such checkpoint.
          UnreadableCheckpointError: naming each step tried and why it failed.
          CheckpointMismatchError: naming the checkpoint and the entries that
            differ, when it was written by a different model or optimizer.
        """
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        return self._restore_first_readable(step, abstract, partial=False)[0]

    def restore_params(self, target: PyTree, step: int | None = None) -> tuple[PyTree, int]:
        """`(params, step)`: only the `params` entry of a checkpoint, no optimizer needed.

        Args:
          target: the parameters' pytree of arrays or `jax.ShapeDtypeStruct`s
            (restored arrays take their shardings; without one, NumPy arrays).
          step: as for `restore`.
        """
        abstract = {"params": jax.tree.map(_abstract_leaf, target)}
        restored, step = self._restore_first_readable(step, abstract, partial=True)
        return restored["params"], step

    def set_aside(self, steps: list[int]) -> None:
        """Renames unreadable checkpoints to `{step}.unreadable` so new saves can take the step.

        Process 0 renames; every process then rereads the directory.
        """
        if jax.process_index() == 0:
            for step in steps:
                source = os.path.join(self.directory, str(step))
                target = f"{source}.unreadable"
                suffix = 1
                while os.path.exists(target):
                    target, suffix = f"{source}.unreadable{suffix}", suffix + 1
                os.rename(source, target)
                logging.warning("Moved unreadable checkpoint %d to %s.", step, target)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("checkpoint set aside")
        self._manager.reload()

    def _restore_first_readable(self, step: int | None, abstract: PyTree,
                                partial: bool) -> tuple[PyTree, int]:
        available = self.all_steps()
        if step is not None and step not in available or not available:
            raise FileNotFoundError(
                f"No checkpoint {'(any)' if step is None else step} in {self.directory}; "
                f"available steps: {available}.")
        candidates = [step] if step is not None else available[::-1]
        self.skipped = {}
        for candidate in candidates:
            try:
                restored = self._read(candidate, abstract, partial)
            except UnreadableCheckpointError as err:
                self.skipped[candidate] = str(err)
                if candidate != candidates[-1]:
                    logging.warning("%s Falling back to the checkpoint before it.", err)
                continue
            logging.info("Restored checkpoint %d from %s", candidate, self.directory)
            return restored, candidate
        raise UnreadableCheckpointError(
            f"No checkpoint in {self.directory} can be read: " + " ".join(
                self.skipped.values()) + " Delete or repair them, or train in a new workdir.")

    def _read(self, step: int, abstract: PyTree, partial: bool) -> PyTree:
        path = os.path.join(self.directory, str(step), "default")
        try:
            metadata = self._manager.item_metadata(step)
        except Exception as err:  # pylint: disable=broad-except (any unreadable file)
            raise UnreadableCheckpointError(
                f"Checkpoint {step} in {self.directory} cannot be read: its metadata is "
                f"damaged ({_first_line(err)}).") from err
        if metadata is None or not jax.tree.leaves(_tree_of(metadata)):
            raise UnreadableCheckpointError(
                f"Checkpoint {step} in {self.directory} cannot be read: its metadata file "
                f"{os.path.join(path, '_METADATA')} is missing or empty.")
        saved = _leaf_shapes(_tree_of(metadata))
        if partial:
            saved = {k: v for k, v in saved.items() if k.startswith("params/")}
        mismatch = describe_mismatch(saved, _leaf_shapes(abstract))
        if mismatch:
            raise CheckpointMismatchError(
                f"Checkpoint {step} in {self.directory} was written by a different model"
                f"{'' if partial else ' or optimizer'} than this config builds ({mismatch}). "
                f"Use the config it was trained with (the workdir's config.json) or a new "
                f"workdir.")
        try:
            if partial:
                restore_args = ocp.checkpoint_utils.construct_restore_args(abstract)
                return ocp.PyTreeCheckpointer().restore(path, args=ocp.args.PyTreeRestore(
                    item=abstract, restore_args=restore_args, partial_restore=True))
            return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as err:  # pylint: disable=broad-except (corrupt data files)
            raise UnreadableCheckpointError(
                f"Checkpoint {step} in {self.directory} cannot be read: "
                f"{_first_line(err)}") from err

    def close(self) -> None:
        self._manager.close()


def check_finite(params: PyTree, what: str) -> None:
    """Raises `NonFiniteStateError` naming `what` when `params` hold NaN or inf."""
    if not all_finite(params):
        raise NonFiniteStateError(
            f"The parameters of {what} are not finite (NaN or inf in "
            f"{non_finite_entries(params)}); not evaluated.")


def restore_params(workdir: str, init_params: Callable[[jax.Array], PyTree],
                   mesh: jax.sharding.Mesh, step: int | None = None, *,
                   seed: int = 0) -> tuple[PyTree, int]:
    """`(params, step)`: the parameters of checkpoint `step` of `workdir`, replicated on `mesh`.

    Only the parameters are read: no optimizer is built, so evaluation, extraction
    and analyses need nothing of training. Without `step`, the newest readable
    checkpoint (see `Checkpointer.restore`).

    Args:
      workdir: the run's folder.
      init_params: `rng -> params` of the model (shapes only are computed), e.g. a
        task's `init_params`.
      mesh: the devices to replicate the parameters on.
      step: the checkpoint; None: the newest readable one.
      seed: the key `init_params` is traced with.

    Raises:
      CheckpointMismatchError: the checkpoint is of another model.
      UnreadableCheckpointError: no checkpoint can be read.
      NonFiniteStateError: the parameters hold NaN or inf.
    """
    abstract = jax.eval_shape(lambda: init_params(jax.random.key(seed)))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                          abstract)
    ckpt = Checkpointer(workdir, every_steps=0, read_only=True)
    try:
        params, step = ckpt.restore_params(target, step)
    finally:
        ckpt.close()
    check_finite(params, f"checkpoint {step} in {ckpt.directory}")
    return params, step


def _looks_like_checkpoints(directory: str) -> bool:
    """Whether `directory` holds numbered checkpoint folders itself."""
    return os.path.isdir(directory) and any(
        name.isdigit() and os.path.isdir(os.path.join(directory, name))
        for name in os.listdir(directory))


def _abstract_leaf(x: Any) -> Any:
    """A ShapeDtypeStruct of `x`, keeping its sharding when it has one."""
    if isinstance(x, jax.ShapeDtypeStruct):
        return x
    if isinstance(x, jax.Array):
        return ocp.utils.to_shape_dtype_struct(x)
    return np.zeros(x.shape, x.dtype)  # Restored as a NumPy array.


def _tree_of(metadata: Any) -> PyTree:
    """The pytree of a checkpoint's item metadata (a `TreeMetadata` or a plain tree)."""
    return getattr(metadata, "tree", metadata)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:400]


def _key_name(entry: Any) -> str:
    """A tree path entry as text, whether it is a dict key, an index or an attribute."""
    for attr in ("key", "idx", "name"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def _leaf_names(tree: PyTree) -> dict[str, Any]:
    """`{"opt_state/0/mu/...": leaf}` for every leaf of `tree`."""
    return {"/".join(_key_name(k) for k in path): leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _leaf_shapes(tree: PyTree) -> dict[str, tuple[int, ...]]:
    """`{"opt_state/0/mu/...": shape}` for every leaf of `tree` (arrays or metadata)."""
    return {name: tuple(getattr(leaf, "shape", ())) for name, leaf in _leaf_names(tree).items()}


def describe_mismatch(saved: dict[str, tuple[int, ...]], wanted: dict[str, tuple[int, ...]],
                      *, examples: int = 3) -> str:
    """How two `_leaf_shapes` maps differ, in words; empty when they agree."""
    parts = []
    for label, names in (("only in the checkpoint", sorted(saved.keys() - wanted.keys())),
                         ("only in this config's state", sorted(wanted.keys() - saved.keys()))):
        if names:
            parts.append(f"{len(names)} entries {label}, e.g. {', '.join(names[:examples])}")
    reshaped = sorted(k for k in saved.keys() & wanted.keys() if saved[k] != wanted[k])
    if reshaped:
        parts.append(f"{len(reshaped)} entries with other shapes, e.g. " + ", ".join(
            f"{k} {saved[k]} vs {wanted[k]}" for k in reshaped[:examples]))
    return "; ".join(parts)
