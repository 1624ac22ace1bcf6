"""ALOE: tokens from object latents and question words, a reasoner, heads.

The layout follows the released CLEVRER model. Tokens are `d + 2` wide:

- object token: the MONet mean `mu` (d) followed by the flag `[0, 1]`;
- word token: a learned `d - 2` word embedding, a question/choice flag (`[1, 0]`
  for question words, `[0, 1]` for choice words) and the word flag `[1, 0]`;
- CLS: a learned `d + 2` vector, initialised to zero.

A sequence is `[CLS, question words, choice words, objects]`, the objects
frame-major (`t * slots + k`); a `TokenLayout` records where each role sits.
Word id 0 is padding; with `word_padding_mask` padding words are masked (never
attended to as keys, and no other token's output depends on them); without it
(as in the release) they are ordinary tokens.

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

Release quirk (`descriptive_flag_quirk`, on by default): the words of a
descriptive question carry the choice flag `[0, 1]`, not the question flag.
Descriptive questions have no choices; they are followed by
`descriptive_choice_len` padding choice tokens (12 in the release), so every
CLEVRER sequence has the same length and the same relative positions.

Training on both kinds of question should use `descriptive_and_multiple_choice`,
which runs all sequences of a step through the reasoner in one pass.

Self-supervised auxiliary loss (`auxiliary=True`, paper Section 2.1): object
tokens that are not visible (`visible[b, t, k]` False) have their latent
replaced by a learned `mask_embedding` (the object flag is kept), and a learned
linear map `latent_prediction` (f) reads predicted latents `[B, T, K, d]` from
the reasoner's object outputs. The schemes that choose `visible` are in
`aloe.masking`, the losses in `aloe.losses`.
"""

import itertools
from typing import NamedTuple, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from aloe.models import ablations
from aloe.models import transformer

QUESTION_FLAG = (1.0, 0.0)
CHOICE_FLAG = (0.0, 1.0)
_WORD_FLAG = (1.0, 0.0)
_OBJECT_FLAG = (0.0, 1.0)
VARIANTS = ("transformer", "mlp", "hierarchical", "resnet")


class TokenLayout(NamedTuple):
    """Roles in `[CLS, words, objects]`: CLS at 0, `num_words` words, `frames * slots` objects."""
    num_words: int
    frames: int
    slots: int


def _flags(values: Sequence[float], shape: tuple[int, ...]) -> jax.Array:
    """A constant flag vector broadcast to `shape + (len(values),)`."""
    return jnp.broadcast_to(jnp.asarray(values, jnp.float32), shape + (len(values),))


def object_tokens(latents: jax.Array, latent_dim: int, visible: Optional[jax.Array] = None,
                  mask_embedding: Optional[jax.Array] = None) -> jax.Array:
    """Object tokens `[B, T*K, d+2]` (frame-major) from latents `[B, T, K, d]`.

    Where `visible` `[B, T, K]` is False the latent is replaced by `mask_embedding` `[d]`.
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
        latents = jnp.where(visible[..., None], latents, mask_embedding)
    batch, frames, slots, _ = latents.shape
    objects = latents.reshape(batch, frames * slots, latent_dim)
    return jnp.concatenate([objects, _flags(_OBJECT_FLAG, (batch, frames * slots))], axis=-1)


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
        if self.variant == "mlp":
            if self.auxiliary:
                raise ValueError("variant 'mlp' has no object outputs for the auxiliary loss "
                                 "(auxiliary=True): turn the auxiliary loss off "
                                 "(config.auxiliary.weight = 0).")
            self.mlp_reasoner = ablations.MLPReasoner(
                output_dim=width, hidden_dim=self.mlp_hidden_dim, num_layers=self.mlp_num_layers,
                dropout_rate=self.dropout_rate, name="mlp_reasoner")
        else:
            self.token_projection = nn.Dense(width, name="token_projection")
        if self.variant in ("transformer", "resnet"):
            self.transformer = transformer.RelativeTransformer(
                num_layers=self.num_layers, num_heads=self.num_heads, head_dim=token_dim,
                mlp_dim=self.mlp_dim, dropout_rate=self.dropout_rate, name="transformer")
        if self.variant == "hierarchical":
            self.hierarchical_reasoner = ablations.HierarchicalReasoner(
                num_layers_frame=self.frame_num_layers, num_layers_video=self.video_num_layers,
                num_heads=self.num_heads, head_dim=token_dim, mlp_dim=self.mlp_dim,
                dropout_rate=self.dropout_rate, frame_summary=self.frame_summary,
                name="hierarchical_reasoner")
        if self.variant == "resnet":
            self.resnet_entities = self._resnet(name="resnet_entities")
        if self.auxiliary:
            self.mask_embedding = self.param("mask_embedding", nn.initializers.normal(0.02),
                                             (self.latent_dim,), jnp.float32)
            self.latent_prediction = nn.Dense(self.latent_dim, name="latent_prediction")

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

    def _project(self, tokens: jax.Array) -> jax.Array:
        """Raw tokens `[B, N, d+2]` -> the reasoner's input (`[B, N, width]`; raw for "mlp")."""
        if self.variant == "mlp":
            return tokens
        return nn.relu(self.token_projection(tokens))

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
        return self._reason_projected(self._project(tokens), mask, layout,
                                      deterministic=deterministic)

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
            jnp.concatenate([self._project(t) for t, _, _ in sequences], axis=0),
            None if masks[0] is None else jnp.concatenate(masks, axis=0), layouts[0],
            deterministic=deterministic)
        return list(zip(_split_rows(cls, sizes), _split_rows(objects, sizes)))

    def _latent_head(self, objects: Optional[jax.Array]) -> jax.Array:
        """f: object outputs `[B, T, K, width]` -> predicted latents `[B, T, K, d]`."""
        if not self.auxiliary:
            raise ValueError("Predicting latents needs the model built with auxiliary=True.")
        return self.latent_prediction(objects)


