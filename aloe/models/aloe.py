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
(as in the release) they are ordinary tokens. `ALOECater` (CATER snitch
localization) reads `[CLS, objects]` with a grid head.

The reasoner (`variant`, the rows of the paper's Table 1), the object tokens
and the auxiliary parameters come from `VariantReasoning`
(`aloe.models.reasoners`, whose docstring describes the variants).

Release quirk (`descriptive_flag_quirk`, on by default): the words of a
descriptive question carry the choice flag `[0, 1]`, not the question flag.
Descriptive questions have no choices; they are followed by
`descriptive_choice_len` padding choice tokens (12 in the release), so every
CLEVRER sequence has the same length and the same relative positions.

Training on both kinds of question should use `descriptive_and_multiple_choice`,
which runs all sequences of a step through the reasoner in one pass.

Self-supervised auxiliary loss (`auxiliary=True`, paper Section 2.1): hidden
object tokens show a learned mask embedding and `predict_latents` (CLEVRER) or
`ALOECater.logits_and_latents` read the predicted latents `[B, T, K, d]`. The
schemes that choose `visible` are in `aloe.masking`, the losses in `aloe.losses`.
"""

from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# VARIANTS, TokenLayout, VariantReasoning and object_tokens live in
# `aloe.models.reasoners`; they stay importable from here.
from aloe.models.reasoners import TokenLayout
from aloe.models.reasoners import VARIANTS  # pylint: disable=unused-import
from aloe.models.reasoners import VariantReasoning
from aloe.models.reasoners import constant_flags
from aloe.models.reasoners import model_init
from aloe.models.reasoners import object_tokens

QUESTION_FLAG = (1.0, 0.0)
CHOICE_FLAG = (0.0, 1.0)
_WORD_FLAG = (1.0, 0.0)


class ALOE(VariantReasoning, kw_only=True):
    """Attention over learned object embeddings, with descriptive and MC heads.

    Every argument is a keyword; the reasoner options are those of
    `VariantReasoning`. Public methods take `latents` `[B, T, K, d]`, or frames
    `[B, T, H, W, 3]` for variant "resnet".

    Attributes:
      vocab_size: word ids including the padding id 0 (release: 82).
      num_answers: descriptive answer classes (release: 21).
      answer_logit_offset: unused logits in front of the answer head's outputs;
        the release's head has 22 outputs for its answer ids 1..21 (offset 1).
        The head has `answer_logit_offset + num_answers` outputs, and the
        descriptive logits returned are the last `num_answers` (class c = logit
        c + offset), so the unused logit takes no part in softmax or loss.
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
    answer_logit_offset: int = 0
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
        if self.answer_logit_offset < 0:
            raise ValueError(f"answer_logit_offset must be >= 0, got {self.answer_logit_offset}.")
        init = model_init(self.initialization)
        self.word_embedding = nn.Embed(self.vocab_size, self.latent_dim - 2,
                                       embedding_init=init.embedding, name="word_embedding")
        self.cls_token = self.param("cls_token", nn.initializers.zeros, (self.latent_dim + 2,),
                                    jnp.float32)
        self._setup_reasoner()
        dense = lambda size, name: nn.Dense(size, kernel_init=init.head, name=name)
        self.descriptive_hidden = dense(self.head_hidden_dim, "descriptive_hidden")
        self.descriptive_output = dense(self.answer_logit_offset + self.num_answers,
                                        "descriptive_output")
        self.choice_hidden = dense(self.head_hidden_dim, "choice_hidden")
        self.choice_output = dense(1, "choice_output")

    def _word_tokens(self, words: jax.Array, flag: Sequence[float]) -> jax.Array:
        """words [B, L] int32 -> word tokens [B, L, d+2]."""
        shape = words.shape
        return jnp.concatenate([self.word_embedding(words), constant_flags(flag, shape),
                                constant_flags(_WORD_FLAG, shape)], axis=-1)

    def _sequence(self, entities: jax.Array, question: Optional[jax.Array],
                  choice: Optional[jax.Array], question_flag: Sequence[float],
                  visible: Optional[jax.Array] = None
                  ) -> tuple[jax.Array, Optional[jax.Array], TokenLayout]:
        """Raw tokens `[B, N, d+2]`, their mask `[B, N]` (None without padding mask), layout."""
        objects = object_tokens(entities, self.latent_dim, visible, self._mask_vector())
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
        logits = self.descriptive_output(nn.relu(self.descriptive_hidden(cls)))
        return logits[..., self.answer_logit_offset:]

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
        init = model_init(self.initialization)
        self.grid_hidden = nn.Dense(self.head_hidden_dim, kernel_init=init.head,
                                    name="grid_hidden")
        self.grid_output = nn.Dense(self.num_classes, kernel_init=init.head, name="grid_output")

    def _encode_entities(self, entities: jax.Array, visible: Optional[jax.Array], *,
                         deterministic: bool) -> tuple[jax.Array, Optional[jax.Array]]:
        batch, frames, slots, _ = entities.shape
        objects = object_tokens(entities, self.latent_dim, visible, self._mask_vector())
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
