r"""A small generated CLEVRER latent dataset whose answers follow from the latents.

  python -m aloe.synthetic.toy_latents --out /tmp/toy --num_train 64 --num_valid 24 --seed 0

writes, in seconds, the latent store layout of the ALOE release (DESIGN.md §4):
`vocab.json` (the release vocabulary), `train.json` / `valid.json` (the official
CLEVRER question schema, with programs in CLEVRER's module language) and
`{train,valid}/{scene_index}.npz` latents float32 `[128 frames, 8 slots, 16]`.
Train scenes are numbered from 0, validation scenes from 10000 (as CLEVRER).
It stands in for MONet latents of real videos so that the whole training
system can be exercised, and a small model can be seen to learn, on a laptop.

Latents. Each scene has 3-6 objects of distinct colours (so every object has
a one-word description, its colour, at least); colours, materials and shapes
are CLEVRER's. Slot 0 is the background (dim 15
set to 1); the objects occupy the slots of a random permutation of 1..7, fixed
for the whole video; the other slots are empty. An object's vector is:

  dims 0-7    one-hot colour (order of `aloe.clevrer.program.COLORS`)
  dims 8-10   one-hot shape (order of `SHAPES`)
  dim  11     material: 1 metal, 0 rubber
  dims 12-13  x, y position in [-0.9, 0.9]: constant for a stationary object; a
              moving object travels in a straight line at constant speed from
              its start to its end point, at least 1.0 apart
  dim  14     present: 1

Every entry of every frame gets Gaussian noise (std 0.02); empty slots are
noise only. Every scene has at least one moving and one stationary object and
both materials.

Questions (all words from the release vocabulary, all answers from its answer
vocabulary; referring expressions are the shortest that single out their
object, and never name the attribute being asked about):

  descriptive, `question_subtype` = family, 2 questions per family per scene:
    query_color     "What is the color of the metal cube?"
    query_shape     "What is the shape of the red object?"
    query_material  "What is the material of the green sphere?"
    count           "How many cylinders are there?", "How many objects are moving?"
                    (answers 0-5)
    exist           "Are there any red cubes?" (yes / no)
  multiple choice, 2-4 choices ("the red cube", ...) with at least one correct
  and one wrong, about half correct, 2 questions per type per scene:
    explanatory     "Which of the following is metal?"
    predictive      "Which of the following is moving?"
    counterfactual  "Which of the following is metal and moving?"
  (choices never mention the material when the question asks about it; a scene
  with no moving metal object, or where a type cannot have both a correct and a
  wrong choice, gets no question of that type).

The three multiple-choice families are toy questions mapped onto CLEVRER's
three types only so that the per-type metrics and files are exercised; they
test attribute and motion recognition, not explanation, prediction or
counterfactual reasoning. Within each descriptive family the answers are
balanced: each question takes, among the answers the scene allows, one used
least so far in its split (ties broken at random).

No multiple-choice family asks for the opposite of another ("rubber",
"stationary"): a label that depends on the question word and the object's
attribute together (an exclusive or) leaves the attribute alone uncorrelated
with the label, and a small model then took far longer to learn anything of
multiple choice. "Stationary" appears in descriptive counting instead.
"""

import argparse
import collections
import dataclasses
import itertools
import json
import os
from typing import Sequence

import numpy as np

from aloe.clevrer.program import COLORS, MATERIALS, SHAPES, WHOLE_VIDEO
from aloe.data import latents as latents_lib
from aloe.data import questions as questions_lib
from aloe.data import vocab as vocab_lib

NUM_FRAMES, NUM_SLOTS, LATENT_DIM = 128, 8, 16
COLOR_DIMS, SHAPE_DIMS, METAL_DIM = slice(0, 8), slice(8, 11), 11
POSITION_DIMS, PRESENT_DIM, BACKGROUND_DIM = slice(12, 14), 14, 15
NOISE_STD = 0.02
ARENA = 0.9            # Positions lie in [-ARENA, ARENA]^2.
MIN_TRAVEL = 1.0       # A moving object's start and end points are at least this far apart.
MIN_OBJECTS, MAX_OBJECTS = 3, 6
VALID_SCENE_OFFSET = 10000
QUESTIONS_PER_FAMILY = 2
DESCRIPTIVE_FAMILIES = ("query_color", "query_shape", "query_material", "count", "exist")
# Multiple-choice type -> the property its choices are judged on (as the question says it).
MC_FAMILIES = {"explanatory": "metal", "predictive": "moving",
               "counterfactual": "metal and moving"}