class ALOE(VariantReasoning, kw_only=True):
    """Attention over learned object embeddings, with descriptive and MC heads.

    Every argument is a keyword; the reasoner options are those of
    `VariantReasoning`. Public methods take `latents` `[B, T, K, d]`, or frames
    `[B, T, H, W, 3]` for variant "resnet".

    Attributes:
      vocab_size: word ids including the padding id 0 (release: 82).
      num_answers: descriptive answer classes (release: 21).
      latent_dim: d, the object latent size; tokens are d + 2 wide.
      num_heads: attention heads; the model width is num_heads * (d + 2).
      num_layers: transformer blocks ("transformer", "resnet").
      mlp_dim: feed-forward hidden size of the transformers.
      head_hidden_dim: hidden size of the answer heads.
      dropout_rate: dropout of the reasoner.
      word_padding_mask: mask padding words (id 0); False reproduces the release.
      descriptive_flag_quirk: descriptive question words carry the choice flag, as
        in the release; False gives them the question flag.
      descriptive_choice_len: padding choice tokens after a descriptive question.
      auxiliary: adds the mask embedding and the latent prediction map f used by
        the self-supervised auxiliary loss (`predict_latents`).
    """
    vocab_size: int
    num_answers: int
    latent_dim: int = 16
    num_heads: int = 10
    num_layers: int = 28
    mlp_dim: int = 1024
    head_hidden_dim: int = 128
    dropout_rate: float = 0.1
    word_padding_mask: bool = True
    descriptive_flag_quirk: bool = True
    descriptive_choice_len: int = 12
    auxiliary: bool = False

    def setup(self):
        """Declares the submodules and the CLS token."""
        if self.latent_dim < 3:
            raise ValueError(f"latent_dim must be at least 3 (word embeddings are d-2 wide), "
                             f"got {self.latent_dim}.")
        self.word_embedding = nn.Embed(self.vocab_size, self.latent_dim - 2,
                                       name="word_embedding")
        self.cls_token = self.param("cls_token", nn.initializers.zeros, (self.latent_dim + 2,),
                                    jnp.float32)
        self._setup_reasoner()
        self.descriptive_hidden = nn.Dense(self.head_hidden_dim, name="descriptive_hidden")
        self.descriptive_output = nn.Dense(self.num_answers, name="descriptive_output")
        self.choice_hidden = nn.Dense(self.head_hidden_dim, name="choice_hidden")
        self.choice_output = nn.Dense(1, name="choice_output")

    def _word_tokens(self, words: jax.Array, flag: Sequence[float]) -> jax.Array:
        """words [B, L] int32 -> word tokens [B, L, d+2]."""
        shape = words.shape
        return jnp.concatenate([self.word_embedding(words), _flags(flag, shape),
                                _flags(_WORD_FLAG, shape)], axis=-1)

    def _sequence(self, entities: jax.Array, question: Optional[jax.Array],
                  choice: Optional[jax.Array], question_flag: Sequence[float],
                  visible: Optional[jax.Array] = None
                  ) -> tuple[jax.Array, Optional[jax.Array], TokenLayout]:
        """Raw tokens `[B, N, d+2]`, their mask `[B, N]` (None without padding mask), layout."""
        objects = object_tokens(entities, self.latent_dim, visible,
                                self.mask_embedding if self.auxiliary else None)
        batch, frames, slots, _ = entities.shape
        pieces = [jnp.broadcast_to(self.cls_token, (batch, 1, self.latent_dim + 2))]
        masks = [jnp.ones((batch, 1), bool)]
        for name, words, flag in (("question", question, question_flag),
                                  ("choice", choice, CHOICE_FLAG)):
            if words is None:
                continue
            if words.ndim != 2 or words.shape[0] != batch:
                raise ValueError(f"{name} must be [batch={batch}, length] word ids, "
                                 f"got shape {words.shape}.")
            pieces.append(self._word_tokens(words, flag))
            masks.append(words != 0)
        num_words = sum(p.shape[1] for p in pieces[1:])
        pieces.append(objects)
        masks.append(jnp.ones((batch, frames * slots), bool))
        mask = jnp.concatenate(masks, axis=1) if self.word_padding_mask else None
        return jnp.concatenate(pieces, axis=1), mask, TokenLayout(num_words, frames, slots)

    def encode(self, latents: jax.Array, question: Optional[jax.Array] = None,
               choice: Optional[jax.Array] = None, *, question_flag: Sequence[float],
               deterministic: bool,
               visible: Optional[jax.Array] = None) -> tuple[jax.Array, Optional[jax.Array]]:
        """Runs the reasoner on `[CLS, question, choice, objects]`.

        Args:
          latents: `[B, T, K, d]` object latents (MONet means), frames in order
            (frames `[B, T, H, W, 3]` for "resnet").
          question: `[B, Lq]` int32 word ids (0 = padding), or None for no words.
          choice: `[B, Lc]` int32 word ids of one choice (0 = padding), or None.
          question_flag: the 2-d question/choice flag the question words carry
            (`QUESTION_FLAG` or `CHOICE_FLAG`).
          deterministic: True disables dropout; otherwise the 'dropout' rng is used.
          visible: optional bool `[B, T, K]`; hidden objects show the mask embedding.

        Returns:
          `(cls [B, width], objects [B, T, K, width])`, width = num_heads * (d + 2);
          objects is None for "mlp".
        """
        sequence = self._sequence(self._entities(latents), question, choice, question_flag,
                                  visible)
        return self._reason(*sequence, deterministic=deterministic)

    def _descriptive_sequence(self, entities, question, visible=None):
        flag = CHOICE_FLAG if self.descriptive_flag_quirk else QUESTION_FLAG
        choice = None
        if self.descriptive_choice_len:
            choice = jnp.zeros((question.shape[0], self.descriptive_choice_len), jnp.int32)
        return self._sequence(entities, question, choice, flag, visible)

    def predict_latents(self, latents: jax.Array, question: jax.Array, visible: jax.Array, *,
                        deterministic: bool) -> jax.Array:
        """Latents predicted at every object token of a masked descriptive-style sequence.

        Args:
          latents: `[B, T, K, d]` (frames `[B, T, H, W, 3]` for "resnet").
          question: `[B, Lq]` int32 word ids (the video's question; its answer is unused).
          visible: bool `[B, T, K]`; False tokens show the mask embedding.
          deterministic: True disables dropout.

        Returns:
          `[B, T, K, d]` = f(object outputs).
        """
        sequence = self._descriptive_sequence(self._entities(latents), question, visible)
        return self._latent_head(self._reason(*sequence, deterministic=deterministic)[1])

    def _choice_sequences(self, entities, question, choices):
        if choices.ndim != 3 or choices.shape[0] != entities.shape[0]:
            raise ValueError(f"choices must be [batch={entities.shape[0]}, choices, length], "
                             f"got shape {choices.shape}.")
        batch, num_choices, choice_len = choices.shape
        repeat = lambda a: jnp.repeat(a, num_choices, axis=0)
        return self._sequence(repeat(entities), repeat(question),
                              choices.reshape(batch * num_choices, choice_len), QUESTION_FLAG)

    def _descriptive_head(self, cls: jax.Array) -> jax.Array:
        return self.descriptive_output(nn.relu(self.descriptive_hidden(cls)))

    def _choice_head(self, cls: jax.Array, batch: int) -> jax.Array:
        return self.choice_output(nn.relu(self.choice_hidden(cls))).reshape(batch, -1)

    def descriptive(self, latents: jax.Array, question: jax.Array, *,
                    deterministic: bool) -> jax.Array:
        """Answer logits of descriptive questions.

        Args:
          latents: `[B, T, K, d]` (frames `[B, T, H, W, 3]` for "resnet").
          question: `[B, Lq]` int32 word ids.
          deterministic: True disables dropout.

        Returns:
          `[B, num_answers]` logits.
        """
        sequence = self._descriptive_sequence(self._entities(latents), question)
        return self._descriptive_head(self._reason(*sequence, deterministic=deterministic)[0])

    def multiple_choice(self, latents: jax.Array, question: jax.Array, choices: jax.Array, *,
                        deterministic: bool) -> jax.Array:
        """One logit per choice (>= 0 means "correct").

        The reasoner runs once per choice on `[CLS, question, that choice,
        objects]`, so a choice's logit depends on no other choice.

        Args:
          latents: `[B, T, K, d]` (frames `[B, T, H, W, 3]` for "resnet").
          question: `[B, Lq]` int32 word ids.
          choices: `[B, C, Lc]` int32 word ids.
          deterministic: True disables dropout.

        Returns:
          `[B, C]` logits.
        """
        sequence = self._choice_sequences(self._entities(latents), question, choices)
        cls = self._reason(*sequence, deterministic=deterministic)[0]
        return self._choice_head(cls, choices.shape[0])

    def descriptive_and_multiple_choice(
            self, desc_latents: jax.Array, desc_question: jax.Array, mc_latents: jax.Array,
            mc_question: jax.Array, mc_choices: jax.Array, *, deterministic: bool,
            aux: Optional[tuple[jax.Array, jax.Array, jax.Array]] = None,
            return_targets: bool = False) -> tuple:
        """`descriptive`, `multiple_choice` (and `predict_latents`) in one reasoner pass.

        Every sequence is computed independently, so the outputs are those of the
        separate methods (dropout aside: one 'dropout' key serves all). When all
        sequences have the same layout (`descriptive_choice_len` equals the
        choice length) they share one pass: larger matmuls and a smaller
        program to compile. Otherwise each kind runs alone. For "resnet" the
        frames of all sub-batches go through the ResNet together, and the
        multiple-choice entities are repeated per choice after it.

        Args:
          desc_latents: `[Bd, T, K, d]` (frames `[Bd, T, H, W, 3]` for "resnet").
          desc_question: `[Bd, Lq]` int32.
          mc_latents: `[Bm, T, K, d]` (or frames).
          mc_question: `[Bm, Lq]` int32.
          mc_choices: `[Bm, C, Lc]` int32.
          deterministic: True disables dropout.
          aux: optional `(latents [Ba, T, K, d] or frames, question [Ba, Lq],
            visible [Ba, T, K])` of the auxiliary sub-batch.
          return_targets: with `aux`, also return the auxiliary targets: the aux
            entities `[Ba, T, K, d]` under stop_gradient (the latents themselves,
            or the ResNet's entities for "resnet").

        Returns:
          `(descriptive logits [Bd, num_answers], choice logits [Bm, C])`, plus the
          predicted latents `[Ba, T, K, d]` of the auxiliary sub-batch when `aux` is
          given, plus its targets when `return_targets`.
        """
        inputs = [desc_latents, mc_latents] + ([aux[0]] if aux is not None else [])
        entities = self._entities_of(inputs)
        sequences = [self._descriptive_sequence(entities[0], desc_question),
                     self._choice_sequences(entities[1], mc_question, mc_choices)]
        if aux is not None:
            sequences.append(self._descriptive_sequence(entities[2], aux[1], aux[2]))
        outs = self._reason_all(sequences, deterministic=deterministic)
        results = (self._descriptive_head(outs[0][0]),
                   self._choice_head(outs[1][0], mc_choices.shape[0]))
        if aux is not None:
            results += (self._latent_head(outs[2][1]),)
            if return_targets:
                results += (jax.lax.stop_gradient(entities[2]),)
        return results

    def __call__(self, latents: jax.Array, question: jax.Array, choices: jax.Array, *,
                 deterministic: bool) -> tuple[jax.Array, jax.Array]:
        """Both heads on the same inputs (touches every parameter; used for init).

        Args:
          latents: `[B, T, K, d]` (frames `[B, T, H, W, 3]` for "resnet").
          question: `[B, Lq]` int32.
          choices: `[B, C, Lc]` int32.
          deterministic: True disables dropout.

        Returns:
          `(descriptive logits [B, num_answers], choice logits [B, C])`.
        """
        aux = None
        if self.auxiliary:
            aux = (latents, question, jnp.ones(self._object_grid(latents), bool))
        return self.descriptive_and_multiple_choice(latents, question, latents, question,
                                                    choices, deterministic=deterministic,
                                                    aux=aux)[:2]


