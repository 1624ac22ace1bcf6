"""Hand-built CLEVRER scenes with straight-line motions, in the official annotation format.

An object is described by its attributes, the frames where it is in view
(`visible=(first, stop)`), the frames where it moves (`moving=(first, stop)`) and
its ground-plane velocity while it moves; positions follow by integration.
Collisions are listed by hand as `(object_a, object_b, frame)`.
"""

import itertools

import numpy as np

from aloe.clevrer import program

FPS = 25.0


def spec(color: str, material: str, shape: str, visible: tuple[int, int] = (0, 10**6),
         moving: tuple[int, int] = (0, 0), velocity: tuple[float, float] = (0.0, 0.0),
         start: tuple[float, float] = (0.0, 0.0)) -> dict:
    """One object's attributes and straight-line motion."""
    return dict(color=color, material=material, shape=shape, visible=visible, moving=moving,
                velocity=velocity, start=start)


def trajectory(specs: dict[int, dict], frames: range, absent: int | None = None) -> list[dict]:
    """`motion_trajectory` entries of the given frames (the `absent` object left out)."""
    out = []
    for t in frames:
        objects = []
        for object_id, s in specs.items():
            if object_id == absent:
                continue
            moving = s["moving"][0] <= t < s["moving"][1]
            travelled = (np.clip(t, *s["moving"]) - s["moving"][0]) / FPS
            location = [s["start"][0] + s["velocity"][0] * travelled,
                        s["start"][1] + s["velocity"][1] * travelled, 0.35]
            velocity = [*s["velocity"], 0.0] if moving else [0.0, 0.0, 0.0]
            objects.append({"object_id": object_id, "location": [float(x) for x in location],
                            "orientation": [0.0, 0.0, 0.0, 1.0],
                            "velocity": [float(v) for v in velocity],
                            "angular_velocity": [0.0, 0.0, 0.0],
                            "inside_camera_view": bool(s["visible"][0] <= t < s["visible"][1])})
        out.append({"frame_id": t, "objects": objects})
    return out


def collision_list(collisions) -> list[dict]:
    """`collision` entries from `(a, b, frame)` triples."""
    return [{"object_ids": [a, b], "frame_id": frame, "location": [0.0, 0.0, 0.0]}
            for a, b, frame in collisions]


def annotation(specs: dict[int, dict], collisions, num_frames: int, scene_index: int = 0) -> dict:
    """The official annotation dict of the observed frames 0..num_frames-1."""
    return {"scene_index": scene_index, "video_filename": f"video_{scene_index:05d}.mp4",
            "object_property": [{"object_id": o, "color": s["color"], "material": s["material"],
                                 "shape": s["shape"]} for o, s in specs.items()],
            "motion_trajectory": trajectory(specs, range(num_frames)),
            "collision": collision_list(collisions)}


def world(specs: dict[int, dict], collisions, frames: range, absent: int | None = None) -> dict:
    """A future or counterfactual world: its trajectory frames and collisions."""
    return {"motion_trajectory": trajectory(specs, frames, absent),
            "collision": collision_list(collisions)}


def random_worlds(rng: np.random.Generator, scene_index: int, num_frames: int = 24,
                  future_frames: int = 12) -> tuple[dict, dict, dict]:
    """A random scene: (annotation, future, counterfactuals for every object).

    Objects enter and exit at random frames and move in straight lines; collisions
    are drawn between objects in view. A counterfactual world keeps each collision
    not involving the removed object with probability 0.7 and may add a new one.
    """
    total = num_frames + future_frames
    specs = {}
    for object_id in range(int(rng.integers(3, 7))):
        enter = int(rng.integers(1, num_frames - 6)) if rng.random() < 0.35 else 0
        leave = int(rng.integers(enter + 4, total + 6)) if rng.random() < 0.35 else 10**6
        move_from = int(rng.integers(0, num_frames))
        move_to = int(rng.integers(move_from, total + 1)) if rng.random() < 0.7 else move_from
        angle = rng.uniform(0, 2 * np.pi)
        specs[object_id] = spec(str(rng.choice(program.COLORS[:4])), str(rng.choice(program.MATERIALS)),
                                str(rng.choice(program.SHAPES)), (enter, leave), (move_from, move_to),
                                (float(2 * np.cos(angle)), float(2 * np.sin(angle))),
                                tuple(rng.uniform(-3, 3, 2)))

    def draw(frames: range, count: int, exclude: int | None = None) -> list[tuple[int, int, int]]:
        found = []
        pairs = [p for p in itertools.combinations(specs, 2) if exclude not in p]
        for _ in range(count):
            a, b = pairs[int(rng.integers(len(pairs)))]
            shared = [t for t in frames if all(specs[o]["visible"][0] <= t < specs[o]["visible"][1]
                                               for o in (a, b))]
            if shared:
                found.append((a, b, int(rng.choice(shared))))
        return found

    observed = draw(range(num_frames), int(rng.integers(0, 5)))
    future = draw(range(num_frames, total), int(rng.integers(0, 3)))
    counterfactuals = {}
    for removed in specs:
        kept = [c for c in observed + future if removed not in c[:2] and rng.random() < 0.7]
        extra = draw(range(total), int(rng.integers(0, 2)), exclude=removed)
        counterfactuals[removed] = world(specs, kept + extra, range(total), absent=removed)
    return (annotation(specs, observed, num_frames, scene_index),
            world(specs, future, range(num_frames, total)), counterfactuals)
