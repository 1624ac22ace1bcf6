"""Tasks: what a model computes from a batch (losses, predictions, metrics).

A task is the only thing the train and eval loops know about a dataset and a
model: an object of the `Task` protocol, built from a config by `build`, which
looks `config.task` up in the registry `TASKS` (`register` adds one).
"""

import importlib
from typing import Any, Callable, Iterator, Optional, Protocol, runtime_checkable

import jax
import ml_collections
import numpy as np

PyTree = Any
Batch = dict[str, Any]


@runtime_checkable
class Task(Protocol):
    """What the training and evaluation loops call.

    A batch is a dict of NumPy arrays (nested dicts allowed); evaluation batches
    carry host-only metadata under the key 'meta', which never reaches a device.
    """

    def init_params(self, rng: jax.Array) -> PyTree:
        """Fresh model parameters from `rng` (no data read)."""

    def train_batch(self, step: int) -> Batch:
        """This process's rows of the global batch of `step`.

        A pure function of (seed, step, process), so a resumed run replays exactly.
        """

    def loss(self, params: PyTree, batch: Batch,
             rng: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        """`(loss, metrics)` on one device's rows, in training mode (dropout on).

        Means over the rows, so that the mean over devices is the global batch's.
        """

    def eval_batches(self, split: str) -> Iterator[Batch]:
        """Every example of `split` once (padding rows marked invalid), this process's rows."""

    def num_eval_batches(self, split: str) -> Optional[int]:
        """How many batches `eval_batches(split)` yields (for progress lines), None if unknown."""

    def predict(self, params: PyTree, batch: Batch) -> dict[str, jax.Array]:
        """Outputs of one device's rows, deterministic."""

    def eval_record(self, batch: Batch, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """What `summarize` needs of one evaluated batch (its valid rows, NumPy)."""

    def summarize(self, records: dict[str, np.ndarray], out_dir: str, tag: str) -> dict:
        """Metrics (and result files in `out_dir`, named with `tag`) of an evaluated split.

        `records` is the concatenation of `eval_record` over every batch of
        every process.
        """

    def summary_images(self, params: PyTree, batch: Batch) -> dict[str, np.ndarray]:
        """TensorBoard images `{name: uint8 [N, H, W, C]}` of a batch; empty when none."""


TaskFactory = Callable[..., Task]

# config.task -> "module:Class", imported on first use (a task's data libraries are
# imported only when the task is built).
TASKS: dict[str, str | TaskFactory] = {
    "clevrer": "aloe.tasks.clevrer:ClevrerTask",
    "cater": "aloe.tasks.cater:CaterTask",
    "monet": "aloe.tasks.monet:MonetTask",
}


def register(name: str, factory: str | TaskFactory) -> None:
    """Adds a task: `factory(config, process_index=, process_count=)` or "module:Class"."""
    if name in TASKS:
        raise ValueError(f"A task named {name!r} is registered already.")
    TASKS[name] = factory


def build(config: ml_collections.ConfigDict, *, process_index: int = 0,
          process_count: int = 1) -> Task:
    """The task named by `config.task`, for this process of `process_count`."""
    if config.task not in TASKS:
        raise ValueError(f"Unknown task {config.task!r} in config.task; known: "
                         f"{', '.join(map(repr, TASKS))}.")
    factory = TASKS[config.task]
    if isinstance(factory, str):
        module, _, name = factory.partition(":")
        factory = getattr(importlib.import_module(module), name)
    return factory(config, process_index=process_index, process_count=process_count)
