"""ALOE: tokens from object latents and question words, a relative transformer, heads.

The layout follows the released CLEVRER model. Tokens are `d + 2` wide:

- object token: the MONet mean `mu` (d) followed by the flag `[0, 1]`;
- word token: a learned `d - 2` word embedding, a question/choice flag (`[1, 0]`
  for question words, `[0, 1]` for choice words) and the word flag `[1, 0]`;
- CLS: a learned `d + 2` vector, initialised to zero.

One shared `Dense(num_heads * (d + 2))` + ReLU lifts every token to the model
width. A sequence is `[CLS, question words, choice words, objects]`, the objects
frame-major (`t * slots + k`). Word id 0 is padding; with `word_padding_mask`
padding words are masked in the transformer (never attended to as keys, and no
other token's output depends on them); without it (as in the release) they are
ordinary tokens.

Release quirk (`descriptive_flag_quirk`, on by default): the words of a
descriptive question carry the choice flag `[0, 1]`, not the question flag.
Descriptive questions have no choices; they are followed by
`descriptive_choice_len` padding choice tokens (12 in the release), so every
CLEVRER sequence has the same length and the same relative positions.

Training on both kinds of question should use `descriptive_and_multiple_choice`,
which runs all sequences of a step through the transformer in one pass.

Self-supervised auxiliary loss (`auxiliary=True`, paper Section 2.1): object
tokens that are not visible (`visible[b, t, k]` False) have their latent
replaced by a learned `mask_embedding` (the object flag is kept), and a learned
linear map `latent_prediction` (f) reads predicted latents `[B, T, K, d]` from
the transformer's object outputs. The schemes that choose `visible` are in
`aloe.masking`, the losses in `aloe.losses`.
"""

import itertools
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from aloe.models import transformer

QUESTION_FLAG = (1.0, 0.0)
CHOICE_FLAG = (0.0, 1.0)
_WORD_FLAG = (1.0, 0.0)
_OBJECT_FLAG = (0.0, 1.0)


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


