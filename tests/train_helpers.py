"""Training helpers for tests: a few data-parallel steps on one fixed batch, and checks of them."""

import jax
import jax.numpy as jnp
import numpy as np

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


def assert_resnet_trained(task, batch, initial, final) -> None:
    """The task loss's gradient reaches every ResNet parameter, and training moved them all.

    Args:
      task: a task whose model reads frames through the ResNet (`resnet_entities` parameters).
      batch: a host batch of the task (`loss` is evaluated on it).
      initial, final: the parameters before and after training.
    """
    grads = jax.jit(jax.grad(lambda p: task.loss(p, batch, jax.random.key(1))[0]))(initial)
    norms = {jax.tree_util.keystr(path): float(jnp.linalg.norm(g)) for path, g in
             jax.tree_util.tree_leaves_with_path(grads["resnet_entities"])}
    assert len(norms) > 10 and all(n > 0 for n in norms.values()), norms
    for before, after in zip(jax.tree.leaves(initial["resnet_entities"]),
                             jax.tree.leaves(final["resnet_entities"])):
        assert not np.allclose(before, after)
