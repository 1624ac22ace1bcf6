"""The evaluation loop, as a library: `evaluate(config, workdir)`.

Runs a whole split deterministically on every device of every process, gathers
what the task needs from each batch, and lets the task compute its metrics and
write its result files. Process 0 prints the metrics and writes them to
`{workdir}/eval_{split}_{step}.json` (`eval_{split}_{step}_{eval.tag}.json` with
`eval.tag` set, which names the task's files too).
"""

import itertools
import json
import os
import tempfile
from typing import Any, Optional

from absl import logging
import jax
import ml_collections
import numpy as np

from aloe import checkpointing
from aloe import parallel
from aloe import reporting
from aloe import run_config
from aloe import tasks

PyTree = Any


def run_split(task: tasks.Task, params: PyTree, split: str, mesh: jax.sharding.Mesh, *,
              max_batches: Optional[int] = None, first_batch: Optional[list] = None,
              predict: Any = None) -> dict:
    """Evaluates `params` on `split`; returns the gathered records.

    Args:
      task: the task (`aloe.tasks`).
      params: replicated parameters.
      split: the split to evaluate.
      mesh: the device mesh.
      max_batches: evaluate only the first this many batches (the same fixed
        examples every time); None: every example.
      first_batch: if given, a list the first host batch is appended to.
      predict: `make_predict(task, mesh)` compiled earlier; default: compiled here.

    Progress lines (batches done, rate, ETA when the count is known) are logged
    every 10 seconds.
    """
    predict = predict or make_predict(task, mesh)
    total = task.num_eval_batches(split)
    if max_batches is not None:
        total = max_batches if total is None else min(total, max_batches)
    progress = reporting.Progress(f"evaluating {split}", total)
    records: list[dict[str, np.ndarray]] = []
    for batch in itertools.islice(task.eval_batches(split), max_batches):
        if first_batch is not None and not records:
            first_batch.append(batch)
        inputs = {k: v for k, v in batch.items() if k != "meta"}
        outputs = parallel.to_host(predict(params, parallel.shard_batch(inputs, mesh)), mesh)
        records.append(task.eval_record(batch, outputs))
        progress.update()
    if not records:
        raise ValueError(f"Split {split!r} yielded no evaluation batches.")
    progress.done()
    local = {key: np.concatenate([r[key] for r in records]) for key in records[0]}
    return parallel.gather_from_processes(local)


class Validator:
    """Validation during training: `run_split` and `task.summarize`, to TensorBoard.

    Every numeric metric of the final evaluation's JSON goes to the writer as
    `valid/{name}`; a task that draws pictures (`summary_images`) adds those of
    the first batch as `valid/{name}`. The task's result files go to a temporary
    folder and are dropped. Deterministic: no random numbers, and the training
    batches are untouched, so a resumed run stays exact. Every process must call
    it at the same steps.

    Args:
      task: the training task.
      mesh: the device mesh.
      split: the split to validate on.
      max_batches: its first this many batches (a fixed subset); None: all.
    """

    def __init__(self, task: tasks.Task, mesh: jax.sharding.Mesh, split: str,
                 max_batches: Optional[int] = None):
        self.task, self.mesh, self.split, self.max_batches = task, mesh, split, max_batches
        self.predict = make_predict(task, mesh)  # Compiled once for every validation.

    def __call__(self, params: PyTree, step: int, writer: Any) -> dict[str, Any]:
        """Validates `params` and writes the results at `step`; metrics on process 0, else {}."""
        task, split = self.task, self.split
        first: list = []
        records = run_split(task, params, split, self.mesh, max_batches=self.max_batches,
                            first_batch=first, predict=self.predict)
        if jax.process_index() != 0:
            return {}
        with tempfile.TemporaryDirectory() as scratch:
            results = task.summarize(records, scratch, f"{split}_{step}")
        scalars = {f"valid/{k}": float(v) for k, v in results.items()
                   if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}
        writer.write_scalars(step, scalars)
        local = jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), params)
        images = task.summary_images(local, first[0])
        if images:
            writer.write_images(step, {f"valid/{name}": image for name, image in images.items()})
        writer.flush()
        shown = "  ".join(f"{k}={v:.4g}" for k, v in sorted(scalars.items()))
        logging.info("validation at step %d on %s: %s", step, split, shown)
        return results


def make_predict(task: tasks.Task, mesh: jax.sharding.Mesh) -> Any:
    """`task.predict` compiled over every device of `mesh` (replicated params, sharded batch)."""
    return parallel.data_parallel(task.predict, mesh,
                                  in_specs=(parallel.REPLICATED, parallel.SHARDED),
                                  out_specs=parallel.SHARDED)


def evaluate(config: ml_collections.ConfigDict, workdir: str, *, step: int | None = None,
             params: PyTree | None = None, split: str | None = None) -> dict[str, Any]:
    """Evaluates a checkpoint (or given parameters) on a split.

    Args:
      config: the experiment config.
      workdir: where the checkpoints are and the results go.
      step: which checkpoint; None = the latest. Ignored when `params` is given.
      params: replicated parameters to evaluate instead of a checkpoint.
      split: the split to evaluate; default `config.eval.split`.

    Returns:
      The task's metrics (plus `step` and `split`).
    """
    task = tasks.build(config, process_index=jax.process_index(),
                       process_count=jax.process_count())
    mesh = parallel.make_mesh()
    split = split or config.eval.split
    if params is None:
        run_config.check_vocab(task, workdir)
        params, step = checkpointing.restore_params(workdir, task.init_params, mesh, step,
                                                    seed=config.seed)
    else:
        checkpointing.check_finite(params, f"step {step}")
    tag = reporting.evaluation_tag(split, step, config.eval.tag)
    records = run_split(task, params, split, mesh)
    results: dict[str, Any] = {}
    if jax.process_index() == 0:
        results = task.summarize(records, workdir, tag)
        results.update(step=step, split=split)
        with open(os.path.join(workdir, f"eval_{tag}.json"), "w") as f:
            json.dump(results, f, indent=2, sort_keys=True)
        lines = [f"{k:>32s}: {v:.4f}" if isinstance(v, float) else f"{k:>32s}: {v}"
                 for k, v in sorted(results.items())]
        logging.info("Wrote evaluation of step %s on %s to %s", step, split, workdir)
        print(f"Evaluation of step {step} on {split}:\n" + "\n".join(lines), flush=True)
    return results
