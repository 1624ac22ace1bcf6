"""The training loop, as a library: `train(config, workdir)`.

The loop knows nothing about datasets or models: a task (`aloe.tasks.build`)
supplies process-local NumPy batches for each step, the per-device loss and the
initial parameters. The loop owns the optimizer (optax LAMB with linear warmup),
the data-parallel step, stateless random numbers, checkpoints, preemption and
logging.

Random numbers: the step's key is `fold_in(fold_in(key(seed), step), device)`, so
a run resumed from a checkpoint replays exactly the steps it would have taken.
"""

import collections
import os
import queue
import threading
import time
from typing import Any, Iterator

from absl import logging
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from aloe import checkpointing
from aloe import gradients
from aloe import parallel
from aloe import run_config
from aloe import reporting
from aloe import tasks

PyTree = Any


@flax.struct.dataclass
class TrainState:
    """Everything a checkpoint holds: `step` counts finished steps."""
    step: jax.Array
    params: PyTree
    opt_state: PyTree


def make_schedule(config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    """Linear warmup from 0 to `learning_rate`, then constant or cosine decay."""
    warmup = config.warmup_steps
    if config.schedule == "constant":
        after = optax.constant_schedule(config.learning_rate)
    elif config.schedule == "cosine":
        after = optax.cosine_decay_schedule(config.learning_rate, max(1, total_steps - warmup))
    else:
        raise ValueError(f"optimizer.schedule must be 'constant' or 'cosine', got {config.schedule!r}.")
    if warmup <= 0:
        return after
    ramp = optax.linear_schedule(0.0, config.learning_rate, warmup)
    return optax.join_schedules([ramp, after], [warmup])


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
    """The optimizer named by `config.name` ('lamb', 'adam' or 'rmsprop')."""
    schedule = make_schedule(config, total_steps)
    if config.name == "lamb":
        tx = optax.lamb(schedule, weight_decay=config.weight_decay)
    elif config.name == "adam":
        tx = optax.adamw(schedule, weight_decay=config.weight_decay)
    elif config.name == "rmsprop":
        tx = optax.rmsprop(schedule)
    else:
        raise ValueError(f"optimizer.name must be 'lamb', 'adam' or 'rmsprop', got {config.name!r}.")
    if config.grad_clip_norm > 0:
        tx = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), tx)
    return tx


def init_state(task: tasks.Task, tx: optax.GradientTransformation, seed: int) -> TrainState:
    """Fresh parameters and optimizer state (identical on every process)."""
    params = task.init_params(jax.random.key(seed))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))


def load_params(source: str, target: PyTree) -> tuple[PyTree, int]:
    """`(params, step)` of the newest readable checkpoint of `source`, shaped like `target`.

    Args:
      source: a workdir or its `checkpoints` directory.
      target: parameters (arrays or `jax.ShapeDtypeStruct`s) of the model to fill.

    Raises:
      checkpointing.CheckpointMismatchError: naming `source` and the differing entries.
      FileNotFoundError / checkpointing.UnreadableCheckpointError: as the names say.
    """
    ckpt = checkpointing.Checkpointer(source, every_steps=0, read_only=True)
    try:
        return ckpt.restore_params(target)
    finally:
        ckpt.close()


def starting_state(config: ml_collections.ConfigDict, task: tasks.Task,
                   tx: optax.GradientTransformation, ckpt: checkpointing.Checkpointer,
                   mesh: jax.sharding.Mesh) -> tuple[TrainState, int | None]:
    """The replicated state a run starts from, and the step of the checkpoint it came from.

    The workdir's newest readable checkpoint if it has any (unreadable newer ones are
    moved aside, so the run can save those steps again); else, when
    `train.init_from` names a workdir, its newest readable checkpoint's parameters
    with a fresh optimizer at step 0; else fresh parameters.
    """
    fresh = init_state(task, tx, config.seed)
    if ckpt.all_steps():
        run_config.check_vocab(task, os.path.dirname(ckpt.directory))
        state = ckpt.restore(parallel.replicate(fresh, mesh))
        if ckpt.skipped:
            ckpt.set_aside(sorted(ckpt.skipped))
        return state, int(state.step)
    init_from = config.train.get("init_from", "")
    if init_from:
        try:
            params, step = load_params(init_from, fresh.params)
        except checkpointing.CheckpointMismatchError as err:
            raise checkpointing.CheckpointMismatchError(
                f"config.train.init_from = {init_from!r}: {err}") from None
        logging.info("Initialised the parameters from checkpoint %d of %s (fresh optimizer, "
                     "step 0).", step, init_from)
        fresh = TrainState(step=fresh.step, params=params, opt_state=tx.init(params))
    return parallel.replicate(fresh, mesh), None


