"""The reasoner variants shared by `ALOE` and `ALOECater`, and their object tokens.

Tokens are `d + 2` wide. An object token is the MONet mean `mu` (d) followed
by the flag `[0, 1]`; the models add a learned `d + 2` CLS vector (initialised
to zero) and, for CLEVRER, word tokens (`aloe.models.aloe`). A sequence is
`[CLS, words, objects]`, the objects frame-major (`t * slots + k`); a
`TokenLayout` records where each role sits.

Reasoner variants (`variant`, the rows of the paper's Table 1; modules in
`aloe.models.ablations`). One private method, `_reason`, maps raw tokens, mask
and layout to a CLS-role vector `[B, width]` (read by the answer heads) and
object outputs `[B, T, K, width]` (read by the latent prediction f):

- `"transformer"` (ALOE): one shared `Dense(num_heads * (d + 2))` + ReLU lifts
  every token to the model width; a relative transformer attends globally.
- `"mlp"`: `MLPReasoner` on the flattened raw tokens (no projection). The token
  count is baked into its first layer, so every sequence must have the same
  layout, and it has no object outputs: the auxiliary loss cannot be used.
- `"hierarchical"`: the projected tokens are split into CLS, words (+ mask) and
  objects `[B, T, K, width]` for `HierarchicalReasoner` (attention within each
  frame with the words, then across frame vectors). Its object outputs, for
  the auxiliary loss, are the stage-1 object outputs: a hidden object is then
  predicted from the words and the other objects of its own frame only.
- `"resnet"`: inputs are frames `[B, T, H, W, 3]` (uint8 or float in [0, 1]);
  `ResNetEntities`, trained with the rest of the model, turns every frame into
  `(H/s) * (W/s)` entities of size d that take the place of the latents; the
  reasoner is the transformer. Auxiliary-loss targets are the ResNet's own
  entities under stop_gradient (`return_targets`).

Self-supervised auxiliary loss (`auxiliary=True`, paper Section 2.1): object
tokens that are not visible (`visible[b, t, k]` False) have their latent
replaced by a learned `mask_embedding` (the object flag is kept), and a learned
linear map `latent_prediction` (f) reads predicted latents `[B, T, K, d]` from
the reasoner's object outputs. The schemes that choose `visible` are in
`aloe.masking`, the losses in `aloe.losses`. With `full_token_mask` the mask
vector is the release's `mask`: `d + 2` wide, it replaces the whole object
token (latent and flag), and it exists even without the auxiliary loss.

Release options (the released model's choices; the module defaults are the
earlier Flax ones, the paper configs set the release's): `attention_output_bias`,
`layer_norm_epsilon`, `attention_dropout_rate`, `position_dropout_rate` (see
`aloe.models.transformer`), `input_dropout_rate` (on the token projection,
before its ReLU), `initialization` (`MODEL_INITS`: the release's He-initialised
projection, standard-normal word embedding, Sonnet-default heads and zero mask
vector, with `transformer.release_tower_init` in the tower) and `full_token_mask`.
"""

import itertools
from typing import NamedTuple, Optional, Sequence

import flax.linen as nn
from flax.linen.linear import default_embed_init
from flax.linen.linear import default_kernel_init
import jax
import jax.numpy as jnp

from aloe.models import ablations
from aloe.models import transformer

_OBJECT_FLAG = (0.0, 1.0)
VARIANTS = ("transformer", "mlp", "hierarchical", "resnet")


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


class TokenLayout(NamedTuple):
    """Roles in `[CLS, words, objects]`: CLS at 0, `num_words` words, `frames * slots` objects."""
    num_words: int
    frames: int
    slots: int


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
    flags = constant_flags(_OBJECT_FLAG, (batch, frames * slots))
    tokens = jnp.concatenate([objects, flags], axis=-1)
    if visible is not None and mask_embedding.shape == (latent_dim + 2,):
        tokens = jnp.where(visible.reshape(batch, frames * slots, 1), tokens, mask_embedding)
    return tokens


