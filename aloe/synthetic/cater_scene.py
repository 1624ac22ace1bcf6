"""Mini-CATER scene simulation: objects on the 6x6 grid and their scheduled actions.

A scene holds 5-10 objects (the golden snitch, a medium and a large cone, then
random cubes, spheres, cylinders and cones) resting on the plane over
`[-3, 3)^2`. Time is cut into slots; in each slot several object groups act in
parallel with one of CATER's actions:

* `_slide`: glide along the floor to a random point;
* `_pick_place`: lift by `PICK_HEIGHT`, carry, put down at a random point;
* `_rotate`: spin a quarter turn in place (cubes, cylinders, the snitch);
* `_contain`: a lone cone is picked and placed over a smaller cone, sphere or
  the snitch, which is then covered and moves with it; a covering cone can
  itself be covered by a bigger cone (nesting);
* `_no_op`: a covered object stays where it is while its cone is lifted off.

A *group* is a stack of nested objects, the outermost cone first. A group with
contents can only slide as a whole or have its top cone lifted off
(`_pick_place`, the contents stay behind and are uncovered). Every planned path
is checked against all uncovered objects over the rest of the video, so objects
never interpenetrate; covered objects are invisible and sit under their cone.
"""

import dataclasses
from typing import Optional

import numpy as np

from aloe.cater import grid

NUM_FRAMES = 301
PICK_HEIGHT = 2.0
MOVE_MIN_FRAMES, MOVE_MAX_FRAMES = 20, 30
MAX_START_DELAY = 10
MIN_DISTANCE = 0.25
GRID_HALF_EXTENT = 3.0
MAX_PATH_TRIALS = 100

SIZES = {"large": 0.75, "medium": 0.5, "small": 0.25}
SNITCH_SIZE = 0.3  # CATER's snitch is "small" but slightly larger than small.
SNITCH_RENDER_RADIUS = 0.25
COLORS = {
    "gray": (87, 87, 87), "red": (173, 35, 35), "blue": (42, 75, 215),
    "green": (29, 105, 20), "brown": (129, 74, 25), "purple": (129, 38, 192),
    "cyan": (41, 208, 208), "yellow": (255, 238, 51), "gold": (255, 215, 0),
}
MATERIALS = ("rubber", "metal")
RANDOM_SHAPES = ("cube", "sphere", "cylinder", "cone")
# CATER names each object after the Blender model it instantiates.
INSTANCE_PREFIX = {"spl": "Spl", "cone": "Cone", "cube": "SmoothCube_v2",
                   "sphere": "Sphere", "cylinder": "SmoothCylinder-Short"}
CONTAINABLE_SHAPES = ("cone", "sphere", "spl")
ROTATABLE_SHAPES = ("cube", "cylinder", "spl")


@dataclasses.dataclass(frozen=True)
class CaterObject:
    """Static attributes of one object, as recorded in CATER's scene JSON."""
    shape: str       # "spl" (snitch), "cone", "cube", "sphere" or "cylinder".
    size: str        # "small", "medium" or "large".
    sized: float     # Footprint radius used for spacing and collisions.
    material: str    # "rubber" or "metal".
    color: str       # Key of COLORS.
    instance: str    # Unique name such as "Cone_1".

    @property
    def half_height(self) -> float:
        """Height of the centre above the floor when the object rests on it."""
        if self.shape == "spl":
            return SNITCH_RENDER_RADIUS
        if self.shape == "cube":
            return self.sized / np.sqrt(2.0)  # The cube's corners stay within `sized`.
        return self.sized


@dataclasses.dataclass
class CaterScene:
    """A simulated scene.

    Attributes:
      objects: the objects; index 0 is the snitch.
      locations: float `[objects, frames, 3]` centre positions (x, y, z).
      yaw: float `[objects, frames]` rotation about the vertical axis, radians.
      container: int `[objects, frames]` index of the cone directly covering
        the object, -1 when uncovered.
      movements: instance name -> list of `(action, other instance or None,
        start frame, end frame)`, in CATER's format.
    """
    objects: list[CaterObject]
    locations: np.ndarray
    yaw: np.ndarray
    container: np.ndarray
    movements: dict[str, list[tuple[str, Optional[str], int, int]]]

    @property
    def hidden(self) -> np.ndarray:
        """Bool `[objects, frames]`: the object is under a cone."""
        return self.container >= 0

    def snitch_index(self) -> int:
        """Index of the snitch (shape "spl")."""
        return next(i for i, o in enumerate(self.objects) if o.shape == "spl")


