"""CLEVRER question files parsed into encoded NumPy arrays.

A question file (DESIGN.md §6) is a JSON list of `{scene_index, video_filename,
questions: [...]}`. Descriptive questions carry an `answer` string; multiple-choice
questions (explanatory, predictive, counterfactual) carry `choices`, each
`{choice_id, choice, program, answer: "correct" | "wrong"}`. The test split has
no answers: they are encoded as -1.

The parsed form is one struct of arrays per kind (row i of every array is
question i, in file order). Programs are not needed for encoding and are not
read here; `aloe.clevrer.program` parses them.

Every malformed entry raises a ValueError naming the file, the scene_index and
the question_id (and the choice_id when a choice is at fault).
"""

import dataclasses
import os
from typing import Any

import numpy as np

from aloe.clevrer.metrics import MC_TYPES
from aloe.data.vocab import Vocab
from aloe.json_io import read_json

DESCRIPTIVE = "descriptive"
# Multiple-choice question types; `MultipleChoiceQuestions.question_type` holds
# indices into this tuple (0 explanatory, 1 predictive, 2 counterfactual).
MC_QUESTION_TYPES: tuple[str, ...] = tuple(MC_TYPES)
CHOICE_LABELS = {"correct": 1, "wrong": 0}
UNKNOWN = -1
OUTSIDE_VOCAB = -2  # An answer the vocabulary lacks, kept (answers_outside_vocab='count').
ANSWERS_OUTSIDE_VOCAB = ("error", "count")


@dataclasses.dataclass(frozen=True)
class DescriptiveQuestions:
    """Encoded descriptive questions, N rows.

    Attributes:
      scene_index: int64 `[N]`.
      question_id: int64 `[N]`.
      question: int32 `[N, Lq]` word ids, 0-padded.
      answer: int32 `[N]` answer class, -1 when the file has no answer.
      question_subtype: str `[N]`, "" when the file gives none.
    """
    scene_index: np.ndarray
    question_id: np.ndarray
    question: np.ndarray
    answer: np.ndarray
    question_subtype: np.ndarray

    def __len__(self) -> int:
        return len(self.scene_index)

    def take(self, rows: np.ndarray) -> "DescriptiveQuestions":
        """The questions at `rows` (int `[M]` or bool `[N]`)."""
        return DescriptiveQuestions(
            *(getattr(self, f.name)[rows] for f in dataclasses.fields(self)))


@dataclasses.dataclass(frozen=True)
class MultipleChoiceQuestions:
    """Encoded multiple-choice questions, N rows, C = max_choices choice slots.

    Attributes:
      scene_index: int64 `[N]`.
      question_id: int64 `[N]`.
      question_type: int8 `[N]`, index into `MC_QUESTION_TYPES`.
      question: int32 `[N, Lq]` word ids, 0-padded.
      choices: int32 `[N, C, Lc]` word ids; slots past the last choice are 0.
      choice_labels: int8 `[N, C]`: 1 correct, 0 wrong, -1 unknown (no answer in
        the file, or an empty slot).
      choice_mask: bool `[N, C]`: which slots hold a choice.
      choice_ids: int32 `[N, C]`: the file's choice_id per slot, -1 for empty slots.
    """
    scene_index: np.ndarray
    question_id: np.ndarray
    question_type: np.ndarray
    question: np.ndarray
    choices: np.ndarray
    choice_labels: np.ndarray
    choice_mask: np.ndarray
    choice_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.scene_index)

    def take(self, rows: np.ndarray) -> "MultipleChoiceQuestions":
        """The questions at `rows` (int `[M]` or bool `[N]`)."""
        return MultipleChoiceQuestions(
            *(getattr(self, f.name)[rows] for f in dataclasses.fields(self)))

    def answered(self) -> np.ndarray:
        """bool `[N]`: every choice of the question has a known label."""
        return ((self.choice_labels >= 0) | ~self.choice_mask).all(axis=1)


@dataclasses.dataclass(frozen=True)
class QuestionSet:
    """The parsed questions of one file."""
    source: str
    descriptive: DescriptiveQuestions
    multiple_choice: MultipleChoiceQuestions

    def scene_indices(self) -> np.ndarray:
        """int64 `[S]`: the sorted scene indices that have at least one question."""
        return np.unique(np.concatenate([self.descriptive.scene_index,
                                         self.multiple_choice.scene_index]))


