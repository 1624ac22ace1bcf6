"""Tests of MONet: stick-breaking masks, outputs, decoding, the loss, a short training run."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aloe.models import monet

SIZE, SLOTS, LATENT = 16, 3, 4


def tiny_monet(**overrides) -> monet.MONet:
    """A MONet small enough to compile in seconds (16x16 images, 3 slots)."""
    config = dict(num_slots=SLOTS, latent_dim=LATENT, image_size=SIZE, unet_channels=(8, 8, 8),
                  unet_mlp_hidden=(32,), encoder_channels=(8, 8, 8, 8), encoder_hidden=32,
                  decoder_channels=(8, 8))
    config.update(overrides)
    return monet.MONet(**config)


def coloured_squares(num_images: int, seed: int) -> np.ndarray:
    """`[num_images, SIZE, SIZE, 3]` grey images, each with two 5x5 squares of distinct colours."""
    rng = np.random.default_rng(seed)
    colours = np.array([[0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.2, 0.3, 0.9], [0.9, 0.8, 0.1]])
    images = np.full((num_images, SIZE, SIZE, 3), 0.5, np.float32)
    for image in images:
        for colour in rng.choice(len(colours), 2, replace=False):
            y, x = rng.integers(0, SIZE - 5, size=2)
            image[y:y + 5, x:x + 5] = colours[colour]
    return images


@pytest.fixture(scope="module")
def model_and_params():
    """The tiny model and its parameters (initialised once for the module)."""
    model = tiny_monet()
    images = jnp.zeros((1, SIZE, SIZE, 3))
    params = jax.jit(lambda key: model.init({"params": key}, images, deterministic=True))(
        jax.random.key(0))["params"]
    return model, params


@pytest.fixture(scope="module")
def all_outputs(model_and_params):
    """Every entry point of the model on the same two images, in one compiled function."""
    model, params = model_and_params
    images = jnp.asarray(coloured_squares(2, seed=1))

    @jax.jit
    def run(params, images):
        variables = {"params": params}
        mean = model.apply(variables, images, deterministic=True)
        sampled = [model.apply(variables, images, deterministic=False,
                               rngs={"sample": jax.random.key(seed)}) for seed in (1, 1, 2)]
        encoded = model.apply(variables, images, method=monet.MONet.encode)
        decoded = model.apply(variables, mean.mu, method=monet.MONet.decode)
        composed = model.apply(variables, mean.mu, method=monet.MONet.decode_image)
        return mean, sampled, encoded, decoded, composed

    return images, run(params, images)


def numpy_stick_breaking(logits: np.ndarray) -> np.ndarray:
    """Masks `[B, K, ...]` from logits `[B, K-1, ...]` as products of sigmoids (float64)."""
    sigmoid = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    masks, scope = [], np.ones_like(sigmoid[:, 0])
    for k in range(logits.shape[1]):
        masks.append(scope * sigmoid[:, k])
        scope = scope * (1.0 - sigmoid[:, k])
    return np.stack(masks + [scope], axis=1)


def test_stick_breaking_matches_products_of_sigmoids():
    logits = np.random.default_rng(0).normal(size=(2, 4, 3, 3, 1)) * 3
    log_masks = monet.stick_breaking_log_masks(jnp.asarray(logits, jnp.float32))
    assert log_masks.shape == (2, 5, 3, 3, 1)
    np.testing.assert_allclose(np.exp(log_masks), numpy_stick_breaking(logits),
                               rtol=1e-5, atol=1e-7)


def test_stick_breaking_is_finite_and_normalised_for_extreme_logits():
    logits = jnp.array([[1e4, -1e4, 1e4], [-1e4, -1e4, -1e4], [-1e4, 1e4, 0.0]])[..., None]
    log_masks = monet.stick_breaking_log_masks(logits)
    assert np.all(np.isfinite(log_masks))
    np.testing.assert_allclose(jnp.exp(log_masks).sum(axis=1), 1.0, rtol=1e-6)
    # All mass where the first "take" happens: slot 0, slot 3 (the remaining scope), slot 1.
    np.testing.assert_array_equal(np.argmax(log_masks[..., 0], axis=1), [0, 3, 1])
    grads = jax.grad(lambda a: monet.stick_breaking_log_masks(a).sum())(logits)
    assert np.all(np.isfinite(grads))


def test_output_shapes_and_masks(all_outputs):
    _, (mean, _, _, _, _) = all_outputs
    assert mean.log_masks.shape == mean.masks.shape == (2, SLOTS, SIZE, SIZE, 1)
    assert mean.slot_recons.shape == (2, SLOTS, SIZE, SIZE, 3)
    assert mean.recon.shape == (2, SIZE, SIZE, 3)
    assert mean.mu.shape == mean.logvar.shape == (2, SLOTS, LATENT)
    assert mean.decoded_mask_logits.shape == (2, SLOTS, SIZE, SIZE, 1)
    np.testing.assert_allclose(mean.masks.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(mean.masks, np.exp(mean.log_masks), rtol=1e-6)
    np.testing.assert_allclose(mean.recon, (mean.masks * mean.slot_recons).sum(axis=1),
                               rtol=1e-5, atol=1e-6)
    assert 0.0 <= float(mean.slot_recons.min()) and float(mean.slot_recons.max()) <= 1.0


def test_deterministic_mode_decodes_the_means(all_outputs):
    _, (mean, sampled, encoded, decoded, _) = all_outputs
    np.testing.assert_allclose(decoded[0], mean.slot_recons, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(decoded[1], mean.decoded_mask_logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(encoded[0], mean.mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(encoded[1], mean.logvar, rtol=1e-5, atol=1e-6)
    first, same_key, other_key = sampled
    # Sampling changes only the decoded slots; the posterior is the same.
    np.testing.assert_allclose(first.mu, mean.mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(first.slot_recons, same_key.slot_recons)
    assert np.abs(first.slot_recons - mean.slot_recons).max() > 1e-4
    assert np.abs(first.slot_recons - other_key.slot_recons).max() > 1e-4


def test_decode_image_composes_with_softmax_masks(all_outputs):
    _, (mean, _, _, (slot_rgb, logits), (image, masks, composed_rgb)) = all_outputs
    assert image.shape == (2, SIZE, SIZE, 3) and masks.shape == (2, SLOTS, SIZE, SIZE, 1)
    logits = np.asarray(logits, np.float64)
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(masks, softmax, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(image, (softmax * np.asarray(slot_rgb)).sum(axis=1),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(composed_rgb, mean.slot_recons, rtol=1e-5, atol=1e-6)


def test_decode_accepts_extra_leading_axes(model_and_params):
    model, params = model_and_params
    z = jax.random.normal(jax.random.key(3), (2, 3, SLOTS, LATENT))
    rgb, logits = model.apply({"params": params}, z, method=monet.MONet.decode)
    assert rgb.shape == (2, 3, SLOTS, SIZE, SIZE, 3)
    assert logits.shape == (2, 3, SLOTS, SIZE, SIZE, 1)
    flat_rgb, _ = model.apply({"params": params}, z[1], method=monet.MONet.decode)
    np.testing.assert_allclose(rgb[1], flat_rgb, rtol=1e-5, atol=1e-6)


def test_decoder_equals_convolutions_of_the_tiled_latents(model_and_params):
    model, params = model_and_params
    decoder = params["decoder"]
    z = jax.random.normal(jax.random.key(4), (5, LATENT))
    side = SIZE + 2 * 2
    coords = np.linspace(-1.0, 1.0, side)
    grid = np.stack(np.meshgrid(coords, coords, indexing="ij"), axis=-1)
    h = np.concatenate([np.broadcast_to(np.asarray(z)[:, None, None], (5, side, side, LATENT)),
                        np.broadcast_to(grid, (5, side, side, 2))], axis=-1)
    for name in ("conv_0", "conv_1", "out"):
        h = jax.lax.conv_general_dilated(jnp.asarray(h, jnp.float32), decoder[name]["kernel"],
                                         (1, 1), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        h = h + decoder[name]["bias"]
        if name != "out":
            h = jax.nn.relu(h)
    rgb, logits = model.apply({"params": params}, z[:, None], method=monet.MONet.decode)
    np.testing.assert_allclose(rgb[:, 0], jax.nn.sigmoid(h[..., :3]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits[:, 0], h[..., 3:], rtol=1e-4, atol=1e-5)


def test_bad_shapes_are_rejected(model_and_params):
    model, params = model_and_params
    with pytest.raises(ValueError, match="images must be \\[batch, 16, 16, 3\\]"):
        model.apply({"params": params}, jnp.zeros((1, 32, 32, 3)), deterministic=True)
    with pytest.raises(ValueError, match="latents \\[..., slots, 4\\]"):
        model.apply({"params": params}, jnp.zeros((1, SLOTS, 5)), method=monet.MONet.decode)
    with pytest.raises(ValueError, match="divisible by 2\\^\\(U-Net blocks - 1\\) = 4"):
        tiny_monet(image_size=18).init(jax.random.key(0), jnp.zeros((1, 18, 18, 3)),
                                       deterministic=True)


def numpy_monet_loss(out: dict, images: np.ndarray, sigma_bg, sigma_fg, beta, gamma):
    """The MONet loss by explicit loops over slots (float64); returns (loss, nll, kl_z, kl_m)."""
    batch, slots = out["log_masks"].shape[:2]
    nll, kl_m = np.zeros(batch), np.zeros(batch)
    logits = out["decoded_mask_logits"][..., 0]
    log_q = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    for b in range(batch):
        mixture = np.zeros(images.shape[1:3])
        for k in range(slots):
            sigma = sigma_bg if k == 0 else sigma_fg
            density = np.prod(np.exp(-(images[b] - out["slot_recons"][b, k]) ** 2
                                     / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi)),
                              axis=-1)
            mask = np.exp(out["log_masks"][b, k, ..., 0])
            mixture += mask * density
            kl_m[b] += np.sum(mask * (out["log_masks"][b, k, ..., 0] - log_q[b, k]))
        nll[b] = -np.log(mixture).sum()
    var = np.exp(out["logvar"])
    kl_z = 0.5 * (var + out["mu"] ** 2 - 1 - out["logvar"]).sum(axis=(1, 2))
    loss = nll.mean() + beta * kl_z.mean() + gamma * kl_m.mean()
    return loss, nll.mean(), kl_z.mean(), kl_m.mean()


def test_loss_matches_numpy():
    rng = np.random.default_rng(4)
    batch, slots, size = 2, 3, 4
    attention_logits = rng.normal(size=(batch, slots, size, size, 1)) * 2
    log_masks = attention_logits - np.log(np.exp(attention_logits).sum(axis=1, keepdims=True))
    images = rng.uniform(size=(batch, size, size, 3))
    slot_recons = np.clip(images[:, None] + 0.15 * rng.normal(size=(batch, slots, size, size, 3)),
                          0, 1)
    out = {"log_masks": log_masks, "slot_recons": slot_recons,
           "mu": rng.normal(size=(batch, slots, 5)), "logvar": rng.normal(size=(batch, slots, 5)),
           "decoded_mask_logits": rng.normal(size=(batch, slots, size, size, 1))}
    masks = np.exp(log_masks)
    outputs = monet.MONetOutputs(
        masks=jnp.asarray(masks, jnp.float32), recon=jnp.asarray((masks * slot_recons).sum(1),
                                                                  jnp.float32),
        **{k: jnp.asarray(v, jnp.float32) for k, v in out.items()})
    weights = dict(sigma_bg=0.09, sigma_fg=0.11, beta=0.5, gamma=0.7)
    loss, metrics = monet.monet_loss(outputs, jnp.asarray(images, jnp.float32), **weights)
    expected = numpy_monet_loss(out, images, **weights)
    np.testing.assert_allclose(
        [loss, metrics["nll"], metrics["kl_z"], metrics["kl_masks"]], expected, rtol=1e-4)
    np.testing.assert_allclose(metrics["mse"], np.mean((images - (masks * slot_recons).sum(1))**2),
                               rtol=1e-4)


def test_paper_size_parameter_count():
    model = monet.MONet()
    variables = jax.eval_shape(lambda: model.init(
        {"params": jax.random.key(0)}, jnp.zeros((1, 64, 64, 3)), deterministic=True))
    sizes = {name: sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))
             for name, tree in variables["params"].items()}
    assert sizes == {"attention": 604_513, "encoder": 336_480, "decoder": 33_092}


@pytest.mark.slow
def test_short_training_lowers_the_loss_steadily():
    model = tiny_monet()
    images = jnp.asarray(coloured_squares(8, seed=0))
    params = jax.jit(lambda key: model.init({"params": key}, images[:1], deterministic=True))(
        jax.random.key(0))["params"]
    optimizer = optax.adam(3e-3)

    @jax.jit
    def train_step(params, opt_state, key):
        def loss_fn(params):
            outputs = model.apply({"params": params}, images, deterministic=False,
                                  rngs={"sample": key})
            return monet.monet_loss(outputs, images, **model.loss_hyperparameters)

        (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state, losses = optimizer.init(params), []
    for step in range(150):
        params, opt_state, loss = train_step(params, opt_state, jax.random.key(step))
        losses.append(float(loss))
    assert np.all(np.isfinite(losses))
    thirds = [np.mean(chunk) for chunk in np.array_split(np.array(losses), 3)]
    assert thirds[0] > thirds[1] > thirds[2], thirds
    # Per pixel, the loss falls by more than 0.5 nats (about 1.3 at these sizes).
    assert thirds[0] - thirds[2] > 0.5 * SIZE * SIZE, thirds
