"""Tokenization and vocabularies of CLEVRER questions and answers.

Tokenization follows the released ALOE model exactly: lower-case the text, drop
every `?` and split on white space. Punctuation other than `?` stays attached,
so `cube,` and `cube's` are words of their own.

Ids:
  * question words map to 1..V; 0 is the padding id;
  * answers map to classes 0..A-1.

The release file (`aloe_vocab.json`) stores `question_vocab` (word -> id 1..V)
and `answer_vocab` (answer -> id 1..A). Answer ids in that file start at 1, so
the answer class used everywhere in this project is the file's id minus 1;
`save` writes classes back as class + 1, so a loaded file saves unchanged.

Unknown words: with `unknown='error'` (the default) encoding a word outside the
vocabulary raises a ValueError naming the word and where it came from. With
`unknown='unk'` the vocabulary reserves the word `<unk>` (id V + 1, right after
the largest word id, unless the file already lists it) and unknown words map to
it. Because the reserved id counts in `vocab_size`, the policy must be chosen
when the vocabulary is created (the model's embedding table is sized from it);
`encode` can switch a `<unk>`-reserving vocabulary back to 'error'.
"""

import json
import os
from typing import Iterable, Mapping, Sequence

import numpy as np

from aloe.json_io import read_json

PAD_ID = 0
UNK_WORD = "<unk>"
UNKNOWN_POLICIES = ("error", "unk")

# The released ALOE CLEVRER model's vocabulary: 81 question words with ids 1..81
# and 21 answers with classes 0..20, both numbered in sorted order.
RELEASE_QUESTION_WORDS: tuple[str, ...] = (
    "after", "and", "any", "are", "before", "begins", "between", "blue", "brown", "collide",
    "collides", "colliding", "collision", "collisions", "color", "cube", "cube's", "cube,",
    "cubes", "cyan", "cylinder", "cylinder's", "cylinder,", "cylinders", "ends", "enter",
    "entering", "enters", "entrance", "event", "exit", "exiting", "exits", "first", "following",
    "for", "gray", "green", "happen", "how", "if", "is", "last", "many", "material", "metal",
    "moving", "next", "not", "object", "object's", "object,", "objects", "of", "presence",
    "purple", "red", "removed", "removed,", "responsible", "rubber", "scene", "second", "shape",
    "sphere", "sphere's", "sphere,", "spheres", "stationary", "that", "the", "there", "to",
    "video", "what", "when", "which", "will", "with", "without", "yellow",
)
RELEASE_ANSWERS: tuple[str, ...] = (
    "0", "1", "2", "3", "4", "5", "blue", "brown", "cube", "cyan", "cylinder", "gray", "green",
    "metal", "no", "purple", "red", "rubber", "sphere", "yellow", "yes",
)


def tokenize(text: str) -> list[str]:
    """Splits a question or choice into words, as the released model does.

    Args:
      text: e.g. "What is responsible for the cube's entrance?".

    Returns:
      The lower-cased words with every `?` removed, split on white space.
    """
    return text.lower().replace("?", "").split()


def _check_policy(unknown: str) -> None:
    if unknown not in UNKNOWN_POLICIES:
        raise ValueError(f"unknown-word policy must be one of {UNKNOWN_POLICIES}, got {unknown!r}.")


def _where(source: str | None, scene_index: int | None, question_id: int | None,
           choice_id: int | None = None) -> str:
    parts = [f"file {source}" if source else "", f"scene_index {scene_index}"
             if scene_index is not None else "", f"question_id {question_id}"
             if question_id is not None else "", f"choice_id {choice_id}"
             if choice_id is not None else ""]
    text = ", ".join(p for p in parts if p)
    return f" ({text})" if text else ""


