"""The executor's view of one CLEVRER video: objects, motion, events and their causes.

A `Scene` is built from the official annotation dict (DESIGN.md §6) plus, when a
simulator knows them, the unseen continuation (`future`) and the re-simulated
worlds without one object (`counterfactuals`, keyed by the removed object's id;
the remaining objects keep their ids).

Events are derived, not stored:
  * "in": the frame where an object's `inside_camera_view` turns true (objects in
    view at a world's first frame have no "in" event);
  * "out": the frame where it turns false;
  * "collision": one per entry of the `collision` list;
  * "start" / "end": markers for the first and last observed frame (the executor's
    `filter_start` / `filter_end` pick them), carrying no objects.

Causal graph (explanatory questions): each object's observed in/out/collision
events form its trace in time order. The parents of an event E are, for every
object of E, that object's latest event before E in its trace. The ancestors of
E are its parents, their parents, and so on. So an object's entrance is a cause
of its first collision, and through chains of collisions causes pass from
object to object: if A hits B and B then hits C, A's presence, its entrance and
the A-B collision are all responsible for the B-C collision.
"""

import dataclasses
import functools
import math
from typing import Any, Iterable, Mapping

import numpy as np

from aloe.clevrer import program

# An object moves at a frame when its speed (annotation velocity units, scene
# units per second) exceeds this.
MOVING_SPEED_THRESHOLD = 0.1

# Order of events that share a frame: an entrance precedes a collision at that frame,
# which precedes an exit.
_KIND_RANK = {"start": 0, "in": 1, "collision": 2, "out": 3, "end": 4}


@dataclasses.dataclass(frozen=True)
class ObjectProperties:
    """Static attributes of one object."""
    object_id: int
    color: str
    material: str
    shape: str


@dataclasses.dataclass(frozen=True)
class Event:
    """An event of one world.

    Attributes:
      kind: "in", "out", "collision", "start" or "end".
      frame: the frame index, or None for a possible collision (`all_events`).
      objects: the object ids involved, sorted (one for in/out, two for collisions).
    """
    kind: str
    frame: int | None
    objects: tuple[int, ...]

    @property
    def signature(self) -> tuple[str, tuple[int, ...]]:
        """What identifies the event across worlds: its kind and its objects."""
        return self.kind, self.objects


def event_sort_key(event: Event) -> tuple:
    """Time order of events (possible collisions without a frame go last)."""
    frame = math.inf if event.frame is None else event.frame
    return frame, _KIND_RANK[event.kind], event.objects


@dataclasses.dataclass(frozen=True)
class _Trajectory:
    """Visibility and velocity of every object over a run of frames.

    Attributes:
      visible: bool `[frames, objects]`, columns in the scene's `object_ids` order.
      velocity: float32 `[frames, objects, 3]`.
    """
    visible: np.ndarray
    velocity: np.ndarray


def _field(entry: Any, key: str, where: str) -> Any:
    if not isinstance(entry, Mapping) or key not in entry:
        raise ValueError(f"{where}: field {key!r} is missing.")
    return entry[key]


