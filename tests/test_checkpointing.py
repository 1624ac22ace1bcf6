"""Checkpointer: round trip, params-only restore, fallback past unreadable checkpoints, no
non-finite saves, and clear errors for a checkpoint of another model or optimizer."""

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


def test_restore_params_needs_no_optimizer(saved):
    params = _state(optax.adam(1e-3))["params"]
    restored, step = saved.restore_params(jax.tree.map(np.zeros_like, params))
    assert step == 1
    jax.tree.map(np.testing.assert_array_equal, restored, params)
    with pytest.raises(checkpointing.CheckpointMismatchError,
                       match=r"different model than .*params/w \(3, 4\) vs \(2, 2\)"):
        saved.restore_params({"w": np.zeros((2, 2), np.float32)})


# Reading a damaged checkpoint leaves tensorstore callbacks for a closed event loop.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_unreadable_newest_checkpoint_falls_back_to_the_previous(tmp_path):
    ckpt = checkpointing.Checkpointer(str(tmp_path), every_steps=1)
    first, second = _state(optax.adam(1e-3)), _state(optax.adam(1e-3), shape=(3, 4))
    second["params"]["w"] = second["params"]["w"] + 1
    ckpt.save(1, first)
    ckpt.save(2, second)
    for path in (tmp_path / "checkpoints" / "2").rglob("*"):
        if path.is_file() and path.parent.name == "d":
            path.unlink()  # The data files of step 2 are gone.
    restored = ckpt.restore(jax.tree.map(jnp.zeros_like, first))
    jax.tree.map(np.testing.assert_array_equal, restored, first)
    assert list(ckpt.skipped) == [2] and "Checkpoint 2 in" in ckpt.skipped[2]
    with pytest.raises(checkpointing.UnreadableCheckpointError, match="Checkpoint 2 in"):
        ckpt.restore(first, step=2)
    ckpt.set_aside([2])
    assert ckpt.all_steps() == [1]
    ckpt.save(2, second)  # The step can be written again.
    jax.tree.map(np.testing.assert_array_equal, ckpt.restore(first), second)


def test_non_finite_state_is_not_saved(saved):
    state = _state(optax.adam(1e-3))
    state["opt"][0].mu["w"] = state["opt"][0].mu["w"].at[0, 0].set(jnp.inf)
    with pytest.raises(checkpointing.NonFiniteStateError,
                       match=r"after step 2 is not finite .*opt/0/mu/w.* newest checkpoint .* "
                             r"is step 1"):
        saved.save(2, state)
    assert saved.all_steps() == [1]
