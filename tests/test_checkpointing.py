"""Checkpointer: round trip, and a clear error for a checkpoint of another model or optimizer."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aloe import checkpointing


def _state(optimizer, shape=(3, 4)):
    params = {"w": jnp.arange(np.prod(shape), dtype=jnp.float32).reshape(shape)}
    return {"params": params, "opt": optimizer.init(params)}


@pytest.fixture
def saved(tmp_path):
    ckpt = checkpointing.Checkpointer(str(tmp_path), every_steps=1)
    ckpt.save(1, _state(optax.adam(1e-3)))
    return ckpt


def test_round_trip(saved):
    state = _state(optax.adam(1e-3))
    restored = saved.restore(jax.tree.map(jnp.zeros_like, state))
    jax.tree.map(np.testing.assert_array_equal, restored, state)


def test_other_optimizer_is_named(saved):
    with pytest.raises(ValueError, match=r"Checkpoint 1 in .*checkpoints was written by a "
                                         r"different model or optimizer.*2 entries only in "
                                         r"the checkpoint, e.g. opt/0/count, opt/0/mu/w"):
        saved.restore(_state(optax.rmsprop(1e-3)))


def test_other_shapes_are_named(saved):
    with pytest.raises(ValueError, match=r"3 entries with other shapes, e.g. "
                                         r"opt/0/mu/w \(3, 4\) vs \(3, 5\)"):
        saved.restore(_state(optax.adam(1e-3), shape=(3, 5)))


def test_describe_mismatch_is_empty_for_equal_trees():
    shapes = {"a/b": (2,), "c": ()}
    assert checkpointing.describe_mismatch(shapes, dict(shapes)) == ""
    assert checkpointing.describe_mismatch(shapes, {"a/b": (2,)}) == (
        "1 entries only in the checkpoint, e.g. c")