def _int_field(entry: Any, key: str, where: str) -> int:
    value = _field(entry, key, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: field {key!r} must be an integer, got {value!r}.")
    return value


def _parse_properties(annotation: Mapping, where: str) -> dict[int, ObjectProperties]:
    entries = _field(annotation, "object_property", where)
    properties: dict[int, ObjectProperties] = {}
    for entry in entries:
        object_id = _int_field(entry, "object_id", f"{where}, object_property")
        here = f"{where}, object_property of object {object_id}"
        values = {}
        for key, allowed in (("color", program.COLORS), ("material", program.MATERIALS),
                             ("shape", program.SHAPES)):
            values[key] = _field(entry, key, here)
            if values[key] not in allowed:
                raise ValueError(f"{here}: field {key!r} is {values[key]!r}; expected one of {allowed}.")
        if object_id in properties:
            raise ValueError(f"{here}: object_id {object_id} appears twice.")
        properties[object_id] = ObjectProperties(object_id, **values)
    if not properties:
        raise ValueError(f"{where}: field 'object_property' lists no objects.")
    return properties


def _parse_trajectory(frames: Any, object_ids: tuple[int, ...], first_frame: int, where: str,
                      absent: int | None = None) -> _Trajectory:
    """Reads a `motion_trajectory` list whose frame ids run from `first_frame` on."""
    if not isinstance(frames, list) or not frames:
        raise ValueError(f"{where}: field 'motion_trajectory' must be a non-empty list of frames.")
    column = {object_id: i for i, object_id in enumerate(object_ids)}
    visible = np.zeros((len(frames), len(object_ids)), bool)
    velocity = np.zeros((len(frames), len(object_ids), 3), np.float32)
    for t, frame in enumerate(frames):
        frame_id = _int_field(frame, "frame_id", f"{where}, motion_trajectory[{t}]")
        here = f"{where}, motion_trajectory frame {frame_id}"
        if frame_id != first_frame + t:
            raise ValueError(f"{here}: field 'frame_id' should be {first_frame + t} (frames must be "
                             f"consecutive from {first_frame}).")
        seen = set()
        for entry in _field(frame, "objects", here):
            object_id = _int_field(entry, "object_id", here)
            if object_id == absent:
                raise ValueError(f"{here}: object {object_id} appears, but it is the removed object.")
            if object_id not in column or object_id in seen:
                problem = "is listed twice" if object_id in seen else "is not in 'object_property'"
                raise ValueError(f"{here}: object {object_id} {problem}.")
            seen.add(object_id)
            inside = _field(entry, "inside_camera_view", f"{here}, object {object_id}")
            vel = _field(entry, "velocity", f"{here}, object {object_id}")
            if not isinstance(inside, bool):
                raise ValueError(f"{here}, object {object_id}: field 'inside_camera_view' must be a bool.")
            if not isinstance(vel, (list, tuple)) or len(vel) != 3:
                raise ValueError(f"{here}, object {object_id}: field 'velocity' must hold 3 numbers.")
            visible[t, column[object_id]] = inside
            velocity[t, column[object_id]] = vel
    return _Trajectory(visible, velocity)


def _visibility_events(trajectory: _Trajectory, object_ids: tuple[int, ...], first_frame: int,
                       visible_before: np.ndarray | None) -> list[Event]:
    """In/out events where visibility flips; frame `first_frame` flips against `visible_before`."""
    visible = trajectory.visible
    if visible_before is not None:
        visible = np.concatenate([visible_before[None], visible])
        offset = first_frame - 1
    else:
        offset = first_frame
    events = []
    for t, column in zip(*np.nonzero(visible[1:] != visible[:-1])):
        kind = "in" if visible[t + 1, column] else "out"
        events.append(Event(kind, int(t) + 1 + offset, (object_ids[column],)))
    return events


def _parse_collisions(entries: Any, object_ids: tuple[int, ...], frames: range, where: str,
                      absent: int | None = None) -> list[Event]:
    if not isinstance(entries, list):
        raise ValueError(f"{where}: field 'collision' must be a list.")
    events = []
    for i, entry in enumerate(entries):
        here = f"{where}, collision[{i}]"
        frame = _int_field(entry, "frame_id", here)
        pair = _field(entry, "object_ids", here)
        if (not isinstance(pair, list) or len(pair) != 2 or len(set(pair)) != 2
                or any(o not in object_ids for o in pair)):
            raise ValueError(f"{here}: field 'object_ids' must name two different known objects, "
                             f"got {pair!r}.")
        if absent in pair:
            raise ValueError(f"{here}: field 'object_ids' {pair} involves the removed object {absent}.")
        if frame not in frames:
            raise ValueError(f"{here}: field 'frame_id' {frame} lies outside frames "
                             f"{frames.start}..{frames.stop - 1} of this world.")
        events.append(Event("collision", frame, tuple(sorted(pair))))
    return events


def _sorted_unique(events: Iterable[Event]) -> tuple[Event, ...]:
    return tuple(sorted(set(events), key=event_sort_key))


def _causal_parents(events: tuple[Event, ...]) -> dict[Event, tuple[Event, ...]]:
    """Parents of every in/out/collision event (see the module docstring)."""
    latest: dict[int, Event] = {}
    parents: dict[Event, tuple[Event, ...]] = {}
    for event in events:  # Already in time order.
        if event.kind in ("start", "end"):
            continue
        parents[event] = tuple(dict.fromkeys(latest[o] for o in event.objects if o in latest))
        for o in event.objects:
            latest[o] = event
    return parents


@dataclasses.dataclass(frozen=True, eq=False)
class Scene:
    """One video as the executor sees it.

    Attributes:
      scene_index: the annotation's scene index.
      video_filename: the annotation's video file name.
      properties: object id -> static attributes (every object of the scene).
      object_ids: all object ids, sorted; the column order of `visible` and `velocity`.
      visible: bool `[frames, objects]`, observed frames only.
      velocity: float32 `[frames, objects, 3]`, observed frames only.
      events: observed events in time order, with the start and end markers.
      future_events: events after the observed frames, or None when not given.
      counterfactual_events: removed object id -> events of the world without it
        (all its frames), or None when not given.
      causal_parents: observed in/out/collision event -> its parent events.
    """
    scene_index: int
    video_filename: str
    properties: dict[int, ObjectProperties]
    object_ids: tuple[int, ...]
    visible: np.ndarray
    velocity: np.ndarray
    events: tuple[Event, ...]
    future_events: tuple[Event, ...] | None
    counterfactual_events: dict[int, tuple[Event, ...]] | None
    causal_parents: dict[Event, tuple[Event, ...]]

    @property
    def num_frames(self) -> int:
        """Number of observed frames."""
        return self.visible.shape[0]

    @functools.cached_property
    def visible_object_ids(self) -> tuple[int, ...]:
        """Objects in view in at least one observed frame (what `objects` returns)."""
        return tuple(o for i, o in enumerate(self.object_ids) if self.visible[:, i].any())

    @functools.cached_property
    def moving(self) -> np.ndarray:
        """bool `[frames, objects]`: visible and faster than `MOVING_SPEED_THRESHOLD`."""
        speed = np.linalg.norm(self.velocity, axis=-1)
        return self.visible & (speed > MOVING_SPEED_THRESHOLD)

    def column(self, object_id: int) -> int:
        """The column of `object_id` in `visible` / `velocity`."""
        return self.object_ids.index(object_id)

    def ancestors(self, event: Event) -> frozenset[Event]:
        """All causal ancestors of an observed in/out/collision event.

        Raises:
          ValueError: `event` is not an observed in/out/collision event of this scene.
        """
        if event not in self.causal_parents:
            raise ValueError(f"scene {self.scene_index}: {event} is not an observed in/out/collision event.")
        found: set[Event] = set()
        pending = list(self.causal_parents[event])
        while pending:
            parent = pending.pop()
            if parent not in found:
                found.add(parent)
                pending.extend(self.causal_parents[parent])
        return frozenset(found)

    @classmethod
    def from_annotation(cls, annotation: Mapping, future: Mapping | None = None,
                        counterfactuals: Mapping | None = None) -> "Scene":
        """Builds a scene from an annotation dict and optional unseen / counterfactual worlds.

        Args:
          annotation: the official CLEVRER annotation (observed frames 0..T-1).
          future: `{"motion_trajectory": frames T.., "collision": [...]}`.
          counterfactuals: removed object id (int or digit string) -> `{"motion_trajectory":
            frames 0.., "collision": [...]}` of the world re-simulated without it.

        Raises:
          ValueError: a missing or malformed field, naming the scene and the field.
        """
        scene_index = _int_field(annotation, "scene_index", "annotation")
        video = annotation.get("video_filename", "?") if isinstance(annotation, Mapping) else "?"
        where = f"annotation of scene {scene_index} ({video})"
        properties = _parse_properties(annotation, where)
        object_ids = tuple(sorted(properties))
        observed = _parse_trajectory(_field(annotation, "motion_trajectory", where), object_ids, 0, where)
        num_frames = observed.visible.shape[0]
        collisions = _parse_collisions(_field(annotation, "collision", where), object_ids,
                                       range(num_frames), where)
        markers = [Event("start", 0, ()), Event("end", num_frames - 1, ())]
        events = _sorted_unique(markers + collisions +
                                _visibility_events(observed, object_ids, 0, None))
        future_events = None
        if future is not None:
            here = f"future of scene {scene_index}"
            trajectory = _parse_trajectory(_field(future, "motion_trajectory", here), object_ids,
                                           num_frames, here)
            stop = num_frames + trajectory.visible.shape[0]
            future_events = _sorted_unique(
                _parse_collisions(_field(future, "collision", here), object_ids,
                                  range(num_frames, stop), here) +
                _visibility_events(trajectory, object_ids, num_frames, observed.visible[-1]))
        counterfactual_events = None
        if counterfactuals is not None:
            counterfactual_events = {}
            for key, world in counterfactuals.items():
                removed = int(key) if isinstance(key, str) and key.isdigit() else key
                here = f"counterfactual of scene {scene_index} without object {key!r}"
                if removed not in properties:
                    raise ValueError(f"{here}: the removed object is not in 'object_property'.")
                trajectory = _parse_trajectory(_field(world, "motion_trajectory", here), object_ids,
                                               0, here, absent=removed)
                counterfactual_events[removed] = _sorted_unique(
                    _parse_collisions(_field(world, "collision", here), object_ids,
                                      range(trajectory.visible.shape[0]), here, absent=removed) +
                    _visibility_events(trajectory, object_ids, 0, None))
        return cls(scene_index, str(video), properties, object_ids, observed.visible,
                   observed.velocity, events, future_events, counterfactual_events,
                   _causal_parents(events))