def localize_class(x: float, y: float) -> int:
    """CATER's localization class of a final position (`aloe.cater.grid.position_to_class`)."""
    return int(grid.position_to_class((x, y)))


def snitch_tracking_flags(scene: CaterScene) -> dict[str, bool]:
    """Whether following the snitch needs tracking through occlusion.

    Returns:
      `ends_hidden`: the snitch is covered in the last frame;
      `moved_while_hidden`: its (x, y) changed between two frames in which it
        was covered (it travelled under a cone).
    """
    s = scene.snitch_index()
    hidden = scene.hidden[s]
    step = np.linalg.norm(np.diff(scene.locations[s, :, :2], axis=0), axis=-1)
    moved = bool(np.any((step > 1e-6) & hidden[:-1] & hidden[1:]))
    return {"ends_hidden": bool(hidden[-1]), "moved_while_hidden": moved}


def sample_objects(rng: np.random.Generator, min_objects: int = 5,
                   max_objects: int = 10) -> list[CaterObject]:
    """Draws the snitch, a medium and a large cone, then random objects."""
    if not 3 <= min_objects <= max_objects:
        raise ValueError(f"need 3 <= min_objects <= max_objects, got {min_objects}, {max_objects}.")
    count = int(rng.integers(min_objects, max_objects + 1))
    colours = [c for c in COLORS if c != "gold"]
    specs = [("spl", "small", SNITCH_SIZE, "metal", "gold")]
    for size in ("medium", "large"):
        specs.append(("cone", size, SIZES[size], str(rng.choice(MATERIALS)), str(rng.choice(colours))))
    for _ in range(count - 3):
        size = str(rng.choice(list(SIZES)))
        specs.append((str(rng.choice(RANDOM_SHAPES)), size, SIZES[size],
                      str(rng.choice(MATERIALS)), str(rng.choice(colours))))
    seen: dict[str, int] = {}
    objects = []
    for shape, size, sized, material, colour in specs:
        prefix = INSTANCE_PREFIX[shape]
        objects.append(CaterObject(shape, size, sized, material, colour, f"{prefix}_{seen.get(prefix, 0)}"))
        seen[prefix] = seen.get(prefix, 0) + 1
    return objects


def _initial_positions(rng: np.random.Generator, objects: list[CaterObject]) -> np.ndarray:
    """Float `[objects, 3]` non-overlapping resting positions on the grid."""
    for _ in range(100):
        placed: list[np.ndarray] = []
        for obj in objects:
            for _ in range(50):
                xy = rng.uniform(-GRID_HALF_EXTENT, GRID_HALF_EXTENT, size=2)
                if all(np.linalg.norm(xy - p[:2]) - obj.sized - q.sized >= MIN_DISTANCE
                       for p, q in zip(placed, objects)):
                    placed.append(np.array([xy[0], xy[1], obj.half_height]))
                    break
            else:
                break
        if len(placed) == len(objects):
            return np.stack(placed)
    raise RuntimeError(f"could not place {len(objects)} objects without overlap.")


def _linear_path(start: np.ndarray, end: np.ndarray, n: int) -> np.ndarray:
    """Float `[n, 3]` straight path from `start` to `end`, both included."""
    if n == 1:
        return end[None].astype(float)
    w = np.linspace(0.0, 1.0, n)[:, None]
    return (1.0 - w) * start[None] + w * end[None]


def pick_place_path(start: np.ndarray, x: float, y: float, n: int) -> np.ndarray:
    """Float `[n, 3]`: lift for 20% of the frames, carry until 80%, put down.

    The path is piecewise linear in time through the keyframes, so the object
    never pauses in the air.
    """
    lift_end = max(1, int(0.2 * n))
    carry_end = min(max(lift_end + 1, int(0.8 * n)), n - 1)
    up = start + np.array([0.0, 0.0, PICK_HEIGHT])
    keys = np.array([0, lift_end, carry_end, n - 1], dtype=float)
    points = np.stack([start, up, np.array([x, y, up[2]]), np.array([x, y, start[2]])])
    frames = np.arange(n, dtype=float)
    return np.stack([np.interp(frames, keys, points[:, k]) for k in range(3)], axis=-1)