ATTRIBUTES = ("color", "material", "shape")
_PLURALS = {"sphere": "spheres", "cylinder": "cylinders", "cube": "cubes"}
_MAX_COUNT_ANSWER = 5


@dataclasses.dataclass(frozen=True)
class ToyObject:
    """One object of a toy scene."""
    color: str
    material: str
    shape: str
    moving: bool
    slot: int
    start: tuple[float, float]
    end: tuple[float, float]

    def value(self, attribute: str) -> str:
        """The object's colour, material or shape."""
        return getattr(self, attribute)


@dataclasses.dataclass(frozen=True)
class _Candidate:
    text: str
    program: list[str]
    answer: str


def make_scene(rng: np.random.Generator) -> list[ToyObject]:
    """Draws 3-6 objects of distinct colours, with slots and motion (see the module docstring)."""
    num_objects = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
    colors = rng.choice(len(COLORS), num_objects, replace=False)
    picked = [(COLORS[c], MATERIALS[int(rng.integers(2))], SHAPES[int(rng.integers(3))])
              for c in colors]
    if len({m for _, m, _ in picked}) == 1:  # Both materials: flip one object's.
        color, material, shape = picked[0]
        picked[0] = (color, MATERIALS[1 - MATERIALS.index(material)], shape)
    num_moving = int(rng.integers(1, num_objects))
    moving = np.zeros(num_objects, bool)
    moving[rng.choice(num_objects, num_moving, replace=False)] = True
    slots = rng.permutation(np.arange(1, NUM_SLOTS))[:num_objects]
    objects = []
    for (color, material, shape), is_moving, slot in zip(picked, moving, slots):
        start = rng.uniform(-ARENA, ARENA, 2)
        end = start
        while is_moving and np.linalg.norm(end - start) < MIN_TRAVEL:
            end = rng.uniform(-ARENA, ARENA, 2)
        objects.append(ToyObject(color, material, shape, bool(is_moving), int(slot),
                                 tuple(map(float, start)), tuple(map(float, end))))
    return objects


def render_latents(objects: Sequence[ToyObject], rng: np.random.Generator) -> np.ndarray:
    """float32 `[128, 8, 16]`: the latents of a scene (layout in the module docstring)."""
    latents = rng.normal(0.0, NOISE_STD, (NUM_FRAMES, NUM_SLOTS, LATENT_DIM))
    latents[:, 0, BACKGROUND_DIM] += 1.0
    progress = np.linspace(0.0, 1.0, NUM_FRAMES)[:, None]
    for obj in objects:
        features = np.zeros(LATENT_DIM)
        features[COLOR_DIMS.start + COLORS.index(obj.color)] = 1.0
        features[SHAPE_DIMS.start + SHAPES.index(obj.shape)] = 1.0
        features[METAL_DIM] = float(obj.material == "metal")
        features[PRESENT_DIM] = 1.0
        latents[:, obj.slot] += features
        start, end = np.asarray(obj.start), np.asarray(obj.end)
        latents[:, obj.slot, POSITION_DIMS] += start + progress * (end - start)
    return latents.astype(np.float32)


# Referring expressions and filters.

def _matching(objects: Sequence[ToyObject], values: dict[str, str]) -> list[ToyObject]:
    return [o for o in objects if all(o.value(a) == v for a, v in values.items())]


def _filter_program(values: dict[str, str]) -> list[str]:
    """`objects` filtered by colour, material, shape (in that order)."""
    program = ["objects"]
    for attribute in ATTRIBUTES:
        if attribute in values:
            program += [values[attribute], f"filter_{attribute}"]
    return program


def _adjectives(values: dict[str, str]) -> list[str]:
    return [values[a] for a in ("color", "material") if a in values]


