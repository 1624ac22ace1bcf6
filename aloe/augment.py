"""Training-time augmentation applied inside the jitted step."""

import jax
import jax.numpy as jnp


def permute_slots(rng: jax.Array, latents: jax.Array) -> jax.Array:
    """Randomly reorders the object slots of each example.

    MONet assigns objects to slots in no fixed order, so the model should not rely
    on slot identity. One permutation per example is shared by all its frames,
    which keeps each object in the same slot across time.

    Args:
      rng: a JAX random key.
      latents: `[batch, frames, slots, d]`.

    Returns:
      `[batch, frames, slots, d]`, slots permuted per example.
    """
    batch, _, slots, _ = latents.shape
    order = jnp.argsort(jax.random.uniform(rng, (batch, slots)), axis=-1)
    return jnp.take_along_axis(latents, order[:, None, :, None], axis=2)
