r"""Reusing aloe's Flax modules in another project: MONet, the relative transformer, ALOE.

  python examples/reuse_modules.py

Each module is a plain `flax.linen` module: `init`, then `apply`. Nothing here
touches aloe's trainer, configs or data files.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aloe.models import ALOE
from aloe.models import build_aloe
from aloe.models import MONet
from aloe.models import RelativeTransformer
from aloe.models import monet_loss


def monet_example(rng: jax.Array) -> jax.Array:
    """Segment and encode a batch of frames; returns the slot latents `[B, K, d]`."""
    monet = MONet(num_slots=4, latent_dim=8, image_size=32, unet_channels=(8, 8, 8, 8),
                  unet_mlp_hidden=(32,), encoder_channels=(8, 8, 8, 8), encoder_hidden=32,
                  decoder_channels=(8, 8))
    images = jax.random.uniform(rng, (2, 32, 32, 3))
    params = monet.init({"params": rng}, images, deterministic=True)["params"]
    outputs = monet.apply({"params": params}, images, deterministic=False,
                          rngs={"sample": rng})
    loss, terms = monet_loss(outputs, images, **monet.loss_hyperparameters)
    print(f"MONet: masks {outputs.masks.shape} sum to 1 per pixel "
          f"(max error {float(jnp.abs(outputs.masks.sum(1) - 1).max()):.1e}); "
          f"loss {float(loss):.1f}, KL {float(terms['kl_z']):.2f}")
    mu, _ = monet.apply({"params": params}, images, method=MONet.encode)
    image, _, _ = monet.apply({"params": params}, mu, method=MONet.decode_image)
    print(f"MONet: latents {mu.shape} decode back to images {image.shape}")
    return mu


def transformer_example(rng: jax.Array) -> None:
    """The relative-position transformer on any token sequence, with a padding mask."""
    model = RelativeTransformer(num_layers=2, num_heads=2, head_dim=8, mlp_dim=32,
                                dropout_rate=0.1)
    tokens = jax.random.normal(rng, (3, 10, 16))
    mask = jnp.arange(10)[None, :] < jnp.array([[10], [7], [4]])  # Real tokens per row.
    params = model.init({"params": rng}, tokens, mask, deterministic=True)["params"]
    out, state = model.apply({"params": params}, tokens, mask, deterministic=True,
                             mutable=["intermediates"])
    attention = jax.tree.leaves(state["intermediates"])[0]  # [batch, heads, query, key]
    print(f"Transformer: {out.shape}; layer-0 attention {attention.shape}, weight on padded "
          f"keys {float(attention[1, :, :7, 7:].sum()):.1e}")


def aloe_example(rng: jax.Array, latents: jax.Array) -> None:
    """ALOE answering a question from object latents; a few optimizer steps on one batch."""
    batch, frames, slots, dim = 2, 3, latents.shape[1], latents.shape[2]
    video = jnp.broadcast_to(latents[:, None], (batch, frames, slots, dim))
    question = jnp.array([[5, 9, 2, 0], [7, 3, 0, 0]], jnp.int32)  # Word ids, 0 = padding.
    answers = jnp.array([1, 4])
    model = build_aloe(vocab_size=12, num_answers=6, latent_dim=dim, num_heads=2, num_layers=2,
                       mlp_dim=32, head_hidden_dim=16, dropout_rate=0.0,
                       descriptive_choice_len=0)
    choices = jnp.zeros((batch, 2, 3), jnp.int32)
    params = model.init({"params": rng}, video, question, choices,
                        deterministic=True)["params"]
    tx = optax.adam(1e-2)
    opt_state = tx.init(params)

    def loss_fn(p):
        logits = model.apply({"params": p}, video, question, deterministic=True,
                             method=ALOE.descriptive)
        return optax.softmax_cross_entropy_with_integer_labels(logits, answers).mean()

    @jax.jit
    def step(p, s):
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    losses = []
    for _ in range(30):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    print(f"ALOE: descriptive loss {losses[0]:.3f} -> {losses[-1]:.3f} in 30 Adam steps")
    assert losses[-1] < 0.5 * losses[0]


def main() -> None:
    rng = jax.random.key(0)
    latents = monet_example(rng)
    transformer_example(rng)
    aloe_example(rng, np.asarray(latents))


if __name__ == "__main__":
    main()
