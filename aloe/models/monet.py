"""MONet (Burgess et al. 2019): recursive attention masks and a component VAE.

Attention network (log space throughout). With `s` the scope still unexplained:

    log s_0 = 0
    a_k = UNet([x, log s_k])                   for k = 0 .. K-2 (one shared U-Net)
    log m_k = log s_k + log_sigmoid(a_k)
    log s_{k+1} = log s_k + log_sigmoid(-a_k)
    log m_{K-1} = log s_{K-1}

so the masks sum to one at every pixel and `log(1 - exp(.))` is never formed.
Slot 0 is the background slot. The recursion is a Python loop calling one
shared U-Net K-1 times, not a `lax.scan`: XLA:CPU runs the backward pass of a
convolution inside a loop body 20-70x slower than unrolled (the paper-size
gradient of the attention network took 20 s instead of 0.3 s per 4 images with
`nn.scan`, and compiled in 72 s instead of 19 s).

Component VAE, applied to all K slots at once (the slots are folded into the
batch): an encoder on `[x, log m_k]` (4 conv3x3 stride 2 with ReLU, 32, 32, 64,
64 channels, then Dense 256 + ReLU and Dense 2d) gives `mu` and `log var` of a
d-dim diagonal Gaussian; a spatial-broadcast decoder tiles z over an
`(H+8) x (W+8)` grid with two coordinate channels in [-1, 1], applies 4 unpadded
conv3x3 (32, ReLU) and a 1x1 conv to 4 channels: RGB (through a sigmoid, so the
slot means lie in the pixel range [0, 1]) and a mask logit. The first conv is
computed without materialising the tiled z (`aloe.models.broadcast_decoder`), the
same result for 17% fewer of the decoder's FLOPs.

Training samples `z = mu + exp(log var / 2) * eps` with the `'sample'` rng;
deterministic mode decodes `z = mu`.

How it is computed: every convolution is an `aloe.models.conv.Conv` (the
parameters of `nn.Conv`) in the formulation `conv_formulation` names. `dtype`
is the compute dtype of the convolutions, matmuls and activations between them
(`aloe.models.precision`); parameters stay float32, and the attention logits,
the stick-breaking recursion, `mu`, `log var`, the decoded RGB and mask logits
and so the loss are float32 whatever it is.

Loss (`monet_loss`), per image summed over pixels (and colour channels inside
each Gaussian), then averaged over the batch:

    nll     = -sum_pixels logsumexp_k(log m_k + sum_c log N(x_c; xhat_kc, sigma_k^2))
    kl_z    = sum_k KL(N(mu_k, var_k) || N(0, I))          (summed over slots and dims)
    kl_mask = sum_pixels sum_k m_k (log m_k - log softmax_k(decoded mask logits))
    loss    = nll + beta * kl_z + gamma * kl_mask

with `sigma_0 = sigma_bg` for the background slot and `sigma_fg` for the others.

Decoding latents alone (e.g. latents predicted by a transformer): `MONet.decode`
gives each slot's RGB and mask logit; `MONet.decode_image` composes the image
with the softmax of the decoded mask logits as masks (`compose_image`).
"""

import math
from typing import Any, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from aloe.models import conv as conv_lib
from aloe.models import unet as unet_lib
from aloe.models.broadcast_decoder import SpatialBroadcastDecoder
from aloe.models.precision import compute_dtype