class ALOE(nn.Module):
    """Attention over learned object embeddings, with descriptive and MC heads.

    Attributes:
      vocab_size: word ids including the padding id 0 (release: 82).
      num_answers: descriptive answer classes (release: 21).
      latent_dim: d, the object latent size; tokens are d + 2 wide.
      num_heads: attention heads; the model width is num_heads * (d + 2).
      num_layers: transformer blocks.
      mlp_dim: feed-forward hidden size.
      head_hidden_dim: hidden size of the answer heads.
      dropout_rate: transformer dropout.
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
        token_dim = self.latent_dim + 2
        self.word_embedding = nn.Embed(self.vocab_size, self.latent_dim - 2,
                                       name="word_embedding")
        self.cls_token = self.param("cls_token", nn.initializers.zeros, (token_dim,),
                                    jnp.float32)
        self.token_projection = nn.Dense(self.num_heads * token_dim, name="token_projection")
        self.transformer = transformer.RelativeTransformer(
            num_layers=self.num_layers, num_heads=self.num_heads, head_dim=token_dim,
            mlp_dim=self.mlp_dim, dropout_rate=self.dropout_rate, name="transformer")
        self.descriptive_hidden = nn.Dense(self.head_hidden_dim, name="descriptive_hidden")
        self.descriptive_output = nn.Dense(self.num_answers, name="descriptive_output")
        self.choice_hidden = nn.Dense(self.head_hidden_dim, name="choice_hidden")
        self.choice_output = nn.Dense(1, name="choice_output")
        if self.auxiliary:
            self.mask_embedding = self.param("mask_embedding", nn.initializers.normal(0.02),
                                             (self.latent_dim,), jnp.float32)
            self.latent_prediction = nn.Dense(self.latent_dim, name="latent_prediction")

    def _word_tokens(self, words: jax.Array, flag: Sequence[float]) -> jax.Array:
        """words [B, L] int32 -> word tokens [B, L, d+2]."""
        shape = words.shape
        return jnp.concatenate([self.word_embedding(words), _flags(flag, shape),
                                _flags(_WORD_FLAG, shape)], axis=-1)

    def _sequence(self, latents: jax.Array, question: Optional[jax.Array],
                  choice: Optional[jax.Array], question_flag: Sequence[float],
                  visible: Optional[jax.Array] = None) -> tuple[jax.Array, jax.Array]:
        """Projected tokens `[B, N, width]` and their mask `[B, N]` (True = real)."""
        objects = object_tokens(latents, self.latent_dim, visible,
                                self.mask_embedding if self.auxiliary else None)
        batch, frames, slots, _ = latents.shape
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
        pieces.append(objects)
        masks.append(jnp.ones((batch, frames * slots), bool))
        tokens = nn.relu(self.token_projection(jnp.concatenate(pieces, axis=1)))
        return tokens, jnp.concatenate(masks, axis=1)

    def _transform(self, tokens: jax.Array, mask: jax.Array, *,
                   deterministic: bool) -> jax.Array:
        """The transformer on `[B, N, width]` tokens, with the word padding mask if on."""
        return self.transformer(tokens, mask if self.word_padding_mask else None,
                                deterministic=deterministic)

    def encode(self, latents: jax.Array, question: Optional[jax.Array] = None,
               choice: Optional[jax.Array] = None, *, question_flag: Sequence[float],
               deterministic: bool,
               visible: Optional[jax.Array] = None) -> tuple[jax.Array, jax.Array]:
        """Runs the transformer on `[CLS, question, choice, objects]`.

        Args:
          latents: `[B, T, K, d]` object latents (MONet means), frames in order.
          question: `[B, Lq]` int32 word ids (0 = padding), or None for no words.
          choice: `[B, Lc]` int32 word ids of one choice (0 = padding), or None.
          question_flag: the 2-d question/choice flag the question words carry
            (`QUESTION_FLAG` or `CHOICE_FLAG`).
          deterministic: True disables dropout; otherwise the 'dropout' rng is used.
          visible: optional bool `[B, T, K]`; hidden objects show the mask embedding.

        Returns:
          `(cls [B, width], objects [B, T, K, width])`, width = num_heads * (d + 2).
        """
        batch, frames, slots = latents.shape[:3]
        tokens, mask = self._sequence(latents, question, choice, question_flag, visible)
        out = self._transform(tokens, mask, deterministic=deterministic)
        objects = out[:, out.shape[1] - frames * slots:]
        return out[:, 0], objects.reshape(batch, frames, slots, out.shape[-1])

    def _descriptive_sequence(self, latents, question, visible=None):
        flag = CHOICE_FLAG if self.descriptive_flag_quirk else QUESTION_FLAG
        choice = None
        if self.descriptive_choice_len:
            choice = jnp.zeros((question.shape[0], self.descriptive_choice_len), jnp.int32)
        return self._sequence(latents, question, choice, flag, visible)

    def _latent_head(self, out: jax.Array, frames: int, slots: int) -> jax.Array:
        """f: transformer outputs `[B, N, width]` -> predicted latents `[B, T, K, d]`."""
        objects = out[:, out.shape[1] - frames * slots:]
        return self.latent_prediction(objects).reshape(out.shape[0], frames, slots, -1)

    def predict_latents(self, latents: jax.Array, question: jax.Array, visible: jax.Array, *,
                        deterministic: bool) -> jax.Array:
        """Latents predicted at every object token of a masked descriptive-style sequence.

        Args:
          latents: `[B, T, K, d]`.
          question: `[B, Lq]` int32 word ids (the video's question; its answer is unused).
          visible: bool `[B, T, K]`; False tokens show the mask embedding.
          deterministic: True disables dropout.

        Returns:
          `[B, T, K, d]` = f(transformer object outputs).
        """
        tokens, mask = self._descriptive_sequence(latents, question, visible)
        out = self._transform(tokens, mask, deterministic=deterministic)
        return self._latent_head(out, *latents.shape[1:3])

    def _choice_sequences(self, latents, question, choices):
        if choices.ndim != 3 or choices.shape[0] != latents.shape[0]:
            raise ValueError(f"choices must be [batch={latents.shape[0]}, choices, length], "
                             f"got shape {choices.shape}.")
        batch, num_choices, choice_len = choices.shape
        repeat = lambda a: jnp.repeat(a, num_choices, axis=0)
        return self._sequence(repeat(latents), repeat(question),
                              choices.reshape(batch * num_choices, choice_len), QUESTION_FLAG)

    def _descriptive_head(self, cls: jax.Array) -> jax.Array:
        return self.descriptive_output(nn.relu(self.descriptive_hidden(cls)))

    def _choice_head(self, cls: jax.Array, batch: int) -> jax.Array:
        return self.choice_output(nn.relu(self.choice_hidden(cls))).reshape(batch, -1)

    def descriptive(self, latents: jax.Array, question: jax.Array, *,
                    deterministic: bool) -> jax.Array:
        """Answer logits of descriptive questions.

        Args:
          latents: `[B, T, K, d]`.
          question: `[B, Lq]` int32 word ids.
          deterministic: True disables dropout.

        Returns:
          `[B, num_answers]` logits.
        """
        tokens, mask = self._descriptive_sequence(latents, question)
        out = self._transform(tokens, mask, deterministic=deterministic)
        return self._descriptive_head(out[:, 0])

    def multiple_choice(self, latents: jax.Array, question: jax.Array, choices: jax.Array, *,
                        deterministic: bool) -> jax.Array:
        """One logit per choice (>= 0 means "correct").

        The transformer runs once per choice on `[CLS, question, that choice,
        objects]`, so a choice's logit depends on no other choice.

        Args:
          latents: `[B, T, K, d]`.
          question: `[B, Lq]` int32 word ids.
          choices: `[B, C, Lc]` int32 word ids.
          deterministic: True disables dropout.

        Returns:
          `[B, C]` logits.
        """
        tokens, mask = self._choice_sequences(latents, question, choices)
        out = self._transform(tokens, mask, deterministic=deterministic)
        return self._choice_head(out[:, 0], choices.shape[0])

    def descriptive_and_multiple_choice(
            self, desc_latents: jax.Array, desc_question: jax.Array, mc_latents: jax.Array,
            mc_question: jax.Array, mc_choices: jax.Array, *, deterministic: bool,
            aux: Optional[tuple[jax.Array, jax.Array, jax.Array]] = None) -> tuple:
        """`descriptive`, `multiple_choice` (and `predict_latents`) in one transformer pass.

        Every sequence is computed independently, so the outputs are those of the
        separate methods (dropout aside: one 'dropout' key serves all). When the
        kinds of sequence have the same length (`descriptive_choice_len` equals
        the choice length) they share one pass over the transformer: larger
        matmuls and a smaller program to compile. Otherwise each kind runs alone.

        Args:
          desc_latents: `[Bd, T, K, d]`.
          desc_question: `[Bd, Lq]` int32.
          mc_latents: `[Bm, T, K, d]`.
          mc_question: `[Bm, Lq]` int32.
          mc_choices: `[Bm, C, Lc]` int32.
          deterministic: True disables dropout.
          aux: optional `(latents [Ba, T, K, d], question [Ba, Lq], visible [Ba, T, K])`
            of the auxiliary sub-batch.

        Returns:
          `(descriptive logits [Bd, num_answers], choice logits [Bm, C])`, plus the
          predicted latents `[Ba, T, K, d]` of the auxiliary sub-batch when `aux` is given.
        """
        sequences = [self._descriptive_sequence(desc_latents, desc_question),
                     self._choice_sequences(mc_latents, mc_question, mc_choices)]
        if aux is not None:
            sequences.append(self._descriptive_sequence(*aux))
        sizes = [tokens.shape[0] for tokens, _ in sequences]
        if len({tokens.shape[1] for tokens, _ in sequences}) == 1:
            out = self._transform(jnp.concatenate([t for t, _ in sequences], axis=0),
                                  jnp.concatenate([m for _, m in sequences], axis=0),
                                  deterministic=deterministic)
            outs = jnp.split(out, list(itertools.accumulate(sizes[:-1])), axis=0)
        else:
            outs = [self._transform(t, m, deterministic=deterministic) for t, m in sequences]
        results = (self._descriptive_head(outs[0][:, 0]),
                   self._choice_head(outs[1][:, 0], mc_choices.shape[0]))
        if aux is not None:
            results += (self._latent_head(outs[2], *aux[0].shape[1:3]),)
        return results

    def __call__(self, latents: jax.Array, question: jax.Array, choices: jax.Array, *,
                 deterministic: bool) -> tuple[jax.Array, jax.Array]:
        """Both heads on the same inputs (touches every parameter; used for init).

        Args:
          latents: `[B, T, K, d]`.
          question: `[B, Lq]` int32.
          choices: `[B, C, Lc]` int32.
          deterministic: True disables dropout.

        Returns:
          `(descriptive logits [B, num_answers], choice logits [B, C])`.
        """
        aux = None
        if self.auxiliary:
            aux = (latents, question, jnp.ones(latents.shape[:3], bool))
        return self.descriptive_and_multiple_choice(latents, question, latents, question,
                                                    choices, deterministic=deterministic,
                                                    aux=aux)[:2]


class ALOECater(nn.Module):
    """ALOE for CATER snitch localization: `[CLS, objects]`, no words, a grid head.

    Tokens are as in `ALOE` (object latent + object flag; CLS a zero-initialised
    learned `d + 2` vector), lifted by a shared `Dense(num_heads * (d + 2))` + ReLU.
    The CLS output goes through `Dense(head_hidden_dim)-ReLU-Dense(num_classes)`.

    Attributes:
      num_classes: grid cells (6 x 6 = 36).
      latent_dim: d (36 for the paper's CATER MONet).
      num_heads: attention heads; the model width is num_heads * (d + 2).
      num_layers: transformer blocks.
      mlp_dim: feed-forward hidden size.
      head_hidden_dim: hidden size of the grid head (144 in the paper).
      dropout_rate: transformer dropout.
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
        token_dim = self.latent_dim + 2
        self.cls_token = self.param("cls_token", nn.initializers.zeros, (token_dim,),
                                    jnp.float32)
        self.token_projection = nn.Dense(self.num_heads * token_dim, name="token_projection")
        self.transformer = transformer.RelativeTransformer(
            num_layers=self.num_layers, num_heads=self.num_heads, head_dim=token_dim,
            mlp_dim=self.mlp_dim, dropout_rate=self.dropout_rate, name="transformer")
        self.grid_hidden = nn.Dense(self.head_hidden_dim, name="grid_hidden")
        self.grid_output = nn.Dense(self.num_classes, name="grid_output")
        if self.auxiliary:
            self.mask_embedding = self.param("mask_embedding", nn.initializers.normal(0.02),
                                             (self.latent_dim,), jnp.float32)
            self.latent_prediction = nn.Dense(self.latent_dim, name="latent_prediction")

    def encode(self, latents: jax.Array, visible: Optional[jax.Array] = None, *,
               deterministic: bool) -> tuple[jax.Array, jax.Array]:
        """Transformer outputs of `[CLS, objects]`.

        Args:
          latents: `[B, T, K, d]`.
          visible: optional bool `[B, T, K]`; hidden objects show the mask embedding.
          deterministic: True disables dropout.

        Returns:
          `(cls [B, width], objects [B, T, K, width])`.
        """
        batch, frames, slots, _ = latents.shape
        objects = object_tokens(latents, self.latent_dim, visible,
                                self.mask_embedding if self.auxiliary else None)
        cls = jnp.broadcast_to(self.cls_token, (batch, 1, self.latent_dim + 2))
        tokens = nn.relu(self.token_projection(jnp.concatenate([cls, objects], axis=1)))
        out = self.transformer(tokens, None, deterministic=deterministic)
        return out[:, 0], out[:, 1:].reshape(batch, frames, slots, out.shape[-1])

    def __call__(self, latents: jax.Array, *, deterministic: bool,
                 visible: Optional[jax.Array] = None) -> jax.Array:
        """Grid-cell logits `[B, num_classes]` from latents `[B, T, K, d]`."""
        cls, objects = self.encode(latents, visible, deterministic=deterministic)
        if self.auxiliary and self.is_initializing():
            self.latent_prediction(objects)
        return self.grid_output(nn.relu(self.grid_hidden(cls)))

    def logits_and_latents(self, latents: jax.Array, visible: jax.Array, *,
                           deterministic: bool) -> tuple[jax.Array, jax.Array]:
        """Grid logits `[B, num_classes]` and predicted latents `[B, T, K, d]`.

        Args:
          latents: `[B, T, K, d]`.
          visible: bool `[B, T, K]`; False tokens show the mask embedding.
          deterministic: True disables dropout.
        """
        cls, objects = self.encode(latents, visible, deterministic=deterministic)
        return (self.grid_output(nn.relu(self.grid_hidden(cls))),
                self.latent_prediction(objects))
