r"""CATER object-state latents from scene files, in the layout of `aloe.data.cater_latents`.

  python -m aloe.data.object_states --dataset=cater --scenes=$CATER --out=$LATENTS \
      [--slot_order=identity|per_frame] [--noise=0.0] [--seed=0] [--num_slots=10]

`$CATER` holds one folder per variant (`all_actions`, `all_actions_cameramotion`)
with `scenes/CATER_new_N.json` and `lists/localize/{train,val}.txt`. Written:
`{out}/{store split}_labels.json` (label, camera, and `snitch_contained_at_end`),
`{out}/{store split}/{variant}/CATER_new_N.npy` float32 `[301, num_slots, 26]`
and `{out}/object_states.json` (layout and options).

Encoding of one object in one frame (`CATER_LAYOUT`; dims in order):

  0-2    position (x, y, z) in world coordinates, times 1/3
  3-5    velocity: the backward difference of the position per frame (0 at
         frame 0), times 3
  6      in view: 1
  7-11   one-hot shape    (cube sphere cylinder cone spl; the snitch is spl)
  12-14  one-hot size     (small medium large)
  15-16  one-hot material (rubber metal)
  17-25  one-hot colour   (gray red blue green brown purple cyan yellow gold)

An object under a cone is out of view: its slot is all zeros. Containment is
read from the scene's `movements` as CATER records them: a cone's
`["_contain", X, start, end]` covers X from frame `end` on, and the cone's next
`["_pick_place", ...]` starting at frame s uncovers it from frame s + 1.
Positions are world coordinates, so the camera's motion does not show. Slot
order and noise as in `aloe.data.object_states`, drawn from (seed, variant, N).
"""

import os
from typing import Any, Mapping, Sequence

import numpy as np

from aloe import json_io
from aloe.cater import grid
from aloe.data import cater_latents
from aloe.data import state_layout

CATER_LAYOUT = state_layout.Layout(
    continuous=(("position", 3, 1.0 / 3.0), ("velocity", 3, 3.0)),
    categorical=(("shape", ("cube", "sphere", "cylinder", "cone", "spl")),
                 ("size", ("small", "medium", "large")),
                 ("material", ("rubber", "metal")),
                 ("color", ("gray", "red", "blue", "green", "brown", "purple", "cyan",
                            "yellow", "gold"))))
VARIANT_CAMERAS = {"all_actions": "static", "all_actions_cameramotion": "moving"}


def _locations(obj: Mapping[str, Any], source: str) -> np.ndarray:
    """float64 `[frames, 3]` from CATER's `{"0": [x, y, z], ...}`."""
    locations = obj.get("locations") if isinstance(obj, Mapping) else None
    if not isinstance(locations, Mapping) or not locations:
        raise ValueError(f"{source}: missing or empty field 'locations'.")
    try:
        frames = sorted(int(k) for k in locations)
        values = np.array([locations[str(t)] for t in frames], np.float64)
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"{source}: field 'locations' is malformed ({err}).") from None
    if frames != list(range(len(frames))) or values.shape != (len(frames), 3):
        raise ValueError(f"{source}: field 'locations' must map frames 0..N-1 to [x, y, z].")
    return values


def contained(scene: Mapping[str, Any], num_frames: int, source: str) -> np.ndarray:
    """bool `[objects, frames]`: the object is under a cone (see the module docstring)."""
    objects = scene["objects"]
    index = {obj.get("instance"): i for i, obj in enumerate(objects)}
    movements = scene.get("movements", {})
    if not isinstance(movements, Mapping):
        raise ValueError(f"{source}: field 'movements' must map instances to action lists.")
    events = []  # (frame from which it applies, object, hidden)
    for cone, actions in movements.items():
        content = None
        for action in sorted(actions, key=lambda a: a[2]):
            name, other, start, end = action
            if name == "_contain":
                if other not in index:
                    raise ValueError(f"{source}: movements of {cone!r} contain unknown "
                                     f"object {other!r}.")
                content = index[other]
                events.append((int(end), content, True))
            elif name == "_pick_place" and content is not None:
                events.append((int(start) + 1, content, False))
                content = None
    hidden = np.zeros((len(objects), num_frames), bool)
    for frame, obj, value in sorted(events, key=lambda e: e[0]):
        hidden[obj, frame:] = value
    return hidden


