"""Checkpoints: orbax `CheckpointManager` with resume and preemption handling.

A run saves every `every_steps` steps, at the end, and when the process is asked
to stop (SIGTERM, the signal schedulers and TPU/GPU preemption send). Started on
a workdir that already holds checkpoints, it resumes from the latest one, so a
preempted job loses at most the steps since its last save.
"""

import os
import signal
import threading
from typing import Any

from absl import logging
import jax
import orbax.checkpoint as ocp

PyTree = Any


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


class Checkpointer:
    """Saves and restores a training-state pytree under `{workdir}/checkpoints`."""

    def __init__(self, workdir: str, *, every_steps: int, keep: int = 3):
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        self.every_steps = every_steps
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, enable_async_checkpointing=False),
            item_handlers=ocp.StandardCheckpointHandler())

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or None."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def due(self, step: int) -> bool:
        """Whether the regular schedule asks for a checkpoint after `step` steps."""
        return self.every_steps > 0 and step % self.every_steps == 0

    def reached_preemption(self, step: int) -> bool:
        """True when the JAX distributed service reports a preemption notice."""
        return self._manager.reached_preemption(step)

    def save(self, step: int, state: PyTree) -> None:
        """Writes `state` as checkpoint `step` (atomically; no-op if it exists)."""
        if step in self._manager.all_steps():
            return
        self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
        self._manager.wait_until_finished()
        logging.info("Saved checkpoint %d in %s", step, self.directory)

    def restore(self, target: PyTree, step: int | None = None) -> PyTree:
        """Restores checkpoint `step` (default: latest) with `target`'s structure.

        Args:
          target: a pytree of arrays (or `jax.ShapeDtypeStruct`s) of the state's
            structure; restored arrays take its shardings.
          step: the checkpoint to read; None means the latest.

        Raises:
          FileNotFoundError: naming the directory, when there is no such checkpoint.
          ValueError: naming the checkpoint and the entries that differ, when it was
            written by a different model or optimizer than `target`'s.
        """
        available = self.all_steps()
        if step is None:
            step = self.latest_step()
        if step is None or step not in available:
            raise FileNotFoundError(
                f"No checkpoint {'(any)' if step is None else step} in {self.directory}; "
                f"available steps: {sorted(available)}.")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        mismatch = describe_mismatch(_leaf_shapes(self._manager.item_metadata(step)),
                                     _leaf_shapes(abstract))
        if mismatch:
            raise ValueError(
                f"Checkpoint {step} in {self.directory} was written by a different model or "
                f"optimizer than this config builds ({mismatch}). Resume with the config it "
                f"was trained with (the workdir's config.json) or use a new workdir.")
        restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        logging.info("Restored checkpoint %d from %s", step, self.directory)
        return restored

    def close(self) -> None:
        self._manager.close()


def _key_name(entry: Any) -> str:
    """A tree path entry as text, whether it is a dict key, an index or an attribute."""
    for attr in ("key", "idx", "name"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def _leaf_shapes(tree: PyTree) -> dict[str, tuple[int, ...]]:
    """`{"opt_state/0/mu/...": shape}` for every leaf of `tree` (arrays or metadata)."""
    return {"/".join(_key_name(k) for k in path): tuple(getattr(leaf, "shape", ()))
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


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