class ALOECater(VariantReasoning, kw_only=True):
    """ALOE for CATER snitch localization: `[CLS, objects]`, no words, a grid head.

    Tokens are as in `ALOE` (object latent + object flag; CLS a zero-initialised
    learned `d + 2` vector); the reasoner is chosen by `variant` as in `ALOE`.
    The CLS-role output goes through `Dense(head_hidden_dim)-ReLU-Dense(num_classes)`.
    Every argument is a keyword.

    Attributes:
      num_classes: grid cells (6 x 6 = 36).
      latent_dim: d (36 for the paper's CATER MONet).
      num_heads: attention heads; the model width is num_heads * (d + 2).
      num_layers: transformer blocks ("transformer", "resnet").
      mlp_dim: feed-forward hidden size of the transformers.
      head_hidden_dim: hidden size of the grid head (144 in the paper).
      dropout_rate: dropout of the reasoner.
      auxiliary: adds the mask embedding and the latent prediction map f.
    """
    num_classes: int = 36
    latent_dim: int = 36
    num_heads: int = 8
    num_layers: int = 16
    mlp_dim: int = 1024
    head_hidden_dim: int = 144
    dropout_rate: float = 0.1
    auxiliary: bool = False

    def setup(self):
        """Declares the submodules and the CLS token."""
        self.cls_token = self.param("cls_token", nn.initializers.zeros, (self.latent_dim + 2,),
                                    jnp.float32)
        self._setup_reasoner()
        self.grid_hidden = nn.Dense(self.head_hidden_dim, name="grid_hidden")
        self.grid_output = nn.Dense(self.num_classes, name="grid_output")

    def _encode_entities(self, entities: jax.Array, visible: Optional[jax.Array], *,
                         deterministic: bool) -> tuple[jax.Array, Optional[jax.Array]]:
        batch, frames, slots, _ = entities.shape
        objects = object_tokens(entities, self.latent_dim, visible,
                                self.mask_embedding if self.auxiliary else None)
        cls = jnp.broadcast_to(self.cls_token, (batch, 1, self.latent_dim + 2))
        return self._reason(jnp.concatenate([cls, objects], axis=1), None,
                            TokenLayout(0, frames, slots), deterministic=deterministic)

    def encode(self, latents: jax.Array, visible: Optional[jax.Array] = None, *,
               deterministic: bool) -> tuple[jax.Array, Optional[jax.Array]]:
        """Reasoner outputs of `[CLS, objects]`.

        Args:
          latents: `[B, T, K, d]` (frames `[B, T, H, W, 3]` for "resnet").
          visible: optional bool `[B, T, K]`; hidden objects show the mask embedding.
          deterministic: True disables dropout.

        Returns:
          `(cls [B, width], objects [B, T, K, width])`; objects is None for "mlp".
        """
        return self._encode_entities(self._entities(latents), visible,
                                     deterministic=deterministic)

    def _grid_head(self, cls: jax.Array) -> jax.Array:
        return self.grid_output(nn.relu(self.grid_hidden(cls)))

    def __call__(self, latents: jax.Array, *, deterministic: bool,
                 visible: Optional[jax.Array] = None) -> jax.Array:
        """Grid-cell logits `[B, num_classes]` from latents `[B, T, K, d]` (or frames)."""
        cls, objects = self.encode(latents, visible, deterministic=deterministic)
        if self.auxiliary and self.is_initializing():
            self.latent_prediction(objects)
        return self._grid_head(cls)

    def logits_and_latents(self, latents: jax.Array, visible: jax.Array, *,
                           deterministic: bool, return_targets: bool = False) -> tuple:
        """Grid logits `[B, num_classes]` and predicted latents `[B, T, K, d]`.

        Args:
          latents: `[B, T, K, d]` (frames `[B, T, H, W, 3]` for "resnet").
          visible: bool `[B, T, K]`; False tokens show the mask embedding.
          deterministic: True disables dropout.
          return_targets: also return the auxiliary targets, the entities
            `[B, T, K, d]` under stop_gradient (the ResNet's for "resnet").
        """
        entities = self._entities(latents)
        cls, objects = self._encode_entities(entities, visible, deterministic=deterministic)
        results = (self._grid_head(cls), self._latent_head(objects))
        if return_targets:
            results += (jax.lax.stop_gradient(entities),)
        return results
