"""ALOE: an entity encoder, object and word tokens, a reasoner, heads.

As in the paper's figure, a model is composed of parts:

- an entity encoder (`aloe.models.entities`): the identity on cached object
  latents, or the ResNet hyperpixel encoder on frames; it turns the inputs into
  entities `[B, T, K, d]`;
- tokens (`aloe.models.tokens`): an object token per entity (the entity and the
  flag `[0, 1]`), word tokens (a learned `d - 2` word embedding, a
  question/choice flag and the word flag `[1, 0]`) and a learned `d + 2` CLS
  vector (initialised to zero), in the sequence `[CLS, question words, choice
  words, objects]`, objects frame-major;
- a reasoner (`aloe.models.reasoners`): tokens, mask and layout -> a CLS-role
  vector and object outputs;
- heads (`aloe.models.heads`): the descriptive and the per-choice answer heads
  (`ALOE`), or the grid head (`ALOECater`, CATER snitch localization, which
  reads `[CLS, objects]`), and the latent prediction f of the auxiliary loss.

The model shares its scope with its parts, so parameter names are those of the
release (`word_embedding`, `cls_token`, `mask_embedding`, `token_projection`,
`transformer`, `descriptive_hidden`, ...); `aloe.models.factory` builds a model
from a config. Word id 0 is padding; with `word_padding_mask` padding words are
masked (never attended to as keys, and no other token's output depends on
them); without it (as in the release) they are ordinary tokens.

Release quirk (`descriptive_flag_quirk`, on by default): the words of a
descriptive question carry the choice flag `[0, 1]`, not the question flag.
Descriptive questions have no choices; they are followed by
`descriptive_choice_len` padding choice tokens (12 in the release), so every
CLEVRER sequence has the same length and the same relative positions.
Training on both kinds of question should use `descriptive_and_multiple_choice`,
which runs all sequences of a step through the reasoner in one pass.

Self-supervised auxiliary loss (`auxiliary=True`, paper Section 2.1): hidden
object tokens show a learned mask embedding (`[d]`, the object flag kept; or,
with `full_token_mask`, the release's `[d + 2]` vector in place of the whole
token, which exists without the auxiliary loss too), and a learned linear map
`latent_prediction` (f) reads predicted latents `[B, T, K, d]` from the object
outputs. The schemes that choose `visible` are in `aloe.masking`, the losses in
`aloe.losses`.
"""

from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from aloe.models import composed
from aloe.models import heads
from aloe.models import tokens as tokens_lib
from aloe.models.tokens import CHOICE_FLAG
from aloe.models.tokens import QUESTION_FLAG
from aloe.models.tokens import TokenLayout