class _Simulator:
    """Mutable state while actions are scheduled slot by slot."""

    def __init__(self, rng: np.random.Generator, objects: list[CaterObject],
                 num_frames: int, snitch_bias: float):
        self.rng = rng
        self.objects = objects
        self.num_frames = num_frames
        self.snitch_bias = snitch_bias
        self.snitch = next(i for i, o in enumerate(objects) if o.shape == "spl")
        start = _initial_positions(rng, objects)
        n = len(objects)
        self.pos = np.repeat(start[:, None], num_frames, axis=1)
        self.yaw = np.repeat(rng.uniform(0, 2 * np.pi, size=n)[:, None], num_frames, axis=1)
        self.container = np.full((n, num_frames), -1, dtype=np.int64)
        self.groups: list[list[int]] = [[i] for i in range(n)]
        self.sized = np.array([o.sized for o in objects])
        self.movements: dict[str, list[tuple[str, Optional[str], int, int]]] = {
            o.instance: [] for o in objects}

    def _record(self, obj: int, action: str, other: Optional[int], start: int, end: int) -> None:
        """Appends one entry to `obj`'s movement record."""
        other_name = self.objects[other].instance if other is not None else None
        self.movements[self.objects[obj].instance].append((action, other_name, start, end))

    def _timing(self, slot_start: int) -> tuple[int, int]:
        """(start, end) frames of an action: a short random delay, then 20-30 frames."""
        start = slot_start + int(self.rng.integers(0, MAX_START_DELAY + 1))
        end = min(start + int(self.rng.integers(MOVE_MIN_FRAMES, MOVE_MAX_FRAMES + 1)),
                  self.num_frames - 1)
        return start, end

    def _is_clear(self, obj: int, path: np.ndarray, start: int, ignore: set[int],
                  check_from: Optional[dict[int, int]] = None) -> bool:
        """Whether `obj` on `path` (frames `start..`, then resting) keeps clear.

        Covered objects are skipped (their cone stands for them), except those in
        `check_from`, which maps an object to the first frame it is checked at.
        """
        full = np.concatenate([path, np.repeat(path[-1:], self.num_frames - start - len(path), 0)])
        others = [j for j in range(len(self.objects)) if j != obj and j not in ignore]
        if not others:
            return True
        gap = (np.linalg.norm(self.pos[others, start:] - full[None], axis=-1)
               - self.sized[obj] - self.sized[others][:, None])
        active = self.container[others, start:] < 0
        frames = np.arange(start, self.num_frames)
        for row, j in enumerate(others):
            if check_from and j in check_from:
                active[row] = frames >= check_from[j]
        return not np.any((gap < MIN_DISTANCE) & active)

    def _set_path(self, obj: int, path: np.ndarray, start: int) -> None:
        """Moves `obj` along `path` from frame `start`; it rests at the end afterwards."""
        self.pos[obj, start:start + len(path)] = path
        self.pos[obj, start + len(path):] = path[-1]

    def _random_target(self) -> tuple[float, float]:
        """A uniform point of the grid `[-3, 3)^2`."""
        x, y = self.rng.uniform(-GRID_HALF_EXTENT, GRID_HALF_EXTENT, size=2)
        return float(x), float(y)

    def try_contain(self, slot_start: int) -> Optional[tuple[int, int]]:
        """Covers a group with a lone bigger cone; returns (cone, end frame)."""
        pairs = [(c[0], g) for c in self.groups for g in self.groups
                 if len(c) == 1 and c is not g and self.objects[c[0]].shape == "cone"
                 and self.objects[g[0]].shape in CONTAINABLE_SHAPES
                 and self.sized[c[0]] > self.sized[g[0]]]
        snitch_pairs = [p for p in pairs if self.snitch in p[1]]
        if snitch_pairs and self.rng.random() < self.snitch_bias:
            pairs = snitch_pairs
        for k in self.rng.permutation(len(pairs))[:MAX_PATH_TRIALS]:
            cone, group = pairs[k]
            start, end = self._timing(slot_start)
            target = self.pos[group[0], start]
            path = pick_place_path(self.pos[cone, start], target[0], target[1], end - start + 1)
            if not self._is_clear(cone, path, start, ignore=set(group)):
                continue
            self._set_path(cone, path, start)
            self.container[group[0], end:] = cone
            self._record(cone, "_contain", group[0], start, end)
            self.groups.remove(group)
            self.groups[self.groups.index([cone])] = [cone] + group
            return cone, end
        return None

    def act(self, group: list[int], slot_start: int) -> tuple[int, Optional[list[int]]]:
        """Gives one group a random action; returns (end frame, uncovered group)."""
        start, end = self._timing(slot_start)
        n = end - start + 1
        top = group[0]
        if len(group) > 1:
            actions = ["_slide", "_pick_place"]
        elif self.objects[top].shape in ROTATABLE_SHAPES:
            actions = ["_slide", "_pick_place", "_rotate"]
        else:
            actions = ["_slide", "_pick_place"]
        for _ in range(MAX_PATH_TRIALS):
            action = actions[int(self.rng.integers(len(actions)))]
            if action == "_rotate":
                turn = np.linspace(0.0, np.pi / 2, n)
                self.yaw[top, start:start + n] = self.yaw[top, start] + turn
                self.yaw[top, start + n:] = self.yaw[top, start] + np.pi / 2
                self._record(top, action, None, start, end)
                return end, None
            x, y = self._random_target()
            start_pos = self.pos[top, start]
            if action == "_slide":
                path = _linear_path(start_pos, np.array([x, y, start_pos[2]]), n)
                if self._is_clear(top, path, start, ignore=set(group)):
                    offset = path - start_pos
                    for member in group:  # Contents travel with their cone.
                        self._set_path(member, self.pos[member, start] + offset, start)
                        self._record(member, action, None, start, end)
                    return end, None
                continue
            path = pick_place_path(start_pos, x, y, n)
            lifted = start + max(1, int(0.2 * n))
            # Former contents are checked once the cone is fully lifted off them.
            if self._is_clear(top, path, start, ignore=set(group[2:]),
                              check_from={group[1]: lifted} if len(group) > 1 else None):
                self._set_path(top, path, start)
                self._record(top, action, None, start, end)
                for member in group[1:]:
                    self._record(member, "_no_op", None, start, end)
                if len(group) > 1:
                    self.container[group[1], start + 1:] = -1
                    self.groups[self.groups.index(group)] = [top]
                    self.groups.append(group[1:])
                    return end, group[1:]
                return end, None
        for member in group:
            self._record(member, "_no_op", None, start, end)
        return end, None


