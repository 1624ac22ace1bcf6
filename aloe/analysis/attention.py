r"""What ALOE attends to (paper Appendix C): attention maps and three pictures.

    python -m aloe.analysis.attention --config=configs/clevrer.py --workdir=WORKDIR \
        --monet_config=MONET_CONFIG --monet_workdir=MONET_WORKDIR --split=valid \
        --scene=10000 --question_id=3 [--choice_id=0] [--frames_npy=FRAMES.npy] \
        --out=DIR [--logdir=TB_DIR] [--layer=-1] [--head=0]

`attention_maps` runs ALOE once, deterministically, on one example and returns
the attention weights of every layer, `[layers, heads, N, N]` (query, key), with
the `TokenLayout` of the sequence `[CLS, question words, choice words, objects]`
(objects frame-major). A descriptive question is run as `ALOE.descriptive` (its
padding choice tokens included); a question with one choice as
`ALOE.multiple_choice` on that choice.

The pictures (one head of one layer, the last by default), matplotlib figures
titled with the question (and choice), ALOE's predicted and the true answer, and
the layer and head:

  cross_modal     for each question (and choice) word, the object slot of one
                  frame whose token attends to the word most; the words are
                  coloured by that slot, beside the frame with a box around each
                  slot's region (MONet mask > 0.5). Words taken by the background
                  slot or by a slot without a region are black.
  most_attended   CLS-to-object attention per frame: the frames with boxes
                  around the `count` most attended slots of each (thick solid:
                  the most attended; dashed: the next ones).
  slot_alignment  frame (x) by slot (y) grid of CLS attention with its colour
                  bar; the `count` most attended slots of each frame are
                  outlined in orange; each cell shows the slot's segment.

Frames and MONet masks are arrays given by the caller: `[T, H, W, 3]` pixels in
[0, 1] (or uint8) and `[T, K, H, W(, 1)]`. The command reads its inputs with
`aloe.analysis.inputs` (checkpoints, latent store, the video's frames from
`--frames_npy` or from the tfds dataset in `--monet_config.data.data_dir`,
segmented by MONet); without frames it stops with an error.
"""

import dataclasses
import functools
from typing import Any, Optional, Sequence

from absl import app
from absl import flags
import jax
import numpy as np

from aloe import reporting
from aloe.analysis import figures
from aloe.analysis import inputs as inputs_lib
from aloe.models import aloe as aloe_model

PyTree = Any


@dataclasses.dataclass(frozen=True)
class TokenLayout:
    """Where each token sits in `[CLS, question words, choice words, objects]`.

    Attributes:
      question_len: Lq, question word tokens (padding included).
      choice_len: Lc, choice word tokens (padding included; the padding choice
        of a descriptive question counts).
      frames: T.
      slots: K; object (t, k) is token `1 + Lq + Lc + t * K + k`.
    """
    question_len: int
    choice_len: int
    frames: int
    slots: int

    cls_index = 0

    @property
    def num_tokens(self) -> int:
        """N = 1 + Lq + Lc + T * K."""
        return self.object_start + self.frames * self.slots

    @property
    def object_start(self) -> int:
        """The index of object (0, 0)."""
        return 1 + self.question_len + self.choice_len

    def question_index(self, position: int) -> int:
        """The token of question word `position` (0-based)."""
        if not 0 <= position < self.question_len:
            raise IndexError(f"question word {position} outside 0..{self.question_len - 1}.")
        return 1 + position

    def choice_index(self, position: int) -> int:
        """The token of choice word `position` (0-based)."""
        if not 0 <= position < self.choice_len:
            raise IndexError(f"choice word {position} outside 0..{self.choice_len - 1}.")
        return 1 + self.question_len + position

    def object_index(self, frame: int, slot: int) -> int:
        """The token of slot `slot` in frame `frame`."""
        if not (0 <= frame < self.frames and 0 <= slot < self.slots):
            raise IndexError(f"object ({frame}, {slot}) outside [{self.frames}, {self.slots}].")
        return self.object_start + frame * self.slots + slot

    def object_indices(self) -> np.ndarray:
        """int64 `[T, K]`: the token of every object."""
        return self.object_start + np.arange(self.frames * self.slots).reshape(
            self.frames, self.slots)

    def describe(self, index: int) -> str:
        """A readable name: 'CLS', 'question[i]', 'choice[i]' or 'object(t=.., slot=..)'."""
        if not 0 <= index < self.num_tokens:
            raise IndexError(f"token {index} outside 0..{self.num_tokens - 1}.")
        if index == 0:
            return "CLS"
        if index <= self.question_len:
            return f"question[{index - 1}]"
        if index < self.object_start:
            return f"choice[{index - 1 - self.question_len}]"
        frame, slot = divmod(index - self.object_start, self.slots)
        return f"object(t={frame}, slot={slot})"