class ALOE(composed.ComposedModel, kw_only=True):
    """Attention over learned object embeddings, with descriptive and MC heads.

    Every argument is a keyword. Public methods take the entity encoder's inputs:
    latents `[B, T, K, d]`, or frames `[B, T, H, W, 3]` for the ResNet encoder.

    Attributes:
      vocab_size: word ids including the padding id 0 (release: 82).
      num_answers: descriptive answer classes (release: 21).
      answer_logit_offset: unused logits in front of the answer head's outputs
        (the release's head has 22 outputs for its answer ids 1..21: offset 1);
        see `heads.Head`.
      head_hidden_dim: hidden size of the answer heads.
      word_padding_mask: mask padding words (id 0); False reproduces the release.
      descriptive_flag_quirk: descriptive question words carry the choice flag, as
        in the release; False gives them the question flag.
      descriptive_choice_len: padding choice tokens after a descriptive question.
      Others: see `composed.ComposedModel` (reasoner, entity_encoder, latent_dim,
        auxiliary, full_token_mask, initialization).
    """
    vocab_size: int
    num_answers: int
    answer_logit_offset: int = 0
    head_hidden_dim: int = 128
    word_padding_mask: bool = True
    descriptive_flag_quirk: bool = True
    descriptive_choice_len: int = 12

    def setup(self):
        """Declares the parts, the word embedding and the heads."""
        if self.latent_dim < 3:
            raise ValueError(f"latent_dim must be at least 3 (word embeddings are d-2 wide), "
                             f"got {self.latent_dim}.")
        init = tokens_lib.model_init(self.initialization)
        self.word_embedding = nn.Embed(self.vocab_size, self.latent_dim - 2,
                                       embedding_init=init.embedding, name="word_embedding")
        self._setup_parts()
        self.descriptive_head = heads.Head(
            "descriptive", self.head_hidden_dim, self.num_answers,
            leading_logits=self.answer_logit_offset, initialization=self.initialization)
        self.choice_head = heads.Head("choice", self.head_hidden_dim, 1,
                                      initialization=self.initialization)
        nn.share_scope(self, self.descriptive_head)
        nn.share_scope(self, self.choice_head)

    def _word_tokens(self, words: jax.Array, flag: Sequence[float]) -> jax.Array:
        """words [B, L] int32 -> word tokens [B, L, d+2]."""
        shape = words.shape
        return jnp.concatenate([self.word_embedding(words), tokens_lib.constant_flags(flag, shape),
                                tokens_lib.constant_flags(tokens_lib.WORD_FLAG, shape)], axis=-1)

    def _sequence(self, entities: jax.Array, question: Optional[jax.Array],
                  choice: Optional[jax.Array], question_flag: Sequence[float],
                  visible: Optional[jax.Array] = None) -> composed.TokenSequence:
        """Raw tokens `[B, N, d+2]`, their mask `[B, N]` (None without padding mask), layout."""
        objects = tokens_lib.object_tokens(entities, self.latent_dim, visible,
                                           self._mask_vector())
        batch, frames, slots, _ = entities.shape
        pieces, masks = [self._cls(batch)], [jnp.ones((batch, 1), bool)]
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

    def _descriptive_sequence(self, entities, question, visible=None) -> composed.TokenSequence:
        flag = CHOICE_FLAG if self.descriptive_flag_quirk else QUESTION_FLAG
        choice = None
        if self.descriptive_choice_len:
            choice = jnp.zeros((question.shape[0], self.descriptive_choice_len), jnp.int32)
        return self._sequence(entities, question, choice, flag, visible)

    def _choice_sequences(self, entities, question, choices) -> composed.TokenSequence:
        if choices.ndim != 3 or choices.shape[0] != entities.shape[0]:
            raise ValueError(f"choices must be [batch={entities.shape[0]}, choices, length], "
                             f"got shape {choices.shape}.")
        batch, num_choices, choice_len = choices.shape
        repeat = lambda a: jnp.repeat(a, num_choices, axis=0)
        return self._sequence(repeat(entities), repeat(question),
                              choices.reshape(batch * num_choices, choice_len), QUESTION_FLAG)

    def _reason(self, sequence: composed.TokenSequence, *, deterministic: bool):
        return self.reasoner(*sequence, deterministic=deterministic)

    def encode(self, inputs: jax.Array, question: Optional[jax.Array] = None,
               choice: Optional[jax.Array] = None, *, question_flag: Sequence[float],
               deterministic: bool,
               visible: Optional[jax.Array] = None) -> tuple[jax.Array, Optional[jax.Array]]:
        """Runs the reasoner on `[CLS, question, choice, objects]`.

        Args:
          inputs: `[B, T, K, d]` object latents (frames `[B, T, H, W, 3]` for the
            ResNet encoder), frames in order.
          question: `[B, Lq]` int32 word ids (0 = padding), or None for no words.
          choice: `[B, Lc]` int32 word ids of one choice (0 = padding), or None.
          question_flag: the 2-d question/choice flag the question words carry
            (`QUESTION_FLAG` or `CHOICE_FLAG`).
          deterministic: True disables dropout; otherwise the 'dropout' rng is used.
          visible: optional bool `[B, T, K]`; hidden objects show the mask embedding.

        Returns:
          `(cls [B, width], objects [B, T, K, width])`; objects is None for a
          reasoner without object outputs.
        """
        sequence = self._sequence(self._encoder()(inputs), question, choice, question_flag,
                                  visible)
        return self._reason(sequence, deterministic=deterministic)

    def predict_latents(self, inputs: jax.Array, question: jax.Array, visible: jax.Array, *,
                        deterministic: bool) -> jax.Array:
        """Latents predicted at every object token of a masked descriptive-style sequence.

        Args:
          inputs: `[B, T, K, d]` latents (or frames).
          question: `[B, Lq]` int32 word ids (the video's question; its answer is unused).
          visible: bool `[B, T, K]`; False tokens show the mask embedding.
          deterministic: True disables dropout.

        Returns:
          `[B, T, K, d]` = f(object outputs).
        """
        sequence = self._descriptive_sequence(self._encoder()(inputs), question, visible)
        return self._latent_head(self._reason(sequence, deterministic=deterministic)[1])

    def descriptive(self, inputs: jax.Array, question: jax.Array, *,
                    deterministic: bool) -> jax.Array:
        """Answer logits `[B, num_answers]` of descriptive questions `[B, Lq]` int32."""
        sequence = self._descriptive_sequence(self._encoder()(inputs), question)
        return self.descriptive_head(self._reason(sequence, deterministic=deterministic)[0])

    def multiple_choice(self, inputs: jax.Array, question: jax.Array, choices: jax.Array, *,
                        deterministic: bool) -> jax.Array:
        """One logit per choice (>= 0 means "correct"), `[B, C]`.

        The reasoner runs once per choice on `[CLS, question, that choice,
        objects]`, so a choice's logit depends on no other choice.

        Args:
          inputs: `[B, T, K, d]` latents (or frames).
          question: `[B, Lq]` int32 word ids.
          choices: `[B, C, Lc]` int32 word ids.
          deterministic: True disables dropout.
        """
        sequence = self._choice_sequences(self._encoder()(inputs), question, choices)
        cls = self._reason(sequence, deterministic=deterministic)[0]
        return self.choice_head(cls).reshape(choices.shape[0], -1)

    def descriptive_and_multiple_choice(
            self, desc_inputs: jax.Array, desc_question: jax.Array, mc_inputs: jax.Array,
            mc_question: jax.Array, mc_choices: jax.Array, *, deterministic: bool,
            aux: Optional[tuple[jax.Array, jax.Array, jax.Array]] = None,
            return_targets: bool = False) -> tuple:
        """`descriptive`, `multiple_choice` (and `predict_latents`) in one reasoner pass.

        Every sequence is computed independently, so the outputs are those of the
        separate methods (dropout aside: one 'dropout' key serves all). When all
        sequences have the same layout (`descriptive_choice_len` equals the
        choice length) they share one pass: larger matmuls and a smaller
        program to compile. Otherwise each kind runs alone. The inputs of all
        sub-batches go through the entity encoder together when their shapes
        agree; the multiple-choice entities are repeated per choice after it.

        Args:
          desc_inputs: `[Bd, T, K, d]` latents (or frames `[Bd, T, H, W, 3]`).
          desc_question: `[Bd, Lq]` int32.
          mc_inputs: `[Bm, T, K, d]` (or frames).
          mc_question: `[Bm, Lq]` int32.
          mc_choices: `[Bm, C, Lc]` int32.
          deterministic: True disables dropout.
          aux: optional `(inputs [Ba, T, K, d] or frames, question [Ba, Lq],
            visible [Ba, T, K])` of the auxiliary sub-batch.
          return_targets: with `aux`, also return the auxiliary targets: its
            entities `[Ba, T, K, d]` under stop_gradient (the latents themselves,
            or the ResNet's entities).

        Returns:
          `(descriptive logits [Bd, num_answers], choice logits [Bm, C])`, plus the
          predicted latents `[Ba, T, K, d]` of the auxiliary sub-batch when `aux` is
          given, plus its targets when `return_targets`.
        """
        inputs = [desc_inputs, mc_inputs] + ([aux[0]] if aux is not None else [])
        entities = self._entities_of(inputs)
        sequences = [self._descriptive_sequence(entities[0], desc_question),
                     self._choice_sequences(entities[1], mc_question, mc_choices)]
        if aux is not None:
            sequences.append(self._descriptive_sequence(entities[2], aux[1], aux[2]))
        outs = self._reason_all(sequences, deterministic=deterministic)
        results = (self.descriptive_head(outs[0][0]),
                   self.choice_head(outs[1][0]).reshape(mc_choices.shape[0], -1))
        if aux is not None:
            results += (self._latent_head(outs[2][1]),)
            if return_targets:
                results += (jax.lax.stop_gradient(entities[2]),)
        return results

    def __call__(self, inputs: jax.Array, question: jax.Array, choices: jax.Array, *,
                 deterministic: bool) -> tuple[jax.Array, jax.Array]:
        """Both heads on the same inputs (touches every parameter; used for init).

        Args:
          inputs: `[B, T, K, d]` latents (or frames).
          question: `[B, Lq]` int32.
          choices: `[B, C, Lc]` int32.
          deterministic: True disables dropout.

        Returns:
          `(descriptive logits [B, num_answers], choice logits [B, C])`.
        """
        aux = None
        if self.auxiliary:
            aux = (inputs, question, jnp.ones(self._object_grid(inputs), bool))
        return self.descriptive_and_multiple_choice(inputs, question, inputs, question,
                                                    choices, deterministic=deterministic,
                                                    aux=aux)[:2]


