"""`aloe.gradients`: a batch's loss and gradients computed in equal parts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aloe import gradients


def _loss(params, batch, rng):
    """A mean over two sub-batches of different sizes, with a per-example metric."""
    del rng
    hidden = jnp.tanh(batch["x"] @ params["w"])
    a = jnp.mean((hidden.sum(-1) - batch["y"]) ** 2)
    b = jnp.mean(jnp.abs(batch["z"] @ params["v"]))
    return a + b, {"a": a, "positive": jnp.mean(hidden > 0)}


def _inputs():
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(3, 5)), jnp.float32),
              "v": jnp.asarray(rng.normal(size=(2,)), jnp.float32)}
    batch = {"x": jnp.asarray(rng.normal(size=(8, 3)), jnp.float32),
             "y": jnp.asarray(rng.normal(size=(8,)), jnp.float32),
             "z": jnp.asarray(rng.normal(size=(4, 2)), jnp.float32)}
    return params, batch


@pytest.mark.parametrize("parts", [2, 4])
def test_parts_give_the_whole_batch_value_aux_and_gradients(parts):
    params, batch = _inputs()
    (loss, aux), grads = jax.value_and_grad(_loss, has_aux=True)(params, batch, None)
    split_fn = jax.jit(gradients.value_and_grad_in_parts(_loss, parts))
    (loss_p, aux_p), grads_p = split_fn(params, batch, jax.random.key(0))
    np.testing.assert_allclose(loss_p, loss, rtol=1e-6)
    for name in aux:
        np.testing.assert_allclose(aux_p[name], aux[name], rtol=1e-6)
    for a, b in zip(jax.tree.leaves(grads_p), jax.tree.leaves(grads)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_each_part_gets_its_own_key_and_one_part_is_plain_value_and_grad():
    seen = []

    def loss(params, batch, rng):
        seen.append(rng)
        return jnp.mean(batch * params), {}

    gradients.value_and_grad_in_parts(loss, 2)(1.0, jnp.ones(4), jax.random.key(7))
    keys = [jax.random.key_data(k) for k in seen]
    np.testing.assert_array_equal(keys[0], jax.random.key_data(jax.random.fold_in(
        jax.random.key(7), 0)))
    assert not np.array_equal(keys[0], keys[1])
    seen.clear()
    gradients.value_and_grad_in_parts(loss, 1)(1.0, jnp.ones(4), jax.random.key(7))
    np.testing.assert_array_equal(jax.random.key_data(seen[0]),
                                  jax.random.key_data(jax.random.key(7)))


def test_a_field_the_parts_do_not_divide_is_named():
    params, batch = _inputs()
    with pytest.raises(ValueError, match=r"\['z'\] of shape \(4, 2\) into 8 equal parts"):
        gradients.value_and_grad_in_parts(_loss, 8)(params, batch, None)
    with pytest.raises(ValueError, match="1 or more, got 0"):
        gradients.value_and_grad_in_parts(_loss, 0)