def cater_object_states(scene: Mapping[str, Any], *, num_slots: int = 10,
                        slot_order: str = "identity", noise: float = 0.0,
                        rng: np.random.Generator | None = None,
                        source: str = "<scene>") -> tuple[np.ndarray, np.ndarray]:
    """Object states `[frames, num_slots, 26]` and containment `[objects, frames]` of a scene."""
    objects = scene.get("objects") if isinstance(scene, Mapping) else None
    if not isinstance(objects, list) or not objects:
        raise ValueError(f"{source}: missing or empty field 'objects'.")
    positions = np.stack([_locations(o, f"{source} object {i}") for i, o in enumerate(objects)],
                         axis=1)  # [frames, n, 3]
    velocities = np.concatenate([np.zeros_like(positions[:1]), np.diff(positions, axis=0)])
    frames = positions.shape[0]
    encoded = np.zeros((frames, len(objects), CATER_LAYOUT.dim), np.float32)
    for j, obj in enumerate(objects):
        where = f"{source} object {j}"
        static = {name: obj.get(name) for name, _ in CATER_LAYOUT.categorical}
        for t in range(frames):
            encoded[t, j] = CATER_LAYOUT.encode({"position": positions[t, j],
                                                 "velocity": velocities[t, j]}, static, where)
    hidden = contained(scene, frames, source)
    rng = rng if rng is not None else np.random.default_rng(0)
    states = state_layout.arrange_slots(encoded, ~hidden.T, num_slots, slot_order, noise,
                                         rng, source)
    return states, hidden


def _list_entries(path: str) -> list[tuple[str, int]]:
    """(video stem, class) of each line of a `lists/localize/{split}.txt` file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: localization list does not exist.")
    stems = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                parts = line.split()
                if len(parts) != 2:
                    raise ValueError(f"{path}:{number}: expected '<video file> <class>'.")
                if not parts[1].isdigit() or int(parts[1]) >= grid.NUM_CELLS:
                    raise ValueError(f"{path}:{number}: class {parts[1]!r} is not 0..35.")
                stems.append((os.path.splitext(parts[0])[0], int(parts[1])))
    return stems


def write_cater(root: str, out: str, *, splits: Sequence[tuple[str, str]] = (
                    ("train", "train"), ("val", "valid")),
                num_slots: int = 10, slot_order: str = "identity", noise: float = 0.0,
                seed: int = 0) -> dict[str, int]:
    """Writes a CATER object-state store of every variant found under `root`.

    Returns:
      Videos written per store split.
    """
    variants = [v for v in VARIANT_CAMERAS if os.path.isdir(os.path.join(root, v, "scenes"))]
    if not variants:
        raise FileNotFoundError(f"{root}: no variant folder ({tuple(VARIANT_CAMERAS)}) with "
                                f"scenes/.")
    written = {}
    for source_split, store_split in splits:
        store = cater_latents.CaterLatentStore(out, store_split)
        labels = {}
        for variant in variants:
            lists = os.path.join(root, variant, "lists", "localize", f"{source_split}.txt")
            for stem, label in _list_entries(lists):
                path = os.path.join(root, variant, "scenes", stem + ".json")
                scene = json_io.read_json(path)
                number = int("".join(c for c in stem if c.isdigit()) or 0)
                rng = np.random.default_rng([seed, list(VARIANT_CAMERAS).index(variant), number])
                states, hidden = cater_object_states(scene, num_slots=num_slots,
                                                     slot_order=slot_order, noise=noise,
                                                     rng=rng, source=path)
                snitch = [i for i, o in enumerate(scene["objects"]) if o.get("shape") == "spl"]
                if len(snitch) != 1:
                    raise ValueError(f"{path}: expected exactly one object of shape 'spl'.")
                name = f"{variant}/{stem}"
                store.write(name, states)
                labels[name] = {"label": label,
                                "camera": VARIANT_CAMERAS[variant],
                                "snitch_contained_at_end": bool(hidden[snitch[0], -1])}
        cater_latents.write_labels(out, store_split, labels)
        written[store_split] = len(labels)
    state_layout.write_metadata(out, CATER_LAYOUT, {
        "dataset": "cater", "num_slots": num_slots, "slot_order": slot_order, "noise": noise,
        "seed": seed, "videos": written})
    return written
