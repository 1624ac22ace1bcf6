"""Mixed precision: bfloat16 compute agrees with float32 and trains; float32 parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aloe.models import monet
from aloe.models import precision
from aloe.models import transformer

# bfloat16 keeps 8 significand bits (relative rounding 2^-9 = 0.2%); through a
# few layers the errors add up to a few percent of the outputs' scale.
BF16_RELATIVE_TOLERANCE = 0.05


def relative_error(approx: jax.Array, exact: jax.Array) -> float:
    """max |approx - exact| / max |exact|, in float32."""
    approx, exact = np.asarray(approx, np.float32), np.asarray(exact, np.float32)
    return float(np.max(np.abs(approx - exact)) / np.max(np.abs(exact)))


def test_compute_dtype_names():
    assert precision.compute_dtype("auto", backend="cpu") == jnp.float32
    assert precision.compute_dtype("auto", backend="gpu") == jnp.bfloat16
    assert precision.compute_dtype("auto", backend="tpu") == jnp.bfloat16
    assert precision.compute_dtype("bfloat16") == jnp.bfloat16
    assert precision.compute_dtype(jnp.float32) == jnp.float32
    assert precision.compute_dtype(None) == jnp.float32
    with pytest.raises(ValueError, match="model.dtype"):
        precision.compute_dtype("float16")
    with pytest.raises(ValueError, match="model.dtype"):
        precision.compute_dtype(jnp.int32)


def tiny_transformer(dtype, chains=None) -> transformer.RelativeTransformer:
    return transformer.RelativeTransformer(num_layers=2, num_heads=2, head_dim=8, mlp_dim=32,
                                           dropout_rate=0.0, attention_chains=chains,
                                           output_bias=True, dtype=dtype)


@pytest.mark.parametrize("chains", [0, 1])
def test_transformer_bfloat16_forward_and_gradients_agree_with_float32(chains):
    x = jax.random.normal(jax.random.key(0), (3, 11, 16))
    mask = jnp.arange(11)[None, :] < jnp.array([[11], [7], [4]])
    f32, bf16 = tiny_transformer(jnp.float32, chains), tiny_transformer("bfloat16", chains)
    params = f32.init(jax.random.key(1), x, mask, deterministic=True)
    # The same parameters, all float32, whatever the compute dtype.
    assert jax.tree.structure(bf16.init(jax.random.key(1), x, mask, deterministic=True)) == \
        jax.tree.structure(params)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))

    def loss(model):
        return lambda p: jnp.sum(jnp.sin(model.apply(p, x, mask, deterministic=True)))

    out32 = f32.apply(params, x, mask, deterministic=True)
    out16 = bf16.apply(params, x, mask, deterministic=True)
    assert out16.dtype == jnp.float32  # The residual stream stays float32.
    assert relative_error(out16, out32) < BF16_RELATIVE_TOLERANCE
    grads32 = jax.grad(loss(f32))(params)
    grads16 = jax.grad(loss(bf16))(params)
    for path, g16 in jax.tree_util.tree_leaves_with_path(grads16):
        assert g16.dtype == jnp.float32, path
    flat32 = np.concatenate([np.ravel(g) for g in jax.tree.leaves(grads32)])
    flat16 = np.concatenate([np.ravel(g) for g in jax.tree.leaves(grads16)])
    assert relative_error(flat16, flat32) < BF16_RELATIVE_TOLERANCE
    cosine = flat16 @ flat32 / np.linalg.norm(flat16) / np.linalg.norm(flat32)
    assert cosine > 0.999, cosine


def test_transformer_bfloat16_computes_in_bfloat16():
    """The attention's matmuls take bfloat16 operands (seen in the jaxpr)."""
    x = jnp.ones((1, 5, 16))
    model = tiny_transformer("bfloat16")
    params = model.init(jax.random.key(0), x, deterministic=True)
    jaxpr = str(jax.make_jaxpr(lambda p: model.apply(p, x, deterministic=True))(params))
    assert "bf16[5,48]" in jaxpr  # q, k and v of the 5 tokens.
    assert "bf16[5,32]" in jaxpr  # The feed-forward's hidden units.