class _Where:
    """Formats where an entry is, for error messages."""

    def __init__(self, source: str, scene_index: Any = None, question_id: Any = None):
        self.source, self.scene_index, self.question_id = source, scene_index, question_id

    def __call__(self, choice_id: Any = None) -> str:
        text = f"{self.source}: scene_index {self.scene_index}"
        if self.question_id is not None:
            text += f", question_id {self.question_id}"
        if choice_id is not None:
            text += f", choice_id {choice_id}"
        return text


def _field(entry: Any, name: str, kind: type, where: str) -> Any:
    """entry[name], checked to be of `kind` (bools are not ints)."""
    if not isinstance(entry, dict) or name not in entry:
        raise ValueError(f"{where}: missing field {name!r}.")
    value = entry[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ValueError(f"{where}: field {name!r} must be {kind.__name__}, got {value!r}.")
    return value


def parse_questions(scenes: Any, vocab: Vocab, *, source: str = "<questions>",
                    max_question_len: int = 20, max_choice_len: int = 12, max_choices: int = 4,
                    unknown: str | None = None,
                    answers_outside_vocab: str = "error") -> QuestionSet:
    """Encodes the decoded JSON of a question file.

    Args:
      scenes: the file's content: a list of `{scene_index, questions}` entries.
      vocab: word ids and answer classes.
      source: the file name, used in error messages.
      max_question_len: Lq, the padded question length (the release's is 20).
      max_choice_len: Lc, the padded choice length (the release's is 12).
      max_choices: C, the number of choice slots per question.
      unknown: unknown-word policy for `vocab.encode`; default: the vocabulary's.
      answers_outside_vocab: 'error' (raise) or 'count' (the answer becomes
        `OUTSIDE_VOCAB`, which no prediction matches: for evaluation splits).

    Returns:
      The descriptive and multiple-choice questions, in file order.

    Raises:
      ValueError: naming the file, scene_index, question_id (and choice_id) of a
        missing or mistyped field, an unknown question_type, an answer outside
        the answer vocabulary, a text longer than its maximum length, an unknown
        word (policy 'error'), more than `max_choices` choices, or a repeated id.
    """
    if not isinstance(scenes, list):
        raise ValueError(f"{source}: expected a JSON list of scenes, got {type(scenes).__name__}.")
    if answers_outside_vocab not in ANSWERS_OUTSIDE_VOCAB:
        raise ValueError(f"answers_outside_vocab must be one of {ANSWERS_OUTSIDE_VOCAB}, got "
                         f"{answers_outside_vocab!r}.")
    desc: dict[str, list] = {k: [] for k in ("scene_index", "question_id", "question", "answer",
                                             "question_subtype")}
    mc: dict[str, list] = {k: [] for k in ("scene_index", "question_id", "question_type",
                                           "question", "choices", "choice_labels",
                                           "choice_mask", "choice_ids")}
    seen_scenes: set[int] = set()
    for position, scene in enumerate(scenes):
        scene_where = f"{source}: scene entry {position}"
        scene_index = _field(scene, "scene_index", int, scene_where)
        if scene_index in seen_scenes:
            raise ValueError(f"{source}: scene_index {scene_index} appears twice.")
        seen_scenes.add(scene_index)
        questions = _field(scene, "questions", list, f"{source}: scene_index {scene_index}")
        seen_questions: set[int] = set()
        for question in questions:
            where = _Where(source, scene_index)
            question_id = _field(question, "question_id", int, where())
            if question_id in seen_questions:
                raise ValueError(f"{where()}: question_id {question_id} appears twice.")
            seen_questions.add(question_id)
            where = _Where(source, scene_index, question_id)
            text = _field(question, "question", str, where())
            question_type = _field(question, "question_type", str, where())
            location = dict(source=source, scene_index=scene_index, question_id=question_id)
            if question_type == DESCRIPTIVE:
                tokens = vocab.encode(text, max_question_len, unknown=unknown, **location)
                answer = UNKNOWN
                if "answer" in question:
                    text_answer = _field(question, "answer", str, where())
                    if (answers_outside_vocab == "count"
                            and text_answer not in vocab.answer_classes):
                        answer = OUTSIDE_VOCAB
                    else:
                        answer = vocab.answer_to_class(text_answer, **location)
                subtype = question.get("question_subtype", "")
                if not isinstance(subtype, str):
                    raise ValueError(f"{where()}: field 'question_subtype' must be str, got "
                                     f"{subtype!r}.")
                for key, value in zip(desc, (scene_index, question_id, tokens, answer, subtype)):
                    desc[key].append(value)
            elif question_type in MC_QUESTION_TYPES:
                tokens = vocab.encode(text, max_question_len, unknown=unknown, **location)
                encoded = _parse_choices(question, where, vocab, max_choice_len, max_choices,
                                         unknown)
                for key, value in zip(mc, (scene_index, question_id,
                                           MC_QUESTION_TYPES.index(question_type), tokens)
                                      + encoded):
                    mc[key].append(value)
            else:
                raise ValueError(f"{where()}: unknown question_type {question_type!r}; expected "
                                 f"{DESCRIPTIVE!r} or one of {MC_QUESTION_TYPES}.")
    return QuestionSet(
        source=source,
        descriptive=DescriptiveQuestions(
            scene_index=np.asarray(desc["scene_index"], np.int64),
            question_id=np.asarray(desc["question_id"], np.int64),
            question=np.asarray(desc["question"], np.int32).reshape(-1, max_question_len),
            answer=np.asarray(desc["answer"], np.int32),
            question_subtype=np.asarray(desc["question_subtype"], dtype=str)),
        multiple_choice=MultipleChoiceQuestions(
            scene_index=np.asarray(mc["scene_index"], np.int64),
            question_id=np.asarray(mc["question_id"], np.int64),
            question_type=np.asarray(mc["question_type"], np.int8),
            question=np.asarray(mc["question"], np.int32).reshape(-1, max_question_len),
            choices=np.asarray(mc["choices"], np.int32).reshape(
                -1, max_choices, max_choice_len),
            choice_labels=np.asarray(mc["choice_labels"], np.int8).reshape(-1, max_choices),
            choice_mask=np.asarray(mc["choice_mask"], bool).reshape(-1, max_choices),
            choice_ids=np.asarray(mc["choice_ids"], np.int32).reshape(-1, max_choices)))


def _parse_choices(question: dict, where: _Where, vocab: Vocab, max_choice_len: int,
                   max_choices: int, unknown: str | None) -> tuple[np.ndarray, ...]:
    """Encodes the choices of one multiple-choice question into C padded slots."""
    choices = _field(question, "choices", list, where())
    if not choices:
        raise ValueError(f"{where()}: field 'choices' is empty.")
    if len(choices) > max_choices:
        raise ValueError(f"{where()}: {len(choices)} choices, more than max_choices = "
                         f"{max_choices}.")
    tokens = np.zeros([max_choices, max_choice_len], np.int32)
    labels = np.full([max_choices], UNKNOWN, np.int8)
    mask = np.zeros([max_choices], bool)
    ids = np.full([max_choices], UNKNOWN, np.int32)
    for slot, choice in enumerate(choices):
        choice_id = _field(choice, "choice_id", int, where(f"slot {slot}"))
        if choice_id in ids[:slot]:
            raise ValueError(f"{where(choice_id)}: choice_id {choice_id} appears twice.")
        text = _field(choice, "choice", str, where(choice_id))
        tokens[slot] = vocab.encode(text, max_choice_len, unknown=unknown, source=where.source,
                                    scene_index=where.scene_index,
                                    question_id=where.question_id, choice_id=choice_id)
        if "answer" in choice:
            answer = choice["answer"]
            if answer not in CHOICE_LABELS:
                raise ValueError(f"{where(choice_id)}: field 'answer' must be 'correct' or "
                                 f"'wrong', got {answer!r}.")
            labels[slot] = CHOICE_LABELS[answer]
        mask[slot] = True
        ids[slot] = choice_id
    return tokens, labels, mask, ids


def load_questions(path: str | os.PathLike, vocab: Vocab, *, max_question_len: int = 20,
                   max_choice_len: int = 12, max_choices: int = 4,
                   unknown: str | None = None,
                   answers_outside_vocab: str = "error") -> QuestionSet:
    """Reads and encodes a CLEVRER question file; see `parse_questions`."""
    path = os.fspath(path)
    return parse_questions(read_json(path), vocab, source=path,
                           max_question_len=max_question_len,
                           max_choice_len=max_choice_len, max_choices=max_choices,
                           unknown=unknown, answers_outside_vocab=answers_outside_vocab)