@functools.lru_cache(maxsize=8)
def _sown_attention_fn(model: aloe_model.ALOE, method: Any) -> Any:
    """A compiled `model.apply(method)` that also returns the sown intermediates."""
    def run(params, *args):
        return model.apply({"params": params}, *args, deterministic=True, method=method,
                           mutable=["intermediates"])
    return jax.jit(run)


def attention_maps(model: aloe_model.ALOE, params: PyTree, latents: np.ndarray,
                   question: np.ndarray, choice: Optional[np.ndarray] = None) -> dict[str, Any]:
    """Attention weights of every layer for one example, deterministic.

    Args:
      model: the ALOE module.
      params: its parameters.
      latents: `[T, K, d]` object latents (frames in order).
      question: `[Lq]` int word ids (0 = padding).
      choice: `[Lc]` int word ids of one choice, or None for a descriptive question.

    Returns:
      A dict with
        weights: float32 `[layers, heads, N, N]`, `[l, h, i, j]` = how much query
          token i attends to key token j; every row sums to 1.
        layout: the `TokenLayout`.
        token_mask: bool `[N]`, False for padding words when the model masks them
          (they then get zero weight as keys).
        word_ids: int32 `[N]`, the word id of each word token, -1 elsewhere.
        kind: 'descriptive' or 'multiple_choice'.
        output: the head's output, answer logits `[num_answers]` or the choice's
          logit (a float).
    """
    latents = np.asarray(latents, np.float32)
    question = np.asarray(question, np.int32)
    if latents.ndim != 3 or latents.shape[-1] != model.latent_dim:
        raise ValueError(f"latents must be [frames, slots, {model.latent_dim}], got shape "
                         f"{latents.shape}.")
    if question.ndim != 1:
        raise ValueError(f"question must be [length] word ids, got shape {question.shape}.")
    if choice is None:
        kind, method = "descriptive", aloe_model.ALOE.descriptive
        choice = np.zeros([model.descriptive_choice_len], np.int32)
        args = (latents[None], question[None])
    else:
        choice = np.asarray(choice, np.int32)
        if choice.ndim != 1:
            raise ValueError(f"choice must be [length] word ids, got shape {choice.shape}.")
        kind, method = "multiple_choice", aloe_model.ALOE.multiple_choice
        args = (latents[None], question[None], choice[None, None])

    output, state = _sown_attention_fn(model, method)(params, *args)
    layers = state["intermediates"]["transformer"]
    weights = np.stack([np.asarray(layers[f"layer_{i}"]["attention"]["attention"][0][0])
                        for i in range(model.reasoner.num_layers)]).astype(np.float32)
    layout = TokenLayout(len(question), len(choice), latents.shape[0], latents.shape[1])
    word_ids = np.concatenate([[-1], question, choice, np.full(layout.frames * layout.slots, -1)])
    token_mask = np.ones(layout.num_tokens, bool)
    if model.word_padding_mask:
        token_mask[1:layout.object_start] = word_ids[1:layout.object_start] != 0
    output = np.asarray(output)[0]
    return {"weights": weights, "layout": layout, "token_mask": token_mask,
            "word_ids": word_ids.astype(np.int32), "kind": kind,
            "output": output if kind == "descriptive" else float(output[0])}


def head_weights(maps: dict[str, Any], layer: int = -1, head: Optional[int] = 0) -> np.ndarray:
    """`[N, N]` weights of one head of one layer; `head=None` averages the heads."""
    weights = maps["weights"][layer]
    return weights.mean(axis=0) if head is None else weights[head]


def word_slot_attention(maps: dict[str, Any], frame: int, *, layer: int = -1,
                        head: Optional[int] = 0) -> dict[str, np.ndarray]:
    """For each real (non-padding) word: the slot of `frame` that attends to it most.

    Args:
      maps: `attention_maps`'s result.
      frame: the frame whose object tokens are the queries.
      layer: which layer (default the last).
      head: which head; None averages them.

    Returns:
      Arrays over the real words, question words first: `token` (index in the
      sequence), `word_id`, `is_choice` (bool), `slot` (argmax over the frame's
      slots of the weight of object (frame, slot) on the word) and `weight`
      (that maximum); plus `attention` `[K, words]`, all the weights.
    """
    layout = maps["layout"]
    if not 0 <= frame < layout.frames:
        raise ValueError(f"frame {frame} outside 0..{layout.frames - 1}.")
    word_ids = maps["word_ids"]
    tokens = np.flatnonzero(word_ids > 0)
    attention = head_weights(maps, layer, head)[layout.object_indices()[frame]][:, tokens]
    return {"token": tokens, "word_id": word_ids[tokens],
            "is_choice": tokens > layout.question_len, "slot": attention.argmax(axis=0),
            "weight": attention.max(axis=0), "attention": attention}


