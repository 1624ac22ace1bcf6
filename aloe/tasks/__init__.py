"""Tasks: what a model computes from a batch (losses, predictions, metrics).

A task is the only thing the train and eval loops know about a dataset and a
model. It provides:

- `init_params(rng) -> params`
- `train_batch(step) -> batch`: this process's NumPy rows of the global batch of
  `step`, a pure function of (seed, step, process), so resumed runs replay exactly;
- `loss(params, batch, rng) -> (loss, metrics)`: per device, in training mode;
- `eval_batches(split) -> iterator of batch`: every example once; host-only
  metadata under the key 'meta';
- `predict(params, batch) -> outputs`: per device, deterministic;
- `summarize(records, out_dir, tag) -> metrics`: metrics (and result files) from
  the concatenated `eval_record` of every batch of every process;
- `eval_record(batch, outputs) -> dict of NumPy arrays`: what `summarize` needs
  of one evaluated batch.
- optionally `num_eval_batches(split) -> int`: how many batches `eval_batches`
  yields, for the evaluation's progress lines (ETA).
"""

from typing import Any

import ml_collections


def build(config: ml_collections.ConfigDict, *, process_index: int = 0,
          process_count: int = 1) -> Any:
    """The task named by `config.task`."""
    if config.task == "clevrer":
        from aloe.tasks import clevrer  # pylint: disable=g-import-not-at-top
        return clevrer.ClevrerTask(config, process_index=process_index,
                                   process_count=process_count)
    if config.task == "cater":
        from aloe.tasks import cater  # pylint: disable=g-import-not-at-top
        return cater.CaterTask(config, process_index=process_index,
                               process_count=process_count)
    if config.task == "monet":
        from aloe.tasks import monet  # pylint: disable=g-import-not-at-top
        return monet.MonetTask(config, process_index=process_index,
                               process_count=process_count)
    raise ValueError(f"Unknown task {config.task!r} in config.task; known: 'clevrer', 'cater', "
                     f"'monet'.")