def simulate_scene(rng: np.random.Generator, num_frames: int = NUM_FRAMES,
                   min_objects: int = 5, max_objects: int = 10,
                   contain_probability: float = 0.5, snitch_bias: float = 0.25) -> CaterScene:
    """Samples objects and schedules their actions over `num_frames` frames.

    Args:
      rng: the only source of randomness (the scene is a function of it).
      num_frames: frames in the video (CATER: 301, frames 0..300).
      min_objects, max_objects: inclusive range of the object count.
      contain_probability: chance that a time slot starts with a `_contain`.
      snitch_bias: chance that a `_contain` targets the snitch's group when it can.

    Returns:
      The scene with per-frame locations, yaw and covering state.
    """
    if num_frames < 2 * MOVE_MAX_FRAMES:
        raise ValueError(f"num_frames must be at least {2 * MOVE_MAX_FRAMES}, got {num_frames}.")
    objects = sample_objects(rng, min_objects, max_objects)
    sim = _Simulator(rng, objects, num_frames, snitch_bias)
    slot_start = 0
    while slot_start <= num_frames - 1 - MOVE_MAX_FRAMES:
        acted: set[int] = set()
        last_end = slot_start
        if sim.rng.random() < contain_probability:
            contained = sim.try_contain(slot_start)
            if contained is not None:
                acted.add(contained[0])
                last_end = max(last_end, contained[1])
        for group in [sim.groups[k] for k in sim.rng.permutation(len(sim.groups))]:
            if group[0] in acted:
                continue
            acted.add(group[0])
            end, uncovered = sim.act(group, slot_start)
            if uncovered is not None:
                acted.add(uncovered[0])  # It starts moving in a later slot.
            last_end = max(last_end, end)
        slot_start = last_end + 1
    for obj in range(len(objects)):
        xy = sim.pos[obj, :, :2]
        if np.any(xy < -GRID_HALF_EXTENT) or np.any(xy >= GRID_HALF_EXTENT):
            raise RuntimeError(f"object {objects[obj].instance} left the grid.")
    return CaterScene(objects, sim.pos, sim.yaw, sim.container, sim.movements)