def cls_object_attention(maps: dict[str, Any], *, layer: int = -1,
                         head: Optional[int] = 0) -> np.ndarray:
    """float32 `[T, K]`: the weight of the CLS token on every object token."""
    return head_weights(maps, layer, head)[0][maps["layout"].object_indices()]


def top_slots(cls_attention: np.ndarray, count: int = 2) -> np.ndarray:
    """int64 `[T, count]`: per frame, the `count` most attended slots, most first."""
    if not 1 <= count <= cls_attention.shape[1]:
        raise ValueError(f"count must be in 1..{cls_attention.shape[1]}, got {count}.")
    return np.argsort(-cls_attention, axis=1, kind="stable")[:, :count]


def describe_example(maps: dict[str, Any], *, layer: int = -1, head: Optional[int] = 0,
                     id_to_word: Optional[dict[int, str]] = None,
                     answer_names: Optional[Sequence[str]] = None,
                     true_answer: Optional[str] = None) -> str:
    """Two title lines: the question (and choice); the predicted and true answer and the head.

    Args:
      maps: `attention_maps`'s result.
      layer, head: the attention shown (head None: the heads' mean).
      id_to_word: word id -> word (default '#id').
      answer_names: answer class -> answer, for a descriptive question.
      true_answer: the true answer ('correct' / 'wrong' for a choice), if known.
    """
    layout, word_ids = maps["layout"], maps["word_ids"]
    words = lambda ids: " ".join((id_to_word or {}).get(int(i), f"#{int(i)}")
                                 for i in ids if i > 0)
    text = "Q: " + words(word_ids[1:1 + layout.question_len])
    output = maps["output"]
    if maps["kind"] == "descriptive":
        probs = np.exp(output - np.max(output))
        probs /= probs.sum()
        best = int(np.argmax(probs))
        name = answer_names[best] if answer_names is not None else f"class {best}"
        predicted = f"{name} (p={probs[best]:.2f})"
    else:
        text += "   C: " + words(word_ids[1 + layout.question_len:layout.object_start])
        p_correct = 1.0 / (1.0 + np.exp(-float(output)))
        predicted = f"{'correct' if p_correct >= 0.5 else 'wrong'} (p(correct)={p_correct:.2f})"
    layers = maps["weights"].shape[0]
    which = f"layer {layer % layers} of 0..{layers - 1}, " + (
        "heads averaged" if head is None else f"head {head}")
    return (f"{text}\npredicted: {predicted}   true: {true_answer or 'unknown'}   "
            f"attention: {which}")


def attention_figures(maps: dict[str, Any], frames: np.ndarray, masks: np.ndarray, *,
                      word_frame: Optional[int] = None, layer: int = -1, head: Optional[int] = 0,
                      count: int = 2, id_to_word: Optional[dict[int, str]] = None,
                      answer_names: Optional[Sequence[str]] = None,
                      true_answer: Optional[str] = None, background_slot: Optional[int] = 0,
                      frame_numbers: Optional[Sequence[int]] = None) -> dict[str, Any]:
    """The three pictures of `maps`: 'cross_modal', 'most_attended', 'slot_alignment'.

    Args:
      maps: `attention_maps`'s result.
      frames: `[T, H, W, 3]` pixels of the frames the latents came from.
      masks: `[T, K, H, W]` (or `[..., 1]`) MONet masks of those frames.
      word_frame: the frame of the cross-modal picture; default the first frame
        with the most slots that have a region (background aside).
      layer, head: which attention (head None averages the heads).
      count: most attended slots marked per frame.
      id_to_word: word id -> word, for the text (default '#id').
      answer_names: answer class -> answer, for the title of a descriptive question.
      true_answer: the true answer for the title, if known.
      background_slot: the slot that gets no box in the cross-modal picture.
      frame_numbers: each frame's number in the video, for the panel titles.

    Returns:
      name -> `matplotlib.figure.Figure`.
    """
    layout = maps["layout"]
    frames, masks = figures.check_views(frames, masks, layout.frames, layout.slots)
    if word_frame is None:
        word_frame = int(np.argmax(figures.frames_with_regions(masks, background_slot)))
    words = word_slot_attention(maps, word_frame, layer=layer, head=head)
    names = [(id_to_word or {}).get(int(i), f"#{int(i)}") for i in words["word_id"]]
    cls_attention = cls_object_attention(maps, layer=layer, head=head)
    top = top_slots(cls_attention, count)
    example = describe_example(maps, layer=layer, head=head, id_to_word=id_to_word,
                               answer_names=answer_names, true_answer=true_answer)
    labels = [f"frame {t}" + (f" (video {n})" if frame_numbers is not None else "")
              for t, n in enumerate(frame_numbers if frame_numbers is not None
                                    else range(layout.frames))]
    return {
        "cross_modal": figures.cross_modal_figure(
            frames[word_frame], masks[word_frame], names, words["slot"],
            is_choice=words["is_choice"], background_slot=background_slot,
            frame_label=labels[word_frame],
            title=f"Cross-modal attention: for each word, the slot of {labels[word_frame]} "
                  f"attending to it most\n{example}"),
        "most_attended": figures.most_attended_figure(
            frames, masks, top, frame_labels=labels,
            title=f"The {count} objects the CLS token attends to most in each frame\n{example}"),
        "slot_alignment": figures.slot_alignment_figure(
            cls_attention, top, frames=frames, masks=masks,
            title=f"CLS attention to every slot of every frame\n{example}"),
    }