def referring_expressions(objects: Sequence[ToyObject], target: ToyObject,
                          allowed: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The shortest descriptions from `allowed` attributes that single out `target`.

    Returns:
      (text, program) pairs, e.g. ("the red cube", ["objects", "red",
      "filter_color", "cube", "filter_shape", "unique"]); empty if none exists.
    """
    for size in range(1, len(allowed) + 1):
        found = []
        for attributes in itertools.combinations(allowed, size):
            values = {a: target.value(a) for a in attributes}
            if len(_matching(objects, values)) == 1:
                words = ["the"] + _adjectives(values) + [values.get("shape", "object")]
                found.append((" ".join(words), _filter_program(values) + ["unique"]))
        if found:
            return found
    return []


def _filters() -> list[dict[str, str]]:
    """No filter, one attribute, and material or colour with a shape."""
    single = [{a: v} for a, vs in zip(ATTRIBUTES, (COLORS, MATERIALS, SHAPES)) for v in vs]
    pairs = [{"color": c, "shape": s} for c in COLORS for s in SHAPES]
    pairs += [{"material": m, "shape": s} for m in MATERIALS for s in SHAPES]
    return [{}] + single + pairs


def _noun_phrase(values: dict[str, str]) -> str:
    noun = _PLURALS[values["shape"]] if "shape" in values else "objects"
    return " ".join(_adjectives(values) + [noun])


# Question families.

def _query_candidates(objects: Sequence[ToyObject], asked: str) -> list[_Candidate]:
    allowed = [a for a in ATTRIBUTES if a != asked]
    return [_Candidate(f"What is the {asked} of {text}?", program + [f"query_{asked}"],
                       obj.value(asked))
            for obj in objects for text, program in referring_expressions(objects, obj, allowed)]


def _count_candidates(objects: Sequence[ToyObject]) -> list[_Candidate]:
    found = []
    for values in _filters():
        if len(values) > 1:
            continue
        matching = _matching(objects, values)
        phrase = _noun_phrase(values)
        found.append(_Candidate(f"How many {phrase} are there?",
                                _filter_program(values) + ["count"], str(len(matching))))
        if not values:
            for motion in ("moving", "stationary"):
                count = sum(o.moving == (motion == "moving") for o in matching)
                found.append(_Candidate(f"How many objects are {motion}?",
                                        ["objects", WHOLE_VIDEO, f"filter_{motion}", "count"],
                                        str(count)))
    return [c for c in found if int(c.answer) <= _MAX_COUNT_ANSWER]


def _exist_candidates(objects: Sequence[ToyObject]) -> list[_Candidate]:
    return [_Candidate(f"Are there any {_noun_phrase(values)}?",
                       _filter_program(values) + ["exist"],
                       "yes" if _matching(objects, values) else "no")
            for values in _filters() if values]


def _descriptive_candidates(objects: Sequence[ToyObject], family: str) -> list[_Candidate]:
    if family.startswith("query_"):
        return _query_candidates(objects, family[len("query_"):])
    return _count_candidates(objects) if family == "count" else _exist_candidates(objects)


class AnswerBalancer:
    """Picks questions whose answers are used least so far within their family."""

    def __init__(self):
        self.counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

    def pick(self, rng: np.random.Generator, family: str, options: dict[str, list]):
        """A random option with an answer among the least used; None if there is none."""
        answers = sorted(a for a, found in options.items() if found)
        if not answers:
            return None
        least = min(self.counts[family][a] for a in answers)
        tied = [a for a in answers if self.counts[family][a] == least]
        answer = tied[int(rng.integers(len(tied)))]
        self.counts[family][answer] += 1
        found = options[answer]
        return found[int(rng.integers(len(found)))]


def _multiple_choice(rng: np.random.Generator, objects: Sequence[ToyObject],
                     question_type: str) -> dict | None:
    """One multiple-choice question (without question_id), or None if the scene allows none."""
    metal = ["metal", "filter_material"]
    moving = [WHOLE_VIDEO, "filter_moving"]
    if question_type == "explanatory":
        holds = [o.material == "metal" for o in objects]
        filters, allowed = metal, ("color", "shape")
    elif question_type == "predictive":
        holds = [o.moving for o in objects]
        filters, allowed = moving, ATTRIBUTES
    else:
        holds = [o.moving and o.material == "metal" for o in objects]
        filters, allowed = metal + moving, ("color", "shape")
    text = f"Which of the following is {MC_FAMILIES[question_type]}?"
    program = ["objects"] + filters
    described = [(referring_expressions(objects, o, allowed), h) for o, h in zip(objects, holds)]
    correct = [d for d, h in described if d and h]
    wrong = [d for d, h in described if d and not h]
    if not correct or not wrong:
        return None
    num_choices = min(int(rng.integers(2, 5)), len(correct) + len(wrong))
    num_correct = int(rng.integers(max(1, num_choices - len(wrong)),
                                   min(num_choices - 1, len(correct)) + 1))
    picked = [(correct[i], "correct") for i in rng.choice(len(correct), num_correct, False)]
    picked += [(wrong[i], "wrong") for i in rng.choice(len(wrong), num_choices - num_correct,
                                                       False)]
    choices = []
    for choice_id, index in enumerate(rng.permutation(len(picked))):
        expressions, answer = picked[index]
        choice_text, choice_program = expressions[int(rng.integers(len(expressions)))]
        choices.append({"choice_id": choice_id, "choice": choice_text,
                        "program": choice_program, "answer": answer})
    return {"question": text, "question_type": question_type,
            "program": program + ["belong_to"], "choices": choices}


def make_questions(rng: np.random.Generator, objects: Sequence[ToyObject],
                   balancer: AnswerBalancer) -> list[dict]:
    """The questions of one scene in the official schema, question ids from 0."""
    entries: list[dict] = []
    for family in DESCRIPTIVE_FAMILIES:
        candidates = _descriptive_candidates(objects, family)
        for _ in range(QUESTIONS_PER_FAMILY):
            options: dict[str, list[_Candidate]] = collections.defaultdict(list)
            for candidate in candidates:
                options[candidate.answer].append(candidate)
            chosen = balancer.pick(rng, family, options)
            if chosen is None:
                break
            candidates = [c for c in candidates if c.text != chosen.text]
            entries.append({"question": chosen.text, "question_type": "descriptive",
                            "question_subtype": family, "program": chosen.program,
                            "answer": chosen.answer})
    for question_type in MC_FAMILIES:
        for _ in range(QUESTIONS_PER_FAMILY):
            entry = _multiple_choice(rng, objects, question_type)
            if entry is not None:
                entries.append(entry)
    return [{"question_id": i, **entry} for i, entry in enumerate(entries)]


def write_toy_dataset(out: str | os.PathLike, num_train: int, num_valid: int, seed: int) -> None:
    """Writes a toy latent store in the release layout (see the module docstring).

    Args:
      out: the store's root folder (created if needed; existing files of the
        same names are replaced).
      num_train: train scenes (indices 0..num_train-1), at least 1.
      num_valid: validation scenes (indices 10000..), at least 1.
      seed: seeds everything; each split has its own stream, so changing one
        split's size leaves the other unchanged.
    """
    if num_train < 1 or num_valid < 1:
        raise ValueError(f"num_train and num_valid must be >= 1, got {num_train}, {num_valid}.")
    if num_train > VALID_SCENE_OFFSET:
        raise ValueError(f"num_train must be <= {VALID_SCENE_OFFSET}, got {num_train}.")
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    vocab = vocab_lib.release_vocab()
    vocab.save(os.path.join(out, "vocab.json"))
    for split_id, (split, count, first) in enumerate(
            (("train", num_train, 0), ("valid", num_valid, VALID_SCENE_OFFSET))):
        rng = np.random.default_rng([seed, split_id])
        balancer = AnswerBalancer()
        store = latents_lib.LatentStore(out, split, (NUM_FRAMES, NUM_SLOTS, LATENT_DIM))
        scenes = []
        for scene_index in range(first, first + count):
            objects = make_scene(rng)
            store.write(scene_index, render_latents(objects, rng))
            scenes.append({"scene_index": scene_index,
                           "video_filename": f"video_{scene_index:05d}.mp4",
                           "questions": make_questions(rng, objects, balancer)})
        path = os.path.join(out, f"{split}.json")
        # Every text must encode with the release vocabulary and fit the release lengths.
        questions_lib.parse_questions(scenes, vocab, source=path)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(scenes, f)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: `--out DIR --num_train N --num_valid M --seed S`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="Output folder (the store's root).")
    parser.add_argument("--num_train", type=int, default=64, help="Train scenes.")
    parser.add_argument("--num_valid", type=int, default=24, help="Validation scenes.")
    parser.add_argument("--seed", type=int, default=0, help="Random seed.")
    args = parser.parse_args(argv)
    write_toy_dataset(args.out, args.num_train, args.num_valid, args.seed)
    print(f"Wrote {args.num_train} train and {args.num_valid} validation scenes to {args.out}.")


if __name__ == "__main__":
    main()
