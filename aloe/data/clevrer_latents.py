"""The CLEVRER latent batch pipeline: questions + cached MONet latents -> NumPy batches.

One split of a latent store in the release layout (`aloe.data.latents`):
`{root}/{split}.json` holds the questions, `{root}/{split}/{scene}.npz` the
latents `[frames=128, slots, d]` of every scene that has questions. All those
latents are read into memory once (the release's train split is ~640 MB). The
per-scene arrays may instead come from another store of the same layout, e.g.
a frame store of uint8 `[frames, S, S, 3]` (`arrays_root`, for models that read
pixels); with `preload=False` only the file headers are read up front (every
file's existence, dtype and shape checked) and each batch reads the frames it
needs from disk (the release's train split at 64x64 is ~16 GB).

Training batches (`train_batch`) are a pure function of (seed, step,
process_index): a NumPy generator seeded with (seed, step) draws the GLOBAL
batch, and each process keeps its contiguous slice of rows, so a resumed run
replays exactly and processes never overlap. Questions are drawn uniformly
with replacement, independently at every step (no epochs); only questions with
answers take part (every choice labelled, for multiple choice). Each example
gets its own `num_frames` frames drawn uniformly without replacement from the
video and sorted.

Evaluation batches (`eval_batches`) visit every question of the split exactly
once in file order, with evenly spaced frames: `arange(n) * (frames // n)` by
default (stride 5 from frame 0 for 25 of 128, as the release), or spread from
the first frame to the last (`eval_frames="spanning"`). Each process takes a
contiguous share of the questions (sizes differ by at most one) and every
process yields the same number of batches, the last ones padded with rows
whose `valid` is False, so that collective evaluation steps stay in lockstep.

Batch layout (B = this process's rows, T = num_frames, K slots, d latent size,
Lq / Lc question / choice lengths, C = max_choices):

    descriptive:      latents f32[B,T,K,d], question i32[B,Lq], answer i32[B]
    multiple_choice:  latents f32[B,T,K,d], question i32[B,Lq], choices i32[B,C,Lc],
                      choice_labels f32[B,C], choice_mask bool[B,C]

Training batches can add an unsupervised sub-batch for the self-supervised
auxiliary loss, `auxiliary: latents f32[B,T,K,d], question i32[B,Lq]`: videos
drawn from ALL the split's questions (answers unused), with one of their
descriptive questions. With `labeled_fraction < 1` the supervised sub-batches
draw only from the questions of a fixed labelled subset of the videos
(`aloe.data.latents.labeled_subset`), as in the paper's label-fraction study.

`answer` is a class, -1 when unknown; `choice_labels` are 1 correct, 0 wrong or
empty slot, -1 unknown. Evaluation batches add `valid` bool[B] to both
sub-batches, and host-only metadata under `meta` (see `eval_batches`).
"""

import os
from typing import Any, Iterator

import numpy as np

from aloe.data import latents as latents_lib
from aloe.data import questions as questions_lib
from aloe.data import sampling
from aloe.data import vocab as vocab_lib