class Vocab:
    """Question-word ids (1..V, 0 = padding) and answer classes (0..A-1).

    Attributes:
      word_ids: word -> id, ids >= 1 (includes `<unk>` when reserved).
      answer_classes: answer -> class, classes 0..A-1.
      unknown: the default unknown-word policy of `encode`, 'error' or 'unk'.
    """

    def __init__(self, word_ids: Mapping[str, int], answer_classes: Mapping[str, int], *,
                 unknown: str = "error"):
        """Builds a vocabulary from explicit id tables.

        Args:
          word_ids: word -> id; ids must be distinct integers >= 1.
          answer_classes: answer -> class; classes must be exactly 0..A-1.
          unknown: 'error' (unknown words raise) or 'unk' (reserve `<unk>` at
            the largest word id + 1 if absent, and map unknown words to it).
        """
        _check_policy(unknown)
        word_ids = {str(w): int(i) for w, i in word_ids.items()}
        if any(i < 1 for i in word_ids.values()):
            raise ValueError("question word ids must be >= 1 (0 is the padding id).")
        if len(set(word_ids.values())) != len(word_ids):
            raise ValueError("question word ids must be distinct.")
        answer_classes = {str(a): int(c) for a, c in answer_classes.items()}
        if sorted(answer_classes.values()) != list(range(len(answer_classes))):
            raise ValueError(f"answer classes must be exactly 0..{len(answer_classes) - 1}, got "
                             f"{sorted(answer_classes.values())}.")
        if unknown == "unk" and UNK_WORD not in word_ids:
            word_ids[UNK_WORD] = max(word_ids.values(), default=0) + 1
        self.word_ids = word_ids
        self.answer_classes = answer_classes
        self.unknown = unknown
        self._answers = [a for a, _ in sorted(answer_classes.items(), key=lambda kv: kv[1])]

    # Construction and files.

    @classmethod
    def load(cls, path: str | os.PathLike, *, unknown: str = "error") -> "Vocab":
        """Reads the release format: `question_vocab` ids 1..V, `answer_vocab` ids 1..A.

        Args:
          path: a JSON file such as the release's `aloe_vocab.json`.
          unknown: the unknown-word policy (see the module docstring).

        Raises:
          ValueError: naming the file and the field when the file is malformed.
        """
        path = os.fspath(path)
        data = read_json(path)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object with 'question_vocab' and "
                             f"'answer_vocab'.")
        tables = {}
        for field in ("question_vocab", "answer_vocab"):
            table = data.get(field)
            if not isinstance(table, dict) or not all(
                    isinstance(i, int) and not isinstance(i, bool) for i in table.values()):
                raise ValueError(f"{path}: field {field!r} must be an object of word -> "
                                 f"integer id.")
            tables[field] = table
        answers = tables["answer_vocab"]
        if sorted(answers.values()) != list(range(1, len(answers) + 1)):
            raise ValueError(f"{path}: field 'answer_vocab' ids must be exactly 1..{len(answers)}.")
        try:
            return cls(tables["question_vocab"], {a: i - 1 for a, i in answers.items()},
                       unknown=unknown)
        except ValueError as err:
            raise ValueError(f"{path}: field 'question_vocab': {err}") from None

    def save(self, path: str | os.PathLike) -> None:
        """Writes the release format (answer ids = class + 1); `load` reads it back."""
        data = {
            "question_vocab": dict(sorted(self.word_ids.items(), key=lambda kv: kv[1])),
            "answer_vocab": {a: c + 1 for a, c in sorted(self.answer_classes.items(),
                                                          key=lambda kv: kv[1])},
        }
        with open(os.fspath(path), "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)

    @classmethod
    def build(cls, question_files: Sequence[str | os.PathLike], *,
              unknown: str = "error") -> "Vocab":
        """Builds a vocabulary from CLEVRER question files (normally the training split).

        Words come from every question and choice text, answers from the answers
        of descriptive questions. Both are numbered in sorted (code point) order,
        which is how the release numbered its vocabulary: a build that sees
        exactly the release's words and answers reproduces the release's ids. A
        file without descriptive answers gives an empty answer vocabulary.

        Args:
          question_files: paths of JSON files in the official question schema.
          unknown: the unknown-word policy (see the module docstring).

        Raises:
          ValueError: naming the file, scene and question when an entry lacks
            the text fields.
        """
        words: set[str] = set()
        answers: set[str] = set()
        for path in question_files:
            path = os.fspath(path)
            scenes = read_json(path)
            if not isinstance(scenes, list):
                raise ValueError(f"{path}: expected a JSON list of scenes.")
            for position, scene in enumerate(scenes):
                if not isinstance(scene, dict) or not isinstance(scene.get("questions"), list):
                    raise ValueError(f"{path}: scene entry {position} must be an object with a "
                                     f"'questions' list.")
                for question in scene["questions"]:
                    where = _where(path, scene.get("scene_index"), question.get("question_id"))
                    if not isinstance(question.get("question"), str):
                        raise ValueError(f"missing or non-text field 'question'{where}.")
                    words.update(tokenize(question["question"]))
                    for choice in question.get("choices", []):
                        if not isinstance(choice.get("choice"), str):
                            raise ValueError("missing or non-text field 'choice'" + _where(
                                path, scene.get("scene_index"), question.get("question_id"),
                                choice.get("choice_id")) + ".")
                        words.update(tokenize(choice["choice"]))
                    if question.get("question_type") == "descriptive" and "answer" in question:
                        answers.add(str(question["answer"]))
        words.discard(UNK_WORD)
        return cls({w: i + 1 for i, w in enumerate(sorted(words))},
                   {a: i for i, a in enumerate(sorted(answers))}, unknown=unknown)

    # Sizes.

    @property
    def vocab_size(self) -> int:
        """Size of an embedding table indexed by word id: the largest id + 1."""
        return max(self.word_ids.values(), default=0) + 1

    @property
    def num_answers(self) -> int:
        """Number of answer classes A."""
        return len(self.answer_classes)

    @property
    def unk_id(self) -> int | None:
        """The id of `<unk>`, or None when the vocabulary reserves none."""
        return self.word_ids.get(UNK_WORD)

    # Encoding.

    def encode(self, text: str, max_len: int, *, unknown: str | None = None,
               source: str | None = None, scene_index: int | None = None,
               question_id: int | None = None, choice_id: int | None = None) -> np.ndarray:
        """Tokenizes and encodes one text into padded word ids.

        Args:
          text: a question or choice.
          max_len: the padded length L.
          unknown: 'error' or 'unk'; default: the vocabulary's policy.
          source, scene_index, question_id, choice_id: where the text comes
            from, for error messages.

        Returns:
          int32 `[L]`: word ids followed by padding zeros.

        Raises:
          ValueError: an unknown word under 'error', 'unk' on a vocabulary
            without `<unk>`, or more than `max_len` words.
        """
        unknown = self.unknown if unknown is None else unknown
        _check_policy(unknown)
        where = _where(source, scene_index, question_id, choice_id)
        if unknown == "unk" and self.unk_id is None:
            raise ValueError(f"unknown-word policy 'unk' needs a vocabulary with {UNK_WORD!r}; "
                             f"create it with unknown='unk'{where}.")
        words = tokenize(text)
        if len(words) > max_len:
            raise ValueError(f"text has {len(words)} words, more than the maximum length "
                             f"{max_len}{where}: {text!r}.")
        ids = np.zeros([max_len], np.int32)
        for position, word in enumerate(words):
            word_id = self.word_ids.get(word)
            if word_id is None:
                if unknown == "error":
                    raise ValueError(f"unknown word {word!r}{where}: {text!r}.")
                word_id = self.unk_id
            ids[position] = word_id
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Word ids (padding skipped) back to text."""
        words_by_id = {i: w for w, i in self.word_ids.items()}
        return " ".join(words_by_id[int(i)] for i in ids if int(i) != PAD_ID)

    def answer_to_class(self, answer: str, *, source: str | None = None,
                        scene_index: int | None = None, question_id: int | None = None) -> int:
        """The class of an answer string; ValueError naming where it came from if absent."""
        answer_class = self.answer_classes.get(str(answer))
        if answer_class is None:
            raise ValueError(f"answer {answer!r} is not in the answer vocabulary"
                             f"{_where(source, scene_index, question_id)}.")
        return answer_class

    def class_to_answer(self, answer_class: int) -> str:
        """The answer string of a class 0..A-1."""
        if not 0 <= answer_class < len(self._answers):
            raise ValueError(f"answer class {answer_class} is outside 0..{len(self._answers) - 1}.")
        return self._answers[answer_class]


def release_vocab(*, unknown: str = "error") -> Vocab:
    """The released ALOE model's vocabulary (word ids 1..81, answer classes 0..20)."""
    return Vocab({w: i + 1 for i, w in enumerate(RELEASE_QUESTION_WORDS)},
                 {a: i for i, a in enumerate(RELEASE_ANSWERS)}, unknown=unknown)
