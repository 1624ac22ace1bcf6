r"""Object-state latents: ground-truth object states in the latent-store layout.

Perception and reasoning can be told apart by giving the reasoner the true
object states instead of MONet latents. This module writes them from CLEVRER
annotation files (and, through `aloe.data.cater_object_states`, from CATER scene
files) into the same stores that MONet extraction writes, so every ALOE
config, ablation and analysis runs on them unchanged:

  python -m aloe.data.object_states --annotations=$CLEVRER/annotations \
      --questions=$CLEVRER/questions --out=$LATENTS [--slot_order=identity|per_frame] \
      [--noise=0.0] [--seed=0] [--num_slots=8] [--splits=train:train,validation:valid]
  python -m aloe.data.object_states --dataset=cater --scenes=$CATER --out=$LATENTS ...

CLEVRER output (`aloe.data.clevrer_latents` reads it): `{out}/vocab.json` (the
release vocabulary, or one built from the training questions with
`--vocab=build`), `{out}/{store split}.json` (copies of the question files),
`{out}/{store split}/{scene_index}.npz` float32 `[128, num_slots, 18]`, and
`{out}/object_states.json`, the encoding (`state_layout.Layout.to_json`) and the options.

Encoding of one object in one frame (CLEVRER, `CLEVRER_LAYOUT`; dims in order):

  0-1    position (x, y) on the floor, times `position_scale` (0.25)
  2-3    velocity (vx, vy) in units per second, times `velocity_scale` (0.25)
  4      in view: 1
  5-12   one-hot colour   (gray red blue green brown yellow cyan purple)
  13-14  one-hot material (metal rubber)
  15-17  one-hot shape    (sphere cylinder cube)

A slot holding no object, and the slot of an object that is out of view or has
not entered yet, is all zeros: nothing of it leaks, as a camera would show
nothing. `--noise=S` adds Gaussian noise of standard deviation S to every
dimension of the occupied slots (empty slots stay zero). Slot order:
`identity` puts object `object_id` in slot `object_id` in every frame (object
identity is kept, as a tracker would); `per_frame` draws a new random slot
permutation in every frame, as MONet's slots are ordered. Noise and
permutations are a function of (seed, scene_index) alone.
"""

import argparse
import os
import re
import shutil
import sys
from typing import Any, Mapping, Sequence

import numpy as np

from aloe import json_io
from aloe.data import cater_object_states
from aloe.data import latents as latents_lib
from aloe.data import state_layout
from aloe.data import vocab as vocab_lib

CLEVRER_COLORS = ("gray", "red", "blue", "green", "brown", "yellow", "cyan", "purple")
CLEVRER_MATERIALS = ("metal", "rubber")
CLEVRER_SHAPES = ("sphere", "cylinder", "cube")
CLEVRER_LAYOUT = state_layout.Layout(
    continuous=(("position", 2, 0.25), ("velocity", 2, 0.25)),
    categorical=(("color", CLEVRER_COLORS), ("material", CLEVRER_MATERIALS),
                 ("shape", CLEVRER_SHAPES)))


def _field(entry: Any, name: str, source: str) -> Any:
    if not isinstance(entry, Mapping) or name not in entry:
        raise ValueError(f"{source}: missing field '{name}'.")
    return entry[name]


def clevrer_object_states(annotation: Mapping[str, Any], *, num_slots: int = 8,
                          slot_order: str = "identity", noise: float = 0.0, seed: int = 0,
                          source: str = "<annotation>") -> np.ndarray:
    """float32 `[frames, num_slots, 18]` object states of one CLEVRER annotation.

    Args:
      annotation: the official annotation schema (DESIGN.md §6).
      num_slots, slot_order, noise, seed: see the module docstring.
      source: the file, for error messages.
    """
    scene_index = int(_field(annotation, "scene_index", source))
    properties = _field(annotation, "object_property", source)
    trajectory = _field(annotation, "motion_trajectory", source)
    if not isinstance(properties, list) or not isinstance(trajectory, list) or not trajectory:
        raise ValueError(f"{source}: 'object_property' and 'motion_trajectory' must be "
                         f"non-empty lists.")
    ids = [int(_field(p, "object_id", source)) for p in properties]
    column = {object_id: j for j, object_id in enumerate(ids)}
    static = [{name: _field(p, name, source) for name, _ in CLEVRER_LAYOUT.categorical}
              for p in properties]
    for object_id, values in zip(ids, static):  # Names the object of a bad value.
        CLEVRER_LAYOUT.encode({"position": (0, 0), "velocity": (0, 0)}, values,
                              f"{source} object {object_id}")
    objects = np.zeros((len(trajectory), len(ids), CLEVRER_LAYOUT.dim), np.float32)
    visible = np.zeros((len(trajectory), len(ids)), bool)
    for t, frame in enumerate(trajectory):
        for state in _field(frame, "objects", f"{source} frame {t}"):
            where = f"{source} frame {t}"
            object_id = int(_field(state, "object_id", where))
            if object_id not in column:
                raise ValueError(f"{where}: object_id {object_id} is not in 'object_property'.")
            j = column[object_id]
            continuous = {"position": _field(state, "location", where),
                          "velocity": _field(state, "velocity", where)}
            objects[t, j] = CLEVRER_LAYOUT.encode(continuous, static[j], where)
            visible[t, j] = bool(_field(state, "inside_camera_view", where))
    if slot_order == "identity" and max(ids) >= num_slots:
        raise ValueError(f"{source}: object_id {max(ids)} has no slot of num_slots = {num_slots}.")
    if slot_order == "identity":  # Object ids are slots.
        by_id = np.zeros((len(trajectory), max(ids) + 1, CLEVRER_LAYOUT.dim), np.float32)
        seen = np.zeros((len(trajectory), max(ids) + 1), bool)
        by_id[:, ids], seen[:, ids] = objects, visible
        objects, visible = by_id, seen
    rng = np.random.default_rng([seed, scene_index])
    return state_layout.arrange_slots(objects, visible, num_slots, slot_order, noise, rng, source)