class ClevrerLatentData:
    """Batches of one split of a CLEVRER latent store (see the module docstring)."""

    def __init__(self, root: str | os.PathLike, split: str, vocab: vocab_lib.Vocab, *,
                 num_frames: int = 25, max_question_len: int = 20, max_choice_len: int = 12,
                 max_choices: int = 4, unknown_words: str = "error", seed: int = 0,
                 labeled_fraction: float = 1.0, labeled_seed: int = 0,
                 process_index: int = 0, process_count: int = 1,
                 arrays_root: str | os.PathLike | None = None,
                 dtype: np.dtype = np.float32, preload: bool = True,
                 answers_outside_vocab: str = "error",
                 train_frames: str = "random", eval_frames: str = "strided"):
        """Parses `{root}/{split}.json` and opens the per-scene arrays of its scenes.

        Args:
          root: the latent store's root folder.
          split: e.g. "train", "valid" or "test".
          vocab: word ids and answer classes.
          num_frames: frames per example T.
          max_question_len, max_choice_len, max_choices: Lq, Lc and C.
          unknown_words: 'error' or 'unk' (needs a vocabulary with `<unk>`).
          seed: seeds the training batches.
          labeled_fraction: the share of videos whose answers train (in (0, 1]).
          labeled_seed: selects the labelled videos.
          process_index, process_count: this process and how many there are.
          arrays_root: the store of the per-scene arrays (default `root`), e.g. a
            frame store.
          dtype: their dtype (float32 latents, uint8 frames).
          preload: read every array now (else read each batch's frames from disk).
          answers_outside_vocab: 'error' or 'count' (evaluation splits: such an
            answer becomes `questions.OUTSIDE_VOCAB`, never trained on, always wrong).
          train_frames: the training frame sampler, "random" or "strided"
            (`sampling.TRAIN_FRAME_SAMPLERS`).
          eval_frames: the evaluation frames, "strided" (the release's) or
            "spanning" (`sampling.EVAL_FRAMES`).

        Raises:
          ValueError / FileNotFoundError: a malformed question file, a missing or
            malformed latent file of a scene with questions (named), or
            inconsistent arguments.
        """
        self.shard = sampling.ProcessShard(process_index, process_count)
        self._sample_frames = sampling.train_frame_sampler(train_frames)
        self._eval_frames = sampling.eval_frame_choice(eval_frames)
        if unknown_words == "unk" and vocab.unk_id is None:
            raise ValueError("unknown_words='unk' needs a vocabulary that reserves '<unk>' "
                             "(load or build it with unknown='unk').")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}.")
        self.root, self.split, self.vocab = os.fspath(root), split, vocab
        self.num_frames, self.max_choices = num_frames, max_choices
        self.seed = seed
        self.question_file = os.path.join(self.root, f"{split}.json")
        self.questions = questions_lib.load_questions(
            self.question_file, vocab, max_question_len=max_question_len,
            max_choice_len=max_choice_len, max_choices=max_choices, unknown=unknown_words,
            answers_outside_vocab=answers_outside_vocab)
        self.scene_indices = self.questions.scene_indices()
        if not len(self.scene_indices):
            raise ValueError(f"{self.question_file}: the file holds no questions.")
        self.store = latents_lib.LatentStore(arrays_root or self.root, split, dtype=dtype)
        # [scenes, frames, ...] in the order of self.scene_indices, or None (read lazily).
        self._arrays = self.store.load_all(self.scene_indices) if preload else None
        # One scene's array shape, e.g. (128, slots, d) or (128, S, S, 3).
        self.array_shape: tuple[int, ...] = (self._arrays.shape[1:] if preload else
                                             self.store.check_headers(self.scene_indices))
        self.store.expected_shape = self.array_shape
        first = self.store.path(self.scene_indices[0])
        if len(self.array_shape) < 2:
            raise ValueError(f"{first}: arrays must be [frames, ...], got shape "
                             f"{self.array_shape}.")
        if self.array_shape[0] < num_frames:
            raise ValueError(f"{first}: {self.array_shape[0]} frames, fewer than "
                             f"num_frames = {num_frames}.")
        desc, mc = self.questions.descriptive, self.questions.multiple_choice
        self._desc_latent_row = np.searchsorted(self.scene_indices, desc.scene_index)
        self._mc_latent_row = np.searchsorted(self.scene_indices, mc.scene_index)
        self.labeled = latents_lib.labeled_subset(self.scene_indices, labeled_fraction,
                                                  labeled_seed)
        self._desc_answered = np.flatnonzero((desc.answer >= 0)
                                             & self.labeled[self._desc_latent_row])
        self._mc_answered = np.flatnonzero(mc.answered() & self.labeled[self._mc_latent_row])

    @property
    def total_frames(self) -> int:
        """Frames per video in the store (128 for CLEVRER)."""
        return self.array_shape[0]

    def _gather_latents(self, latent_rows: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """`[B, T, ...]` (latents f32 `[B, T, K, d]`) of rows `[B]`, frames `[B, T]` or `[T]`."""
        frames = np.broadcast_to(frames, (len(latent_rows), self.num_frames))
        if self._arrays is not None:
            return self._arrays[latent_rows[:, None], frames]
        return self.store.gather_frames(self.scene_indices[latent_rows], frames)

    def _multiple_choice(self, rows: np.ndarray, frames: np.ndarray) -> dict[str, np.ndarray]:
        mc = self.questions.multiple_choice
        mask = mc.choice_mask[rows]
        return {
            "latents": self._gather_latents(self._mc_latent_row[rows], frames),
            "question": mc.question[rows],
            "choices": mc.choices[rows],
            "choice_labels": np.where(mask, mc.choice_labels[rows], 0).astype(np.float32),
            "choice_mask": mask,
        }

    def _descriptive(self, rows: np.ndarray, frames: np.ndarray) -> dict[str, np.ndarray]:
        desc = self.questions.descriptive
        return {
            "latents": self._gather_latents(self._desc_latent_row[rows], frames),
            "question": desc.question[rows],
            "answer": desc.answer[rows],
        }

    def train_batch(self, step: int, descriptive_size: int, mc_size: int,
                    auxiliary_size: int = 0) -> dict[str, Any]:
        """This process's rows of the global training batch of `step`.

        Args:
          step: the training step (>= 0); with the seed it fixes the batch.
          descriptive_size: global descriptive rows, a multiple of process_count.
          mc_size: global multiple-choice rows, a multiple of process_count.
          auxiliary_size: global unsupervised rows (0 = none), likewise.

        Returns:
          `{'descriptive': {...}, 'multiple_choice': {...}}` as in the module
          docstring, with `descriptive_size / process_count` and
          `mc_size / process_count` rows; labels are 1/0 only; plus
          `'auxiliary'` when `auxiliary_size` > 0.

        Raises:
          ValueError: sizes not divisible by process_count, or a requested kind
            for which the split has no answered questions.
        """
        step = int(step)
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}.")
        desc_local = self.shard.local(descriptive_size, "descriptive_size")
        mc_local = self.shard.local(mc_size, "mc_size")
        for size, answered, kind in ((descriptive_size, self._desc_answered, "descriptive"),
                                     (mc_size, self._mc_answered, "multiple-choice")):
            if size and not len(answered):
                raise ValueError(f"{self.question_file}: no {kind} questions with answers to "
                                 f"train on.")
        rng = np.random.default_rng([self.seed, step])
        desc_rows = self._desc_answered[rng.integers(0, max(1, len(self._desc_answered)),
                                                     descriptive_size)]
        desc_frames = self._sample_frames(rng, descriptive_size, self.total_frames,
                                          self.num_frames)
        mc_rows = self._mc_answered[rng.integers(0, max(1, len(self._mc_answered)), mc_size)]
        mc_frames = self._sample_frames(rng, mc_size, self.total_frames, self.num_frames)
        batch = {
            "descriptive": self._descriptive(desc_rows[desc_local], desc_frames[desc_local]),
            "multiple_choice": self._multiple_choice(mc_rows[mc_local], mc_frames[mc_local]),
        }
        if auxiliary_size:
            aux_local = self.shard.local(auxiliary_size, "auxiliary_size")
            if not len(self.questions.descriptive):
                raise ValueError(f"{self.question_file}: the auxiliary sub-batch takes its "
                                 f"questions from descriptive ones, and there are none.")
            aux_rows = rng.integers(0, len(self.questions.descriptive), auxiliary_size)
            aux_frames = self._sample_frames(rng, auxiliary_size, self.total_frames,
                                             self.num_frames)
            aux = self._descriptive(aux_rows[aux_local], aux_frames[aux_local])
            batch["auxiliary"] = {"latents": aux["latents"], "question": aux["question"]}
        return batch

    def num_eval_batches(self, batch_size: int) -> int:
        """How many batches `eval_batches(batch_size)` yields on every process."""
        return self.shard.num_eval_batches(batch_size, len(self.questions.descriptive),
                                           len(self.questions.multiple_choice))

    def eval_batches(self, batch_size: int) -> Iterator[dict[str, Any]]:
        """Every question of the split once, in batches padded to a fixed size.

        Args:
          batch_size: the global rows per sub-batch, a multiple of process_count;
            each process yields `batch_size / process_count` rows per sub-batch.

        Yields:
          The training layout plus `valid` bool `[B]` in both sub-batches (False
          for padding rows, which are zeros with answer / labels -1), and
          `meta`: `{'descriptive': {'scene_index', 'question_id'},
          'multiple_choice': {'scene_index', 'question_id', 'question_type'
          (0 explanatory, 1 predictive, 2 counterfactual), 'choice_ids' [B, C]}}`,
          int64 / int32 arrays, -1 in padding rows.
        """
        local = self.shard.local_size(batch_size, "batch_size")
        frames = self._eval_frames(self.total_frames, self.num_frames)
        desc, mc = self.questions.descriptive, self.questions.multiple_choice
        for desc_rows, mc_rows in self.shard.eval_rows(batch_size, len(desc), len(mc)):
            desc_batch = sampling.pad_rows(self._descriptive(desc_rows, frames), local,
                                           {"answer": -1})
            mc_batch = sampling.pad_rows(self._multiple_choice(mc_rows, frames), local,
                                         {"choice_labels": -1})
            desc_batch["valid"] = np.arange(local) < len(desc_rows)
            mc_batch["valid"] = np.arange(local) < len(mc_rows)
            meta = {
                "descriptive": sampling.pad_rows({"scene_index": desc.scene_index[desc_rows],
                                                  "question_id": desc.question_id[desc_rows]},
                                                 local, -1),
                "multiple_choice": sampling.pad_rows({
                    "scene_index": mc.scene_index[mc_rows],
                    "question_id": mc.question_id[mc_rows],
                    "question_type": mc.question_type[mc_rows].astype(np.int32),
                    "choice_ids": mc.choice_ids[mc_rows]}, local, -1),
            }
            yield {"descriptive": desc_batch, "multiple_choice": mc_batch, "meta": meta}

