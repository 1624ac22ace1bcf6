"""Training steps for tests: a few data-parallel steps of a task on one fixed batch."""

import jax

from aloe import parallel
from aloe import tasks
from aloe import train


def train_on_one_batch(config, steps: int):
    """`steps` data-parallel training steps (4 devices) on the batch of step 0.

    Returns the task, the step-0 batch, the metrics of every step (each computed
    before its update) and the initial and final parameters.
    """
    task = tasks.build(config)
    mesh = parallel.make_mesh()
    tx = train.make_optimizer(config.optimizer, config.train.steps)
    initial = train.init_state(task, tx, config.seed)
    state = parallel.replicate(initial, mesh)
    step = parallel.data_parallel(train.make_train_step(task, tx, config.seed), mesh,
                                  in_specs=(parallel.REPLICATED, parallel.SHARDED),
                                  out_specs=(parallel.REPLICATED, parallel.REPLICATED))
    host_batch = task.train_batch(0)
    batch = parallel.shard_batch(host_batch, mesh)
    history = []
    for _ in range(steps):
        state, metrics = step(state, batch)
        history.append(jax.device_get(metrics))
    return task, host_batch, history, initial.params, jax.device_get(state.params)