def annotation_files(folder: str) -> list[str]:
    """Every `annotation_*.json` below `folder` (CLEVRER's chunk folders), sorted."""
    found = []
    for root, _, names in os.walk(folder):
        found += [os.path.join(root, n) for n in names
                  if re.fullmatch(r"annotation_\d+\.json", n)]
    if not found:
        raise FileNotFoundError(f"{folder}: no annotation_*.json files.")
    return sorted(found)


def split_pairs(text: str) -> list[tuple[str, str]]:
    """'train:train,validation:valid' -> [(source split, store split), ...]."""
    pairs = []
    for item in text.split(","):
        source, sep, target = item.strip().partition(":")
        if not sep or not source or not target:
            raise ValueError(f"--splits item {item!r}: expected SOURCE:STORE.")
        pairs.append((source, target))
    return pairs


def write_clevrer(annotations: str, questions: str, out: str, *,
                  splits: Sequence[tuple[str, str]] = (("train", "train"),
                                                       ("validation", "valid")),
                  num_slots: int = 8, slot_order: str = "identity", noise: float = 0.0,
                  seed: int = 0, vocab: str = "release") -> dict[str, int]:
    """Writes a CLEVRER object-state store (layout in the module docstring).

    Args:
      annotations: the folder holding `{split}/.../annotation_N.json`.
      questions: the folder holding `{split}.json` question files.
      out: the store root.
      splits: (annotation / question split, store split) pairs.
      num_slots, slot_order, noise, seed: see the module docstring.
      vocab: "release" (the release vocabulary) or "build" (from the training
        questions of the first split).

    Returns:
      Scenes written per store split.
    """
    if vocab not in ("release", "build"):
        raise ValueError(f"--vocab must be 'release' or 'build', got {vocab!r}.")
    os.makedirs(out, exist_ok=True)
    written = {}
    for source_split, store_split in splits:
        question_file = os.path.join(questions, f"{source_split}.json")
        if not os.path.isfile(question_file):
            raise FileNotFoundError(f"{question_file}: question file of split "
                                    f"{source_split!r} does not exist.")
        target = os.path.join(out, f"{store_split}.json")
        shutil.copyfile(question_file, target + ".tmp")
        os.replace(target + ".tmp", target)
        store = latents_lib.LatentStore(out, store_split)
        count = 0
        for path in annotation_files(os.path.join(annotations, source_split)):
            annotation = json_io.read_json(path)
            store.write(int(_field(annotation, "scene_index", path)), clevrer_object_states(
                annotation, num_slots=num_slots, slot_order=slot_order, noise=noise, seed=seed,
                source=path))
            count += 1
        written[store_split] = count
    table = (vocab_lib.release_vocab() if vocab == "release" else vocab_lib.Vocab.build(
        [os.path.join(questions, f"{splits[0][0]}.json")]))
    table.save(os.path.join(out, "vocab.json"))
    state_layout.write_metadata(out, CLEVRER_LAYOUT, {"dataset": "clevrer", "num_slots": num_slots,
                                         "slot_order": slot_order, "noise": noise,
                                         "seed": seed, "scenes": written})
    return written


def main(argv: Sequence[str] | None = None) -> dict[str, int]:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("clevrer", "cater"), default="clevrer")
    parser.add_argument("--out", required=True, help="latent store root to write")
    parser.add_argument("--annotations", help="CLEVRER: folder of {split}/.../annotation_N.json")
    parser.add_argument("--questions", help="CLEVRER: folder of {split}.json question files")
    parser.add_argument("--scenes", help="CATER: root holding {variant}/scenes and lists")
    parser.add_argument("--splits", default=None,
                        help="SOURCE:STORE pairs (CLEVRER default train:train,validation:"
                             "valid; CATER default train:train,val:valid)")
    parser.add_argument("--num_slots", type=int, default=None,
                        help="slots per frame (CLEVRER default 8, CATER 10)")
    parser.add_argument("--slot_order", choices=state_layout.SLOT_ORDERS, default="identity")
    parser.add_argument("--noise", type=float, default=0.0, help="Gaussian noise std")
    parser.add_argument("--seed", type=int, default=0, help="seeds permutations and noise")
    parser.add_argument("--vocab", choices=("release", "build"), default="release")
    args = parser.parse_args(argv)
    if args.noise < 0:
        parser.error(f"--noise must be >= 0, got {args.noise}.")
    if args.dataset == "cater":
        if not args.scenes:
            parser.error("--dataset=cater needs --scenes.")
        written = cater_object_states.write_cater(
            args.scenes, args.out, splits=split_pairs(args.splits or "train:train,val:valid"),
            num_slots=args.num_slots or 10, slot_order=args.slot_order, noise=args.noise,
            seed=args.seed)
    else:
        if not args.annotations or not args.questions:
            parser.error("--dataset=clevrer needs --annotations and --questions.")
        written = write_clevrer(
            args.annotations, args.questions, args.out,
            splits=split_pairs(args.splits or "train:train,validation:valid"),
            num_slots=args.num_slots or 8, slot_order=args.slot_order, noise=args.noise,
            seed=args.seed, vocab=args.vocab)
    print(f"Wrote object-state latents to {args.out}: "
          + ", ".join(f"{split} {n}" for split, n in written.items()))
    return written


if __name__ == "__main__":
    main(sys.argv[1:])