def analyse_attention(model: aloe_model.ALOE, params: PyTree, latents: np.ndarray,
                      question: np.ndarray, choice: Optional[np.ndarray] = None, *,
                      frames: np.ndarray, masks: np.ndarray, out_dir: Optional[str] = None,
                      logdir: Optional[str] = None, writer: Any = None, step: int = 0,
                      **figure_options) -> dict[str, Any]:
    """`attention_maps` and `attention_figures` of one example, written out.

    Args:
      model, params, latents, question, choice: as `attention_maps`.
      frames: `[T, H, W, 3]` pixels of the latents' frames.
      masks: `[T, K, H, W]` (or `[..., 1]`) MONet masks of those frames.
      out_dir: folder for `cross_modal.png`, `most_attended.png`, `slot_alignment.png`.
      logdir: TensorBoard folder (a writer is opened and closed), or
      writer: a `clu.metric_writers` writer; images are tagged 'attention/<name>'.
      step: the TensorBoard step.
      **figure_options: `attention_figures`'s keywords (word_frame, layer, head,
        count, id_to_word, answer_names, true_answer, background_slot, frame_numbers).

    Returns:
      `{'maps': ..., 'figures': name -> matplotlib figure, 'images': name -> uint8
      image (the PNG's pixels), 'paths': name -> PNG path}`.
    """
    maps = attention_maps(model, params, latents, question, choice)
    drawn = attention_figures(maps, frames, masks, **figure_options)
    images, paths = figures.write_figures(drawn, out_dir, writer=writer, logdir=logdir,
                                          step=step, tag_prefix="attention/")
    return {"maps": maps, "figures": drawn, "images": images, "paths": paths}


def main(argv: Sequence[str]) -> None:
    """absl entry point: the three pictures of one question of one scene."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    reporting.configure_logging()  # Only warnings from orbax and tfds.
    inputs = inputs_lib.command_inputs(f.config, f.workdir, f.monet_config, f.monet_workdir,
                                       f.split, f.scene, f.question_id, f.choice_id, f.frames_npy)
    result = analyse_attention(
        inputs["model"], inputs["params"], inputs["latents"], inputs["question"],
        inputs["choice"], frames=inputs["frames"], masks=inputs["masks"], out_dir=f.out,
        logdir=f.logdir, word_frame=f.word_frame, layer=f.layer, head=f.head, count=f.count,
        id_to_word=inputs["id_to_word"], answer_names=inputs["answer_names"],
        true_answer=inputs["true_answer"], frame_numbers=inputs["frame_indices"])
    for name, path in result["paths"].items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    inputs_lib.define_command_flags()
    flags.adopt_module_key_flags(inputs_lib)  # The shared flags show in --help.
    flags.DEFINE_integer("choice_id", None, "Choice of a multiple-choice question (default first).")
    flags.DEFINE_integer("word_frame", None, "Frame of the cross-modal picture.")
    flags.DEFINE_integer("layer", -1, "Transformer layer (default the last).")
    flags.DEFINE_integer("head", 0, "Attention head.")
    flags.DEFINE_integer("count", 2, "Most attended slots marked per frame.")
    app.run(main)