def make_train_step(task: tasks.Task, tx: optax.GradientTransformation, seed: int,
                    microbatches: int = 1):
    """The per-device train step `(state, batch) -> (state, metrics)`.

    It must run under `parallel.data_parallel` (or `jax.pmap` with
    `axis_name=parallel.AXIS`): gradients and metrics are averaged over the
    devices with `lax.pmean`. With `microbatches` > 1 each device computes its
    batch's gradient in that many equal parts (`aloe.gradients`).
    """
    grad_fn = gradients.value_and_grad_in_parts(task.loss, microbatches)

    def step_fn(state: TrainState, batch: PyTree) -> tuple[TrainState, dict[str, jax.Array]]:
        device = jax.lax.axis_index(parallel.AXIS)
        rng = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), state.step), device)
        (loss, metrics), grads = grad_fn(state.params, batch, rng)
        grads = jax.lax.pmean(grads, parallel.AXIS)
        metrics = jax.lax.pmean({**metrics, "loss": loss}, parallel.AXIS)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics["grad_norm"] = optax.global_norm(grads)
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return step_fn


def _prefetch(make_batch, steps: range, depth: int = 2) -> Iterator[PyTree]:
    """Builds the batches of `steps` on a background thread, `depth` ahead."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce():
        try:
            for step in steps:
                item = make_batch(step)
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as e:  # Re-raised in the consumer, with its traceback.
            slots.put(e)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        for _ in steps:
            item = slots.get()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _fetch_and_check(history: list[tuple[int, dict[str, Any]]],
                     last_saved: int | None) -> list[tuple[int, dict[str, Any]]]:
    """Fetches the recorded metrics to the host; raises at a NaN or infinite loss."""
    history = [(step, jax.device_get(metrics)) for step, metrics in history]
    for step, metrics in history:
        loss = float(metrics["loss"])
        if not np.isfinite(loss):
            raise FloatingPointError(
                f"Non-finite loss {loss} at step {step}. Training stopped; no checkpoint was "
                f"written after it (latest good checkpoint: step {last_saved}). Lower the "
                f"learning rate or check the input data.")
    return history


def train(config: ml_collections.ConfigDict, workdir: str,
          preemption: checkpointing.PreemptionFlag | None = None, *,
          allow_config_change: bool = False) -> TrainState:
    """Trains `config`'s task in `workdir`, resuming from its latest checkpoint.

    Args:
      config: a full experiment config (see `configs/`).
      workdir: checkpoints, TensorBoard events and evaluation results go here.
      preemption: a stop flag to poll; default: one that catches SIGTERM.
      allow_config_change: resume even when `config` changes fields of the
        workdir's `config.json` that alter the optimisation (`aloe.run_config`);
        the change is recorded.

    Raises:
      run_config.ConfigChangeError: resuming with such changes, unless allowed.
      checkpointing.NonFiniteStateError: when a state to be saved is not finite
        (the newest checkpoint on disk stays the last finite one).

    Returns:
      The final training state (replicated global arrays).
    """
    task = tasks.build(config, process_index=jax.process_index(),
                       process_count=jax.process_count())
    mesh = parallel.make_mesh()
    total = config.train.steps
    tx = make_optimizer(config.optimizer, total)
    ckpt = checkpointing.Checkpointer(workdir, every_steps=config.train.checkpoint_every,
                                      keep=config.train.keep_checkpoints)
    resuming = bool(ckpt.all_steps())
    changes = (run_config.check_resume(config, workdir, allow_change=allow_config_change)
               if resuming else run_config.differences(run_config.read(workdir) or {},
                                                       run_config.flatten(config)))
    state, last_saved = starting_state(config, task, tx, ckpt, mesh)
    # Written only now that the config has been checked against the checkpoint.
    run_config.record(config, workdir, changes, allowed_by_flag=allow_config_change)
    run_config.record_vocab(task, workdir, overwrite=not resuming)
    start = int(state.step)
    logging.info("Task %s: %s parameters; training steps %d..%d on %d devices (%d processes).",
                 config.task, f"{_count(state.params):,}", start, total, jax.device_count(),
                 jax.process_count())

    step_fn = parallel.data_parallel(
        make_train_step(task, tx, config.seed, config.train.microbatches), mesh,
        in_specs=(parallel.REPLICATED, parallel.SHARDED),
        out_specs=(parallel.REPLICATED, parallel.REPLICATED), donate_argnums=(0,))
    writer = reporting.create_writer(workdir, enabled=jax.process_index() == 0)
    schedule = make_schedule(config.optimizer, total)
    validate = _make_validator(config, task, mesh)
    own_flag = preemption is None
    preemption = preemption or checkpointing.PreemptionFlag()
    history: list[tuple[int, dict[str, Any]]] = []
    log_every = max(1, config.train.log_every)
    tick, tick_step = time.time(), start
    try:
        for step, batch in zip(range(start, total),
                               _prefetch(task.train_batch, range(start, total))):
            state, metrics = step_fn(state, parallel.shard_batch(batch, mesh))
            done = step + 1
            if history:
                # At most two steps in flight: the device always has the next step
                # queued, and host memory holds two steps' batches, not `log_every`.
                # Unbounded async dispatch also deadlocks XLA:CPU with several
                # devices in one process: once a device's queue of pending
                # executions is full, its launches wait while holding the worker
                # threads the other devices need to finish the collectives.
                jax.block_until_ready(history[-1][1])
            history.append((done, metrics))
            stop = _should_stop(preemption, ckpt, done, total)
            if done % log_every == 0 or done == total or stop:
                history = _fetch_and_check(history, last_saved)
                now = time.time()
                rate = (done - tick_step) / max(now - tick, 1e-9)
                _log(writer, history, done, total, rate, float(schedule(done - 1)))
                tick, tick_step, history = now, done, []
            if ckpt.due(done) or done == total or stop:
                history = _fetch_and_check(history, last_saved)
                ckpt.save(done, state)
                last_saved = done
                _write_images(writer, task, state.params, batch, done)
            if validate and done % config.train.eval_every == 0:
                started = time.time()
                validate(state.params, done, writer)
                tick += time.time() - started  # steps/s and the ETA leave validation out.
            if stop:
                logging.warning("Stopped at step %d on request; resume by running again.", done)
                break
    finally:
        writer.flush()
        ckpt.close()
        if own_flag:
            preemption.restore()
    return state


# With several processes, a stop request seen by one process is acted on at the
# next step that is a multiple of this, where every process asks the others.
PREEMPTION_SYNC_EVERY = 10


def _should_stop(preemption: checkpointing.PreemptionFlag, ckpt: checkpointing.Checkpointer,
                 done: int, total: int) -> bool:
    """Whether to checkpoint and stop after step `done`; the same on every process.

    One process alone may have received SIGTERM; acting on it at once would let
    it enter a save the others never join. So the local flag is shared only at
    steps every process knows (every `PREEMPTION_SYNC_EVERY` steps).
    """
    stop = ckpt.reached_preemption(done)  # JAX's own preemption sync, agreed by design.
    if jax.process_count() == 1:
        return stop or preemption.is_set()
    if done % PREEMPTION_SYNC_EVERY == 0 or done == total:
        stop = parallel.any_process(preemption.is_set()) or stop
    return stop


def _write_images(writer, task: tasks.Task, params: PyTree, batch: PyTree, step: int) -> None:
    """TensorBoard images of the task (`task.summary_images`, may be none), process 0.

    `summary_images(params, batch) -> {name: uint8 [N, H, W, C]}` gets this process's
    copy of the (replicated) parameters and its rows of the step's batch.
    """
    if jax.process_index() != 0:
        return
    local = jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), params)
    images = task.summary_images(local, batch)
    if images:
        writer.write_images(step, images)


def _make_validator(config: ml_collections.ConfigDict, task: tasks.Task, mesh: jax.sharding.Mesh):
    """Validation every `train.eval_every` steps (None when 0 or unset).

    It evaluates the first `train.eval_batches` batches of `eval.split` (0: all)
    with `aloe.evaluate.Validator`: no random numbers, no training batches, so
    resumed runs stay exact.
    """
    if config.train.get("eval_every", 0) <= 0:
        return None
    from aloe import evaluate  # pylint: disable=g-import-not-at-top (evaluate imports train)
    return evaluate.Validator(task, mesh, config.eval.split,
                              config.train.get("eval_batches", 0) or None)


def _log(writer, history, step: int, total: int, steps_per_sec: float,
         learning_rate: float) -> None:
    """Writes the mean of the metrics since the last log, and one console line."""
    sums = collections.defaultdict(float)
    for _, metrics in history:
        for name, value in metrics.items():
            sums[name] += float(value)
    means = {name: value / len(history) for name, value in sums.items()}
    writer.write_scalars(step, {**{f"train/{k}": v for k, v in means.items()},
                                "train/steps_per_sec": steps_per_sec,
                                "train/learning_rate": learning_rate})
    eta = (total - step) / max(steps_per_sec, 1e-9)
    shown = "  ".join(f"{k}={v:.4g}" for k, v in sorted(means.items()))
    eta = int(eta)
    logging.info("step %d/%d  %s  lr=%.3g  %.2f steps/s  ETA %d:%02d:%02d", step, total, shown,
                 learning_rate, steps_per_sec, eta // 3600, eta % 3600 // 60, eta % 60)


def _count(params: PyTree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
