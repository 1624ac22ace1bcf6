"""The parts `ALOE` and `ALOECater` share: entity encoder, CLS, object tokens, reasoner, f.

A `ComposedModel` holds its parts as attributes and shares its scope with them
(`flax.linen.share_scope`), so their parameters sit at its top level under the
names the parts give them (`aloe.models.aloe` lists them).
"""

from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from aloe.models import entities as entities_lib
from aloe.models import reasoners
from aloe.models import tokens as tokens_lib
from aloe.models.tokens import TokenLayout

TokenSequence = tuple[jax.Array, Optional[jax.Array], TokenLayout]


class ComposedModel(nn.Module, kw_only=True):
    """The parts `ALOE` and `ALOECater` share: encoder, CLS, object tokens, reasoner, f.

    Attributes:
      reasoner: a reasoner module (`aloe.models.reasoners`).
      entity_encoder: an entity encoder (`aloe.models.entities`); None: the
        inputs are latents (`LatentEntities`).
      latent_dim: d, the entity size; tokens are d + 2 wide.
      auxiliary: adds the mask embedding and the latent prediction map f.
      full_token_mask: the mask vector is `[d + 2]`, replaces the whole object
        token and exists without the auxiliary loss too (the release's `mask`).
      initialization: "flax" or "release" (`tokens.MODEL_INITS`) of the CLS,
        mask, word embedding and heads.
    """
    reasoner: reasoners.Reasoner
    entity_encoder: Optional[nn.Module] = None
    latent_dim: int = 16
    auxiliary: bool = False
    full_token_mask: bool = False
    initialization: str = "flax"

    def _setup_parts(self) -> None:
        """Shares the scope with the parts and declares CLS, mask vector and f."""
        if self.auxiliary and not self.reasoner.has_object_outputs:
            raise ValueError(f"reasoner {self._reasoner_name()!r} has no object outputs for the "
                             f"auxiliary loss (auxiliary=True): turn the auxiliary loss off "
                             f"(config.auxiliary.weight = 0).")
        nn.share_scope(self, self.reasoner)
        if self.entity_encoder is None:
            self.latent_entities = entities_lib.LatentEntities(self.latent_dim)
        else:
            nn.share_scope(self, self.entity_encoder)
        init = tokens_lib.model_init(self.initialization)
        self.cls_token = self.param("cls_token", nn.initializers.zeros, (self.latent_dim + 2,),
                                    jnp.float32)
        if self.auxiliary or self.full_token_mask:
            mask_dim = self.latent_dim + 2 if self.full_token_mask else self.latent_dim
            self.mask_embedding = self.param("mask_embedding", init.mask, (mask_dim,),
                                             jnp.float32)
        if self.auxiliary:
            self.latent_prediction = nn.Dense(self.latent_dim, kernel_init=init.head,
                                              name="latent_prediction")

    def _reasoner_name(self) -> str:
        return getattr(self.reasoner, "kind", type(self.reasoner).__name__)

    def _encoder(self) -> nn.Module:
        if self.entity_encoder is not None:
            return self.entity_encoder
        if self.scope is None:  # Unbound: a throwaway module answers shape questions.
            return entities_lib.LatentEntities(self.latent_dim, parent=None)
        return self.latent_entities

    def input_kind(self) -> str:
        """What the model reads: `entities.LATENTS` or `entities.FRAMES` (works unbound)."""
        return self._encoder().input_kind

    def entities_per_frame(self, frame_shape: Sequence[int]) -> int:
        """Entities of one frame's input (`[K, d]` latents or an `[H, W, C]` frame); unbound too."""
        return self._encoder().entities_per_frame(frame_shape)

    def _object_grid(self, inputs: jax.Array) -> tuple[int, int, int]:
        """`(B, T, K)` of the entities `inputs` turn into."""
        return (*inputs.shape[:2], self.entities_per_frame(inputs.shape[2:]))

    def _entities_of(self, inputs: Sequence[jax.Array]) -> list[jax.Array]:
        """Entities `[B_i, T, K, d]` of several inputs, in one encoder pass when shapes agree."""
        if len({x.shape[1:] for x in inputs}) > 1:
            return [self._encoder()(x) for x in inputs]
        joined = self._encoder()(jnp.concatenate(inputs, axis=0))
        return tokens_lib.split_rows(joined, [x.shape[0] for x in inputs])

    def _mask_vector(self) -> Optional[jax.Array]:
        """The mask vector (`[d]` or `[d + 2]`), None when the model has none."""
        return self.mask_embedding if self.auxiliary or self.full_token_mask else None

    def _cls(self, batch: int) -> jax.Array:
        return jnp.broadcast_to(self.cls_token, (batch, 1, self.latent_dim + 2))

    def _reason_all(self, sequences: Sequence[TokenSequence], *, deterministic: bool
                    ) -> list[tuple[jax.Array, Optional[jax.Array]]]:
        """The reasoner on several sequences, in one pass when their layouts agree."""
        layouts = [layout for _, _, layout in sequences]
        if len(set(layouts)) > 1:
            if self.reasoner.needs_one_layout():
                raise ValueError(
                    f"reasoner {self._reasoner_name()!r} needs every sequence to have the same "
                    f"layout, got {layouts}: make descriptive_choice_len equal the choice length.")
            return [self.reasoner(t, m, layout, deterministic=deterministic)
                    for t, m, layout in sequences]
        sizes = [tokens.shape[0] for tokens, _, _ in sequences]
        masks = [m for _, m, _ in sequences]
        cls, objects = self.reasoner(
            jnp.concatenate([t for t, _, _ in sequences], axis=0),
            None if masks[0] is None else jnp.concatenate(masks, axis=0), layouts[0],
            deterministic=deterministic)
        return list(zip(tokens_lib.split_rows(cls, sizes), tokens_lib.split_rows(objects, sizes)))

    def _latent_head(self, objects: Optional[jax.Array]) -> jax.Array:
        """f: object outputs `[B, T, K, width]` -> predicted latents `[B, T, K, d]`."""
        if not self.auxiliary:
            raise ValueError("Predicting latents needs the model built with auxiliary=True.")
        return self.latent_prediction(objects)
