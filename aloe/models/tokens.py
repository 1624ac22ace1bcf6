"""Tokens of ALOE: their layout, the object tokens, and the initialisers around them.

Tokens are `d + 2` wide. An object token is an entity (the MONet mean `mu`, d)
followed by the flag `[0, 1]`; a word token is a learned `d - 2` embedding, a
question/choice flag and the word flag `[1, 0]`; CLS is a learned `d + 2`
vector. A sequence is `[CLS, words, objects]`, the objects frame-major
(`t * slots + k`); a `TokenLayout` records where each role sits, and every
reasoner (`aloe.models.reasoners`) reads tokens, mask and layout.
"""

import itertools
from typing import NamedTuple, Optional, Sequence

import flax.linen as nn
from flax.linen.linear import default_embed_init
from flax.linen.linear import default_kernel_init
import jax
import jax.numpy as jnp

from aloe.models import transformer

OBJECT_FLAG = (0.0, 1.0)
WORD_FLAG = (1.0, 0.0)
QUESTION_FLAG = (1.0, 0.0)
CHOICE_FLAG = (0.0, 1.0)


class TokenLayout(NamedTuple):
    """Roles in `[CLS, words, objects]`: CLS at 0, `num_words` words, `frames * slots` objects."""
    num_words: int
    frames: int
    slots: int


class ModelInit(NamedTuple):
    """Initialisers of the parameters around the reasoner (biases zero, CLS zero)."""
    projection: transformer.Initializer   # token_projection kernel
    embedding: transformer.Initializer    # word embedding table
    head: transformer.Initializer         # answer-head kernels
    mask: transformer.Initializer         # the mask vector


# Per `initialization` (`transformer.INITIALIZATIONS`): Flax's defaults, or the release's
# (Sonnet): the projection He (variance scaling 2, fan in, truncated normal), the word
# embedding standard normal, Sonnet's default Linear in the heads, a zero mask vector.
MODEL_INITS = {
    "flax": ModelInit(default_kernel_init, default_embed_init, default_kernel_init,
                      nn.initializers.normal(0.02)),
    "release": ModelInit(nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal"),
                         nn.initializers.normal(1.0), transformer.SONNET_LINEAR_INIT,
                         nn.initializers.zeros),
}


def model_init(initialization: str) -> ModelInit:
    """The `ModelInit` of an initialisation scheme, with a clear error for an unknown one."""
    if initialization not in MODEL_INITS:
        raise ValueError(f"initialization must be one of {tuple(MODEL_INITS)}, "
                         f"got {initialization!r}.")
    return MODEL_INITS[initialization]


def constant_flags(values: Sequence[float], shape: tuple[int, ...]) -> jax.Array:
    """A constant flag vector broadcast to `shape + (len(values),)`."""
    return jnp.broadcast_to(jnp.asarray(values, jnp.float32), shape + (len(values),))


def object_tokens(latents: jax.Array, latent_dim: int, visible: Optional[jax.Array] = None,
                  mask_embedding: Optional[jax.Array] = None) -> jax.Array:
    """Object tokens `[B, T*K, d+2]` (frame-major) from latents `[B, T, K, d]`.

    Where `visible` `[B, T, K]` is False the latent is replaced by `mask_embedding`
    `[d]` (the object flag stays), or the whole token by a `[d + 2]` one.
    """
    if latents.ndim != 4 or latents.shape[-1] != latent_dim:
        raise ValueError(f"latents must be [batch, frames, slots, {latent_dim}], "
                         f"got shape {latents.shape}.")
    latents = latents.astype(jnp.float32)
    if visible is not None:
        if visible.shape != latents.shape[:3]:
            raise ValueError(f"visible must be [batch, frames, slots] = {latents.shape[:3]}, "
                             f"got shape {visible.shape}.")
        if mask_embedding is None:
            raise ValueError("Masking object tokens needs the model built with auxiliary=True.")
        if mask_embedding.shape not in ((latent_dim,), (latent_dim + 2,)):
            raise ValueError(f"mask_embedding must be [{latent_dim}] or [{latent_dim + 2}], "
                             f"got shape {mask_embedding.shape}.")
        if mask_embedding.shape == (latent_dim,):
            latents = jnp.where(visible[..., None], latents, mask_embedding)
    batch, frames, slots, _ = latents.shape
    objects = latents.reshape(batch, frames * slots, latent_dim)
    flags = constant_flags(OBJECT_FLAG, (batch, frames * slots))
    tokens = jnp.concatenate([objects, flags], axis=-1)
    if visible is not None and mask_embedding.shape == (latent_dim + 2,):
        tokens = jnp.where(visible.reshape(batch, frames * slots, 1), tokens, mask_embedding)
    return tokens


def split_rows(array: Optional[jax.Array], sizes: Sequence[int]) -> list[Optional[jax.Array]]:
    """Splits the leading axis into consecutive pieces of `sizes` rows (None stays None)."""
    if array is None:
        return [None] * len(sizes)
    return jnp.split(array, list(itertools.accumulate(sizes[:-1])), axis=0)