def test_bfloat16_transformer_learns():
    """A short bfloat16 run fits a per-sequence target (loss falls by 10x)."""
    model = tiny_transformer("bfloat16", chains=0)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(8, 6, 16)).astype(np.float32))
    targets = jnp.asarray(rng.normal(size=(8, 16)).astype(np.float32))
    params = model.init(jax.random.key(0), x, deterministic=True)
    tx = optax.adam(1e-2)

    def loss_fn(params):
        return jnp.mean(jnp.square(model.apply(params, x, deterministic=True)[:, 0] - targets))

    @jax.jit
    def step(params, opt_state):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state, losses = tx.init(params), []
    for _ in range(150):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves((params, opt_state))
               if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating))
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])


def tiny_monet(dtype) -> monet.MONet:
    return monet.MONet(num_slots=3, latent_dim=4, image_size=16, unet_channels=(8, 8, 8),
                       unet_mlp_hidden=(32,), encoder_channels=(8, 8, 8, 8), encoder_hidden=32,
                       decoder_channels=(8, 8), dtype=dtype)


def test_monet_bfloat16_agrees_with_float32():
    images = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))
    f32, bf16 = tiny_monet(jnp.float32), tiny_monet("bfloat16")
    params = f32.init(jax.random.key(1), images, deterministic=True)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
    out32 = f32.apply(params, images, deterministic=True)
    out16 = bf16.apply(params, images, deterministic=True)
    for name in ("masks", "recon", "mu", "logvar", "decoded_mask_logits"):
        assert getattr(out16, name).dtype == jnp.float32, name
        error = relative_error(getattr(out16, name), getattr(out32, name))
        assert error < BF16_RELATIVE_TOLERANCE, (name, error)
    loss32 = monet.monet_loss(out32, images, **f32.loss_hyperparameters)[0]
    loss16 = monet.monet_loss(out16, images, **bf16.loss_hyperparameters)[0]
    assert abs(float(loss16) - float(loss32)) < 0.01 * abs(float(loss32))


def test_bfloat16_monet_learns():
    """A short bfloat16 run on blocky images lowers the loss steadily (> 0.1 nats per pixel)."""
    rng = np.random.default_rng(0)
    images = np.full((8, 16, 16, 3), 0.5, np.float32)
    for image in images:
        y, x = rng.integers(0, 11, size=2)
        image[y:y + 5, x:x + 5] = rng.uniform(size=3)
    images = jnp.asarray(images)
    model = tiny_monet("bfloat16")
    params = model.init(jax.random.key(0), images[:1], deterministic=True)["params"]
    tx = optax.adam(3e-3)

    @jax.jit
    def step(params, opt_state, key):
        def loss_fn(params):
            outputs = model.apply({"params": params}, images, deterministic=False,
                                  rngs={"sample": key})
            return monet.monet_loss(outputs, images, **model.loss_hyperparameters)[0]

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state, losses = tx.init(params), []
    for i in range(60):
        params, opt_state, loss = step(params, opt_state, jax.random.key(i))
        losses.append(float(loss))
    assert np.all(np.isfinite(losses))
    thirds = [np.mean(chunk) for chunk in np.array_split(np.array(losses), 3)]
    assert thirds[0] > thirds[1] > thirds[2], thirds
    assert thirds[0] - thirds[2] > 0.1 * 16 * 16, thirds


def test_bfloat16_dropout_scales_survivors_by_the_rounded_exact_factor():
    x = jnp.full((64, 64), 0.7, jnp.bfloat16)
    dropped = transformer.dropout(x, 0.1, jax.random.key(0))
    assert dropped.dtype == jnp.bfloat16
    survivors = np.unique(np.asarray(dropped[dropped != 0], np.float32))
    threshold = round(0.1 * 2**32)
    exact = float(x[0, 0]) * 2**32 / (2**32 - threshold)  # In float64, then rounded once.
    expected = np.float32(jnp.asarray(exact, jnp.bfloat16))
    np.testing.assert_array_equal(survivors, [expected])