def _split_rows(array: Optional[jax.Array], sizes: Sequence[int]) -> list[Optional[jax.Array]]:
    """Splits the leading axis into consecutive pieces of `sizes` rows (None stays None)."""
    if array is None:
        return [None] * len(sizes)
    return jnp.split(array, list(itertools.accumulate(sizes[:-1])), axis=0)


class VariantReasoning(nn.Module, kw_only=True):
    """The reasoner variants behind one interface; the base of `ALOE` and `ALOECater`.

    Subclasses declare `latent_dim`, `num_heads`, `num_layers`, `mlp_dim`,
    `dropout_rate` and `auxiliary`, and call `_setup_reasoner()` in `setup`.
    Parameter names: `token_projection` (not for "mlp"), `transformer`
    ("transformer", "resnet"), `mlp_reasoner`, `hierarchical_reasoner`,
    `resnet_entities`, and `mask_embedding` + `latent_prediction` (auxiliary).

    Attributes:
      variant: one of `VARIANTS` (see the module docstring).
      mlp_hidden_dim: "mlp": units per hidden layer (paper: 2048).
      mlp_num_layers: "mlp": hidden layers (paper: 4).
      frame_num_layers: "hierarchical": blocks of the within-frame transformer.
      video_num_layers: "hierarchical": blocks of the across-frame transformer.
      frame_summary: "hierarchical": `ablations.FRAME_SUMMARIES`.
      resnet_stage_sizes: "resnet": residual blocks per stage.
      resnet_widths: "resnet": channels per stage.
      resnet_stage_strides: "resnet": stride of each stage's first block.
      resnet_stem_width: "resnet": channels of the stem convolution.
      resnet_stem_stride: "resnet": stride of the stem convolution.
      resnet_num_groups: "resnet": GroupNorm groups (None: no normalisation).
      attention_dropout_rate: dropout on the attention weights (release: 0.1).
      position_dropout_rate: dropout on the position encodings (release: 0.1).
      input_dropout_rate: dropout on the token projection before its ReLU (release: 0.1).
        Each of the three may be None: `dropout_rate` (the release uses one rate for
        all its dropouts).
      attention_output_bias: a bias on the attention output projections (release).
      layer_norm_epsilon: of the transformer's LayerNorms (release: Sonnet's 1e-5).
      initialization: "flax" or "release" (`MODEL_INITS`, `transformer.tower_init`).
      full_token_mask: the mask vector is `[d + 2]` and replaces the whole object
        token, and exists without the auxiliary loss too (the release's `mask`).

    The release options reach the transformer of "transformer" and "resnet";
    the hierarchical reasoner keeps its own defaults.
    """
    variant: str = "transformer"
    mlp_hidden_dim: int = 2048
    mlp_num_layers: int = 4
    frame_num_layers: int = 13
    video_num_layers: int = 13
    frame_summary: str = "words_and_objects"
    resnet_stage_sizes: Sequence[int] = (2, 2, 2, 2)
    resnet_widths: Sequence[int] = (32, 64, 128, 128)
    resnet_stage_strides: Sequence[int] = (1, 2, 2, 2)
    resnet_stem_width: int = 32
    resnet_stem_stride: int = 2
    resnet_num_groups: Optional[int] = 8
    attention_dropout_rate: Optional[float] = 0.0
    position_dropout_rate: Optional[float] = 0.0
    input_dropout_rate: Optional[float] = 0.0
    attention_output_bias: bool = False
    layer_norm_epsilon: float = 1e-6
    initialization: str = "flax"
    full_token_mask: bool = False

    def _resnet(self, **kwargs) -> ablations.ResNetEntities:
        return ablations.ResNetEntities(
            output_dim=self.latent_dim, stage_sizes=tuple(self.resnet_stage_sizes),
            widths=tuple(self.resnet_widths), stage_strides=tuple(self.resnet_stage_strides),
            stem_width=self.resnet_stem_width, stem_stride=self.resnet_stem_stride,
            num_groups=self.resnet_num_groups, **kwargs)

    def entities_per_frame(self, height: int, width: int) -> int:
        """"resnet": entities per `height x width` frame (works on an unbound module)."""
        if self.variant != "resnet":
            raise ValueError(f"entities_per_frame is for variant 'resnet', not {self.variant!r}.")
        stride = self._resnet(parent=None).total_stride()
        if height % stride or width % stride:
            raise ValueError(f"Frame size {height}x{width} is not divisible by the ResNet's "
                             f"total stride {stride}.")
        return (height // stride) * (width // stride)

    def _setup_reasoner(self) -> None:
        """Declares the variant's modules and the auxiliary parameters."""
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}.")
        token_dim = self.latent_dim + 2
        width = self.num_heads * token_dim
        init = model_init(self.initialization)
        if self.variant == "mlp":
            if self.auxiliary:
                raise ValueError("variant 'mlp' has no object outputs for the auxiliary loss "
                                 "(auxiliary=True): turn the auxiliary loss off "
                                 "(config.auxiliary.weight = 0).")
            self.mlp_reasoner = ablations.MLPReasoner(
                output_dim=width, hidden_dim=self.mlp_hidden_dim, num_layers=self.mlp_num_layers,
                dropout_rate=self.dropout_rate, name="mlp_reasoner")
        else:
            self.token_projection = nn.Dense(width, kernel_init=init.projection,
                                             name="token_projection")
            self.input_dropout = transformer.Dropout(self._rate(self.input_dropout_rate))
        if self.variant in ("transformer", "resnet"):
            self.transformer = transformer.RelativeTransformer(
                num_layers=self.num_layers, num_heads=self.num_heads, head_dim=token_dim,
                mlp_dim=self.mlp_dim, dropout_rate=self.dropout_rate,
                attention_dropout_rate=self._rate(self.attention_dropout_rate),
                position_dropout_rate=self._rate(self.position_dropout_rate),
                output_bias=self.attention_output_bias,
                layer_norm_epsilon=self.layer_norm_epsilon,
                initialization=self.initialization, name="transformer")
        if self.variant == "hierarchical":
            self.hierarchical_reasoner = ablations.HierarchicalReasoner(
                num_layers_frame=self.frame_num_layers, num_layers_video=self.video_num_layers,
                num_heads=self.num_heads, head_dim=token_dim, mlp_dim=self.mlp_dim,
                dropout_rate=self.dropout_rate, frame_summary=self.frame_summary,
                name="hierarchical_reasoner")
        if self.variant == "resnet":
            self.resnet_entities = self._resnet(name="resnet_entities")
        if self.auxiliary or self.full_token_mask:
            mask_dim = token_dim if self.full_token_mask else self.latent_dim
            self.mask_embedding = self.param("mask_embedding", init.mask, (mask_dim,),
                                             jnp.float32)
        if self.auxiliary:
            self.latent_prediction = nn.Dense(self.latent_dim, kernel_init=init.head,
                                              name="latent_prediction")

    def _entities(self, inputs: jax.Array) -> jax.Array:
        """Object latents `[B, T, K, d]`: the inputs, or the ResNet's entities of frames."""
        if self.variant == "resnet":
            return self.resnet_entities(inputs)
        if inputs.ndim != 4 or inputs.shape[-1] != self.latent_dim:
            raise ValueError(f"latents must be [batch, frames, slots, {self.latent_dim}], "
                             f"got shape {inputs.shape}.")
        return inputs.astype(jnp.float32)

    def _entities_of(self, inputs: Sequence[jax.Array]) -> list[jax.Array]:
        """`_entities` of several inputs, in one ResNet pass when their shapes agree."""
        if self.variant != "resnet" or len({x.shape[1:] for x in inputs}) > 1:
            return [self._entities(x) for x in inputs]
        joined = self._entities(jnp.concatenate(inputs, axis=0))
        return _split_rows(joined, [x.shape[0] for x in inputs])

    def _object_grid(self, inputs: jax.Array) -> tuple[int, int, int]:
        """`(B, T, K)` of the entities `inputs` (latents or frames) turn into."""
        if self.variant == "resnet":
            if inputs.ndim != 5:
                raise ValueError(f"variant 'resnet' reads frames [batch, frames, height, width, "
                                 f"channels], got shape {inputs.shape}.")
            return (*inputs.shape[:2], self.entities_per_frame(*inputs.shape[2:4]))
        return tuple(inputs.shape[:3])

    def _rate(self, rate: Optional[float]) -> float:
        """A release dropout's rate: `rate`, or `dropout_rate` when None."""
        return self.dropout_rate if rate is None else rate

    def _mask_vector(self) -> Optional[jax.Array]:
        """The mask vector (`[d]` or `[d + 2]`), None when the model has none."""
        return self.mask_embedding if self.auxiliary or self.full_token_mask else None

    def _project(self, tokens: jax.Array, *, deterministic: bool) -> jax.Array:
        """Raw tokens `[B, N, d+2]` -> the reasoner's input (`[B, N, width]`; raw for "mlp").

        ReLU(Dropout(Dense(tokens))): the release's input MLP drops out before its ReLU.
        """
        if self.variant == "mlp":
            return tokens
        projected = self.token_projection(tokens)
        return nn.relu(self.input_dropout(projected, deterministic=deterministic))

    def _reason(self, tokens: jax.Array, mask: Optional[jax.Array], layout: TokenLayout, *,
                deterministic: bool) -> tuple[jax.Array, Optional[jax.Array]]:
        """The variant's reasoner on raw tokens.

        Args:
          tokens: `[B, N, d+2]` raw tokens laid out as `layout` says.
          mask: `[B, N]` bool (True = real) or None (every token real).
          layout: the roles' positions.
          deterministic: True disables dropout.

        Returns:
          `(CLS-role vector [B, width], object outputs [B, T, K, width])`; the
          object outputs are None for "mlp".
        """
        return self._reason_projected(self._project(tokens, deterministic=deterministic), mask,
                                      layout, deterministic=deterministic)

    def _reason_projected(self, x: jax.Array, mask: Optional[jax.Array], layout: TokenLayout, *,
                          deterministic: bool) -> tuple[jax.Array, Optional[jax.Array]]:
        """`_reason` after `_project`."""
        batch, num_words = x.shape[0], layout.num_words
        if self.variant == "mlp":
            return self.mlp_reasoner(x, mask, deterministic=deterministic), None
        objects = x[:, 1 + num_words:].reshape(batch, layout.frames, layout.slots, x.shape[-1])
        if self.variant == "hierarchical":
            word_mask = None if mask is None else mask[:, 1:1 + num_words]
            cls, _, stage_one = self.hierarchical_reasoner(
                x[:, 1:1 + num_words], word_mask, objects, x[:, 0], deterministic=deterministic,
                return_frame_outputs=True)
            return cls, stage_one[:, :, num_words:]
        out = self.transformer(x, mask, deterministic=deterministic)
        return out[:, 0], out[:, 1 + num_words:].reshape(objects.shape)

    def _reason_all(self, sequences: Sequence[tuple[jax.Array, Optional[jax.Array], TokenLayout]],
                    *, deterministic: bool) -> list[tuple[jax.Array, Optional[jax.Array]]]:
        """`_reason` of several sequences, in one pass when their layouts agree."""
        layouts = [layout for _, _, layout in sequences]
        if len(set(layouts)) > 1:
            if self.variant == "mlp" or (self.variant == "hierarchical"
                                         and self.frame_summary == "words_and_objects"):
                raise ValueError(
                    f"variant {self.variant!r} needs every sequence to have the same layout, "
                    f"got {layouts}: make descriptive_choice_len equal the choice length.")
            return [self._reason(t, m, layout, deterministic=deterministic)
                    for t, m, layout in sequences]
        sizes = [tokens.shape[0] for tokens, _, _ in sequences]
        masks = [m for _, m, _ in sequences]
        cls, objects = self._reason_projected(
            jnp.concatenate([self._project(t, deterministic=deterministic)
                             for t, _, _ in sequences], axis=0),
            None if masks[0] is None else jnp.concatenate(masks, axis=0), layouts[0],
            deterministic=deterministic)
        return list(zip(_split_rows(cls, sizes), _split_rows(objects, sizes)))

    def _latent_head(self, objects: Optional[jax.Array]) -> jax.Array:
        """f: object outputs `[B, T, K, width]` -> predicted latents `[B, T, K, d]`."""
        if not self.auxiliary:
            raise ValueError("Predicting latents needs the model built with auxiliary=True.")
        return self.latent_prediction(objects)

