"""The self-supervised auxiliary loss as tasks use it (paper Section 2.1).

A task with `config.auxiliary.weight` (λ) > 0 adds an unsupervised sub-batch of
`config.auxiliary.batch` videos. Their object tokens are hidden by a masking
scheme (`aloe.masking`), the model predicts the latents of every object token,
and the loss (`aloe.losses`) compares predictions with the true latents at the
target tokens. With λ = 0 nothing of this runs and the model has no auxiliary
parameters.

Config (`config.auxiliary`):
  weight: λ; 0 turns the auxiliary loss off.
  batch: global size of the unsupervised sub-batch.
  scheme: 'a'..'f' or a scheme name of `aloe.masking.SCHEMES`.
  scheme_params: keyword parameters of the scheme: every parameter of any scheme
    (`aloe.masking.parameter_types`) is a typed field, None = the scheme's
    default, so each can be set from the command line
    (`--config.auxiliary.scheme_params.buffer=1`); setting one the scheme does
    not take is an error.
  loss: 'l2' or 'contrastive'.
  contrastive: `negatives` ('all_frames' | 'same_frame'), `temperature`,
    `similarity` ('dot' | 'cosine'); used by the contrastive loss only.
"""

import jax
import ml_collections
from ml_collections import config_dict

from aloe import losses
from aloe import masking


def defaults() -> ml_collections.ConfigDict:
    """The `config.auxiliary` section, turned off (λ = 0)."""
    config = ml_collections.ConfigDict()
    config.weight = 0.0            # λ; 0 = no auxiliary loss, no unsupervised sub-batch.
    config.batch = 8               # Global unsupervised sub-batch (videos).
    config.scheme = "a"            # Figure 2: a..f (a = one object per frame, the best).
    # Scheme parameters, None = the scheme's default (e.g. buffer 3 for c..f).
    config.scheme_params = ml_collections.ConfigDict(
        {name: config_dict.placeholder(kind) for name, kind in masking.parameter_types().items()})
    config.loss = "l2"             # "l2" or "contrastive".
    config.contrastive = ml_collections.ConfigDict()
    config.contrastive.negatives = "all_frames"  # or "same_frame".
    config.contrastive.temperature = 1.0
    config.contrastive.similarity = "dot"        # or "cosine".
    return config


def enabled(config: ml_collections.ConfigDict) -> bool:
    """Whether the task config asks for the auxiliary loss."""
    return "auxiliary" in config and config.auxiliary.weight > 0


def draw_masks(config: ml_collections.ConfigDict, rng: jax.Array,
               shape: tuple[int, ...]) -> masking.Masks:
    """Masks `(m visible, tau target)`, bool `[B, T, K]`, for latents of `shape[:3]`."""
    batch, frames, slots = shape[:3]
    aux = config.auxiliary
    params = {name: value for name, value in aux.scheme_params.items() if value is not None}
    return masking.make_batch_masks(aux.scheme, rng, batch, frames, slots, **params)


def loss_and_metrics(config: ml_collections.ConfigDict, predicted: jax.Array,
                     target: jax.Array, tau: jax.Array) -> tuple[jax.Array, dict]:
    """λ-weighted auxiliary loss and its metrics.

    Args:
      config: the task config.
      predicted: `[B, T, K, d]` predicted latents.
      target: `[B, T, K, d]` true latents (gradients are stopped inside the losses).
      tau: bool `[B, T, K]` target tokens.

    Returns:
      `(λ * loss, {'auxiliary_loss', 'masked_latent_error', 'mean_latent_error'})`;
      the two errors are mean squared errors per latent dimension at the targets,
      of the predictions and of predicting the batch mean.
    """
    aux = config.auxiliary
    options = aux.contrastive.to_dict() if aux.loss == "contrastive" else {}
    loss = losses.auxiliary_loss(aux.loss, predicted, target, tau, **options)
    metrics = {
        "auxiliary_loss": loss,
        "masked_latent_error": losses.masked_latent_error(predicted, target, tau),
        "mean_latent_error": losses.mean_baseline_latent_error(target, tau),
    }
    return aux.weight * loss, metrics
