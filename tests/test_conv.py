"""Every convolution formulation equals XLA's convolution, forward and gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aloe.models import conv
from aloe.models import monet

# (input shape, kernel shape, strides, padding): MONet's three kinds of conv3x3.
CASES = [
    ((2, 9, 9, 5), (3, 3, 5, 4), (1, 1), "SAME"),           # U-Net blocks.
    ((2, 10, 10, 3), (3, 3, 3, 6), (2, 2), ((1, 1), (1, 1))),  # Component encoder.
    ((3, 8, 8, 4), (3, 3, 4, 4), (1, 1), "VALID"),          # Broadcast decoder.
    ((1, 7, 6, 2), (2, 3, 2, 3), (1, 2), ((0, 1), (2, 0))),  # Uneven shapes.
]


def conv_and_grads(formulation, x, kernel, strides, padding, cotangent):
    """(output, d x, d kernel) of `sum(conv2d(x, kernel) * cotangent)`."""
    fn = lambda x, k: conv.conv2d(x, k, strides, padding, formulation)
    out = fn(x, kernel)
    grads = jax.grad(lambda x, k: jnp.sum(fn(x, k) * cotangent), argnums=(0, 1))(x, kernel)
    return (out,) + grads


@pytest.mark.parametrize("formulation",
                         [f for f in conv.FORMULATIONS if f != "xla"])
@pytest.mark.parametrize("x_shape, kernel_shape, strides, padding", CASES)
def test_formulation_equals_xla_conv(formulation, x_shape, kernel_shape, strides, padding):
    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], x_shape)
    kernel = jax.random.normal(keys[1], kernel_shape)
    expected_out = jax.lax.conv_general_dilated(
        x, kernel, strides, conv._padding(padding, kernel_shape[:2]),
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    cotangent = jax.random.normal(keys[2], expected_out.shape)
    ours = conv_and_grads(formulation, x, kernel, strides, padding, cotangent)
    expected = conv_and_grads("xla", x, kernel, strides, padding, cotangent)
    np.testing.assert_allclose(expected[0], expected_out, rtol=1e-5, atol=1e-5)
    for name, a, b in zip(("output", "d_x", "d_kernel"), ours, expected):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4, err_msg=name)


def test_conv_module_matches_flax_conv():
    """Same parameter tree and initial values as nn.Conv, same outputs."""
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
    for kernel_size, padding in (((3, 3), "SAME"), ((1, 1), "SAME"), ((3, 3), "VALID")):
        flax_conv = nn.Conv(5, kernel_size, padding=padding)
        params = flax_conv.init(jax.random.key(2), x)
        for formulation in conv.FORMULATIONS:
            ours = conv.Conv(5, kernel_size, padding=padding, formulation=formulation)
            own_params = ours.init(jax.random.key(2), x)
            jax.tree.map(np.testing.assert_array_equal, own_params, params)
            np.testing.assert_allclose(ours.apply(params, x), flax_conv.apply(params, x),
                                       rtol=1e-5, atol=1e-5)


def test_bad_formulation_is_named():
    with pytest.raises(ValueError, match="conv formulation"):
        conv.conv2d(jnp.zeros((1, 4, 4, 2)), jnp.zeros((3, 3, 2, 2)), formulation="fft")


def test_monet_formulations_agree_forward_and_gradients():
    """A tiny MONet's loss and every parameter gradient are the same in every formulation."""
    images = jax.random.uniform(jax.random.key(3), (2, 16, 16, 3))
    config = dict(num_slots=3, latent_dim=4, image_size=16, unet_channels=(8, 8, 8),
                  unet_mlp_hidden=(16,), encoder_channels=(8, 8, 8, 8), encoder_hidden=16,
                  decoder_channels=(8, 8))
    params = monet.MONet(**config).init(jax.random.key(4), images[:1],
                                        deterministic=True)["params"]

    def loss_and_grads(formulation):
        model = monet.MONet(**config, conv_formulation=formulation)

        def loss_fn(params):
            outputs = model.apply({"params": params}, images, deterministic=False,
                                  rngs={"sample": jax.random.key(5)})
            return monet.monet_loss(outputs, images, **model.loss_hyperparameters)[0]

        return jax.jit(jax.value_and_grad(loss_fn))(params)

    expected_loss, expected_grads = loss_and_grads("xla")
    for formulation in conv.FORMULATIONS[1:]:
        loss, grads = loss_and_grads(formulation)
        np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
        for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(grads),
                                jax.tree.leaves(expected_grads)):
            scale = float(np.max(np.abs(b))) + 1e-6
            np.testing.assert_allclose(a / scale, b / scale, atol=1e-4,
                                       err_msg=f"{formulation} {jax.tree_util.keystr(path)}")