class ALOECater(composed.ComposedModel, kw_only=True):
    """ALOE for CATER snitch localization: `[CLS, objects]`, no words, a grid head.

    Tokens, parts and options are those of `ALOE`; the CLS-role output goes
    through `Dense(head_hidden_dim)-ReLU-Dense(num_classes)`. Every argument is a
    keyword.

    Attributes:
      num_classes: grid cells (6 x 6 = 36).
      head_hidden_dim: hidden size of the grid head (144 in the paper).
      Others: see `composed.ComposedModel`.
    """
    num_classes: int = 36
    head_hidden_dim: int = 144

    def setup(self):
        """Declares the parts and the grid head."""
        self._setup_parts()
        self.grid_head = heads.Head("grid", self.head_hidden_dim, self.num_classes,
                                    initialization=self.initialization)
        nn.share_scope(self, self.grid_head)

    def _encode_entities(self, entities: jax.Array, visible: Optional[jax.Array], *,
                         deterministic: bool) -> tuple[jax.Array, Optional[jax.Array]]:
        batch, frames, slots, _ = entities.shape
        objects = tokens_lib.object_tokens(entities, self.latent_dim, visible,
                                           self._mask_vector())
        return self.reasoner(jnp.concatenate([self._cls(batch), objects], axis=1), None,
                             TokenLayout(0, frames, slots), deterministic=deterministic)

    def encode(self, inputs: jax.Array, visible: Optional[jax.Array] = None, *,
               deterministic: bool) -> tuple[jax.Array, Optional[jax.Array]]:
        """Reasoner outputs of `[CLS, objects]`.

        Args:
          inputs: `[B, T, K, d]` latents (frames `[B, T, H, W, 3]` for the ResNet encoder).
          visible: optional bool `[B, T, K]`; hidden objects show the mask embedding.
          deterministic: True disables dropout.

        Returns:
          `(cls [B, width], objects [B, T, K, width])`; objects is None for a
          reasoner without object outputs.
        """
        return self._encode_entities(self._encoder()(inputs), visible,
                                     deterministic=deterministic)

    def __call__(self, inputs: jax.Array, *, deterministic: bool,
                 visible: Optional[jax.Array] = None) -> jax.Array:
        """Grid-cell logits `[B, num_classes]` from latents `[B, T, K, d]` (or frames)."""
        cls, objects = self.encode(inputs, visible, deterministic=deterministic)
        if self.auxiliary and self.is_initializing():
            self.latent_prediction(objects)
        return self.grid_head(cls)

    def logits_and_latents(self, inputs: jax.Array, visible: jax.Array, *,
                           deterministic: bool, return_targets: bool = False) -> tuple:
        """Grid logits `[B, num_classes]` and predicted latents `[B, T, K, d]`.

        Args:
          inputs: `[B, T, K, d]` latents (or frames `[B, T, H, W, 3]`).
          visible: bool `[B, T, K]`; False tokens show the mask embedding.
          deterministic: True disables dropout.
          return_targets: also return the auxiliary targets, the entities
            `[B, T, K, d]` under stop_gradient (the ResNet's for frames).
        """
        entities = self._encoder()(inputs)
        cls, objects = self._encode_entities(entities, visible, deterministic=deterministic)
        results = (self.grid_head(cls), self._latent_head(objects))
        if return_targets:
            results += (jax.lax.stop_gradient(entities),)
        return results