def stick_breaking_step(log_scope: jax.Array, logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One step of the stick-breaking recursion in log space.

    Args:
      log_scope: `[...]` log of the scope still unexplained, `log s_k`.
      logits: `[...]` attention logits `a_k` of this step.

    Returns:
      `(log_mask, next_log_scope)`: `log s_k + log_sigmoid(a_k)` and
      `log s_k + log_sigmoid(-a_k)`.
    """
    return log_scope + jax.nn.log_sigmoid(logits), log_scope + jax.nn.log_sigmoid(-logits)


def stick_breaking_log_masks(logits: jax.Array) -> jax.Array:
    """Log masks of K slots from the K-1 attention logits, scope starting at 1.

    Args:
      logits: `[batch, K-1, ...]` attention logits `a_0 .. a_{K-2}`.

    Returns:
      `[batch, K, ...]` log masks; slot `K-1` takes the scope that is left.
    """
    log_scope = jnp.zeros_like(logits[:, 0])
    log_masks = []
    for k in range(logits.shape[1]):
        log_mask, log_scope = stick_breaking_step(log_scope, logits[:, k])
        log_masks.append(log_mask)
    log_masks.append(log_scope)
    return jnp.stack(log_masks, axis=1)


class AttentionNetwork(nn.Module):
    """MONet's recursive attention: images `[B, H, W, C]` -> log masks `[B, K, H, W, 1]`.

    Attributes:
      num_slots: K.
      unet_channels: channels of the U-Net blocks.
      unet_mlp_hidden: hidden sizes of the U-Net's bottleneck MLP.
      conv_formulation: see `conv.FORMULATIONS`.
      dtype: the U-Net's compute dtype; the recursion is float32.
    """

    num_slots: int
    unet_channels: Sequence[int] = (32, 32, 64, 64, 64)
    unet_mlp_hidden: Sequence[int] = (128, 128)
    conv_formulation: str = "xla"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        """Log masks `[B, K, H, W, 1]` of images `[B, H, W, C]`; they sum to 1 in probability."""
        unet = unet_lib.UNet(self.unet_channels, self.unet_mlp_hidden, out_features=1,
                             conv_formulation=self.conv_formulation, dtype=self.dtype,
                             name="unet")
        log_scope = jnp.zeros(images.shape[:3] + (1,), images.dtype)
        log_masks = []
        for _ in range(self.num_slots - 1):
            logits = unet(jnp.concatenate([images, log_scope], axis=-1)).astype(images.dtype)
            log_mask, log_scope = stick_breaking_step(log_scope, logits)
            log_masks.append(log_mask)
        log_masks.append(log_scope)
        return jnp.stack(log_masks, axis=1)


class ComponentEncoder(nn.Module):
    """Strided conv encoder: `[N, H, W, C] -> (mu [N, d], logvar [N, d])`.

    Attributes:
      latent_dim: d.
      channels: output channels of the conv3x3 stride-2 layers (padding 1).
      hidden: width of the Dense layer before the Gaussian's parameters.
      conv_formulation: see `conv.FORMULATIONS`.
      dtype: compute dtype; `mu` and `logvar` are float32.
    """

    latent_dim: int
    channels: Sequence[int] = (32, 32, 64, 64)
    hidden: int = 256
    conv_formulation: str = "xla"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Gaussian parameters `(mu, logvar)`, each `[N, latent_dim]`."""
        dtype = compute_dtype(self.dtype)
        for i, features in enumerate(self.channels):
            x = nn.relu(conv_lib.Conv(features, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
                                      formulation=self.conv_formulation, dtype=dtype,
                                      name=f"conv_{i}")(x))
        dense = lambda features, name: nn.Dense(features, dtype=dtype, param_dtype=jnp.float32,
                                                name=name)
        x = nn.relu(dense(self.hidden, "hidden")(x.reshape(x.shape[0], -1)))
        gaussian = dense(2 * self.latent_dim, "gaussian")(x).astype(jnp.float32)
        mu, logvar = jnp.split(gaussian, 2, axis=-1)
        return mu, logvar


@flax.struct.dataclass
class MONetOutputs:
    """What `MONet.__call__` returns (a pytree).

    Attributes:
      log_masks: `[B, K, H, W, 1]` log attention masks.
      masks: `[B, K, H, W, 1]` attention masks (sum to 1 over K).
      slot_recons: `[B, K, H, W, 3]` decoded RGB of each slot.
      recon: `[B, H, W, 3]` mask-weighted reconstruction `sum_k m_k * slot_recons_k`.
      mu: `[B, K, d]` posterior means.
      logvar: `[B, K, d]` posterior log variances.
      decoded_mask_logits: `[B, K, H, W, 1]` mask logits of the decoder.
    """

    log_masks: jax.Array
    masks: jax.Array
    slot_recons: jax.Array
    recon: jax.Array
    mu: jax.Array
    logvar: jax.Array
    decoded_mask_logits: jax.Array


def compose_image(slot_rgb: jax.Array, mask_logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """An image from decoded slots, with the softmax over slots of their mask logits.

    Args:
      slot_rgb: `[..., K, H, W, 3]` RGB of each slot.
      mask_logits: `[..., K, H, W, 1]` decoded mask logits.

    Returns:
      `(image [..., H, W, 3], masks [..., K, H, W, 1])`.
    """
    masks = jax.nn.softmax(mask_logits, axis=-4)
    return jnp.sum(masks * slot_rgb, axis=-4), masks


class MONet(nn.Module):
    """MONet: attention network + component VAE, usable on its own.

    Attributes:
      num_slots: K (ALOE: 8); slot 0 is the background.
      latent_dim: d (CLEVRER: 16).
      image_size: side of the square input images (64 in the paper); it must be
        divisible by `2^(len(unet_channels) - 1)`.
      unet_channels: U-Net block channels (64x64: 32, 32, 64, 64, 64).
      unet_mlp_hidden: hidden sizes of the U-Net's bottleneck MLP.
      encoder_channels: channels of the component encoder's strided convs.
      encoder_hidden: width of the component encoder's Dense layer.
      decoder_channels: channels of the spatial-broadcast decoder's convs.
      sigma_bg: pixel standard deviation of the background slot (loss).
      sigma_fg: pixel standard deviation of the other slots (loss).
      beta: weight of the latent KL (loss).
      gamma: weight of the mask KL (loss).
      conv_formulation: how the convolutions are computed (`conv.FORMULATIONS`;
        the same mathematics and parameters in each).
      dtype: compute dtype (a dtype or a `precision.DTYPE_NAMES` name, "auto":
        per backend); parameters, outputs and the loss are float32.
    """

    num_slots: int = 8
    latent_dim: int = 16
    image_size: int = 64
    unet_channels: Sequence[int] = (32, 32, 64, 64, 64)
    unet_mlp_hidden: Sequence[int] = (128, 128)
    encoder_channels: Sequence[int] = (32, 32, 64, 64)
    encoder_hidden: int = 256
    decoder_channels: Sequence[int] = (32, 32, 32, 32)
    sigma_bg: float = 0.09
    sigma_fg: float = 0.11
    beta: float = 0.5
    gamma: float = 0.5
    conv_formulation: str = "xla"
    dtype: Any = jnp.float32

    def setup(self):
        """Builds the attention network, the component encoder and the decoder."""
        if self.num_slots < 1:
            raise ValueError(f"MONet.num_slots must be at least 1, got {self.num_slots}.")
        factor = 2 ** (len(self.unet_channels) - 1)
        if self.image_size % factor:
            raise ValueError(
                f"MONet.image_size = {self.image_size} must be divisible by 2^(U-Net blocks - 1)"
                f" = {factor} ({len(self.unet_channels)} blocks).")
        dtype = compute_dtype(self.dtype)
        self.attention = AttentionNetwork(self.num_slots, self.unet_channels,
                                          self.unet_mlp_hidden, self.conv_formulation, dtype)
        self.encoder = ComponentEncoder(self.latent_dim, self.encoder_channels,
                                        self.encoder_hidden, self.conv_formulation, dtype)
        self.decoder = SpatialBroadcastDecoder(self.image_size, self.decoder_channels,
                                               self.conv_formulation, dtype)

    @property
    def loss_hyperparameters(self) -> dict[str, float]:
        """`sigma_bg`, `sigma_fg`, `beta`, `gamma` as keywords for `monet_loss`."""
        return {"sigma_bg": self.sigma_bg, "sigma_fg": self.sigma_fg, "beta": self.beta,
                "gamma": self.gamma}

    def _check_images(self, images: jax.Array) -> None:
        """Raises ValueError unless images are `[B, image_size, image_size, 3]`."""
        expected = (self.image_size, self.image_size, 3)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"MONet images must be [batch, {self.image_size}, "
                             f"{self.image_size}, 3], got shape {images.shape}.")

    def _encode_slots(self, images: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """`(log_masks [B, K, H, W, 1], mu [B, K, d], logvar [B, K, d])` of images."""
        self._check_images(images)
        images = images.astype(jnp.float32)
        log_masks = self.attention(images)
        batch, slots = log_masks.shape[:2]
        slot_inputs = jnp.concatenate(
            [jnp.broadcast_to(images[:, None], log_masks.shape[:4] + (3,)), log_masks], axis=-1)
        mu, logvar = self.encoder(slot_inputs.reshape((batch * slots,) + slot_inputs.shape[2:]))
        return (log_masks, mu.reshape(batch, slots, self.latent_dim),
                logvar.reshape(batch, slots, self.latent_dim))

    def __call__(self, images: jax.Array, *, deterministic: bool) -> MONetOutputs:
        """Segments, encodes and reconstructs images.

        Args:
          images: `[B, H, W, 3]` float pixels in [0, 1], `H = W = image_size`.
          deterministic: decode the posterior means; otherwise sample z with the
            `'sample'` rng.

        Returns:
          `MONetOutputs` (shapes in its docstring).
        """
        log_masks, mu, logvar = self._encode_slots(images)
        z = mu
        if not deterministic:
            eps = jax.random.normal(self.make_rng("sample"), mu.shape, mu.dtype)
            z = mu + jnp.exp(0.5 * logvar) * eps
        slot_recons, mask_logits = self.decode(z)
        masks = jnp.exp(log_masks)
        return MONetOutputs(log_masks=log_masks, masks=masks, slot_recons=slot_recons,
                            recon=jnp.sum(masks * slot_recons, axis=1), mu=mu, logvar=logvar,
                            decoded_mask_logits=mask_logits)

    def encode(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Posterior parameters only (no decoder): images `[B, H, W, 3]` ->
        `(mu [B, K, d], logvar [B, K, d])`, for latent extraction."""
        _, mu, logvar = self._encode_slots(images)
        return mu, logvar

    def decode(self, z: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Decodes latents `[..., K, d]` -> `(slot rgb [..., K, H, W, 3],
        mask logits [..., K, H, W, 1])`."""
        if z.ndim < 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"MONet.decode needs latents [..., slots, {self.latent_dim}], "
                             f"got shape {z.shape}.")
        lead = z.shape[:-1]
        rgb, mask_logits = self.decoder(z.reshape(-1, self.latent_dim).astype(jnp.float32))
        return (rgb.reshape(lead + rgb.shape[1:]),
                mask_logits.reshape(lead + mask_logits.shape[1:]))

    def decode_image(self, z: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Images from latents `[..., K, d]` alone: `(image [..., H, W, 3],
        masks [..., K, H, W, 1] (softmax of decoded logits), slot rgb [..., K, H, W, 3])`."""
        slot_rgb, mask_logits = self.decode(z)
        image, masks = compose_image(slot_rgb, mask_logits)
        return image, masks, slot_rgb


def slot_log_likelihoods(slot_recons: jax.Array, images: jax.Array,
                         sigmas: jax.Array) -> jax.Array:
    """`sum_c log N(x_c; xhat_kc, sigma_k^2)` per slot and pixel.

    Args:
      slot_recons: `[B, K, H, W, C]` slot means.
      images: `[B, H, W, C]` pixels.
      sigmas: `[K]` standard deviation of each slot.

    Returns:
      `[B, K, H, W]` Gaussian log densities summed over channels.
    """
    sigmas = sigmas[None, :, None, None, None]
    z = (images[:, None] - slot_recons) / sigmas
    log_density = -0.5 * jnp.square(z) - jnp.log(sigmas) - 0.5 * math.log(2.0 * math.pi)
    return jnp.sum(log_density, axis=-1)


def gaussian_kl(mu: jax.Array, logvar: jax.Array) -> jax.Array:
    """`KL(N(mu, exp(logvar)) || N(0, I))` summed over all but the batch axis: `[B, ...] -> [B]`."""
    kl = 0.5 * (jnp.exp(logvar) + jnp.square(mu) - 1.0 - logvar)
    return jnp.sum(kl.reshape(kl.shape[0], -1), axis=-1)


def monet_loss(outputs: MONetOutputs, images: jax.Array, *, sigma_bg: float, sigma_fg: float,
               beta: float, gamma: float) -> tuple[jax.Array, dict[str, Any]]:
    """MONet's loss, per image summed over pixels (and channels), averaged over the batch.

    Args:
      outputs: the model's outputs for `images`.
      images: `[B, H, W, 3]` pixels in [0, 1].
      sigma_bg: standard deviation of slot 0's pixels.
      sigma_fg: standard deviation of the other slots' pixels.
      beta: weight of the latent KL.
      gamma: weight of the mask KL.

    Returns:
      `(loss, metrics)`: scalar `nll + beta * kl_z + gamma * kl_masks`; metrics
      `loss`, `nll`, `kl_z`, `kl_masks` (unweighted batch means) and `mse`
      (mean squared error of `recon` per pixel and channel).
    """
    if images.shape != outputs.recon.shape:
        raise ValueError(f"images {images.shape} do not match the reconstructions "
                         f"{outputs.recon.shape}.")
    images = images.astype(jnp.float32)
    num_slots = outputs.log_masks.shape[1]
    sigmas = jnp.full((num_slots,), sigma_fg, jnp.float32).at[0].set(sigma_bg)
    log_lik = slot_log_likelihoods(outputs.slot_recons, images, sigmas)
    log_mixture = jax.nn.logsumexp(outputs.log_masks[..., 0] + log_lik, axis=1)
    nll = -jnp.sum(log_mixture, axis=(1, 2))
    kl_z = gaussian_kl(outputs.mu, outputs.logvar)
    log_decoded = jax.nn.log_softmax(outputs.decoded_mask_logits, axis=1)
    kl_masks = jnp.sum(outputs.masks * (outputs.log_masks - log_decoded), axis=(1, 2, 3, 4))
    nll, kl_z, kl_masks = jnp.mean(nll), jnp.mean(kl_z), jnp.mean(kl_masks)
    loss = nll + beta * kl_z + gamma * kl_masks
    metrics = {"loss": loss, "nll": nll, "kl_z": kl_z, "kl_masks": kl_masks,
               "mse": jnp.mean(jnp.square(outputs.recon - images))}
    return loss, metrics
