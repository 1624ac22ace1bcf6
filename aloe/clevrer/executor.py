"""Symbolic executor of CLEVRER programs over a `Scene`.

`execute(program, scene)` parses a postfix program (`aloe.clevrer.program`) and
evaluates its 33 modules on the scene; `answer` turns the result into CLEVRER's
answer strings. A multiple-choice choice is evaluated as CLEVRER does: the
choice program runs first and the question program consumes its value,
`execute(choice_program + question_program)`, giving yes / no, reported as
"correct" / "wrong".

Values: `ObjectRef` (one object), `ObjectSet`, `Event` (see `aloe.clevrer.scene`),
`EventSet`, `FrameRef` (a frame index, or None for the whole video), int (count),
bool (yes/no) and str (an attribute or a direction).

Module semantics (frames are observed frames unless stated):
  objects / events: objects in view at some observed frame / observed events with
    the start and end markers, in time order.
  unseen_events: events after the observed frames (needs `future`).
  all_events: a possible collision (no frame) for every pair of `objects`.
  counterfact_events(obj): events of the world without obj (needs `counterfactuals`);
    filter_counterfact(events, obj): those of `events` (by kind and objects) that
    happen in that world.
  filter_color / material / shape: objects with that attribute.
  filter_moving / filter_stationary (filter_resting is its alias) (objects, frame):
    objects in view at the frame and moving / not moving; with the whole-video frame,
    objects moving at some visible frame / in view but never moving.
  filter_in / out / collision(events, object or objects): events of that kind
    involving any of the objects. filter_start / filter_end: the marker event.
  filter_order(events, first|second|last): by time. filter_before / filter_after
    (events, event): strictly earlier / later frames.
  filter_ancestor(events, event): the events that are causal ancestors of an
    observed event (causal graph in `aloe.clevrer.scene`).
  belong_to(object or event, events): an object belongs when it takes part in one of
    the (non-marker) events; an event when one of them has its kind and objects.
  query_color / material / shape(obj); query_frame(event); query_object(in/out event);
  query_collision_partner(collision, obj): the other object; query_direction(obj,
    frame): the dominant axis of its ground-plane velocity: +x right, -x left,
    +y up, -y down (no answer of the released vocabulary uses it).
  unique: the only member of a set; count; exist; negate.

A reference without a single referent (`unique` of 0 or 2+ members, an order
past the end, the partner of an object not in the collision, the direction of a
still object) raises `IllPosedError`, so a question generator can drop the
question. Type errors raise `ExecutionError`; modules whose scene data was not
given raise `MissingSceneDataError`. All three are `ValueError`s.
"""

import dataclasses
import itertools
from typing import Callable, Sequence, Union

from aloe.clevrer import program as programs
from aloe.clevrer.scene import Event, Scene, event_sort_key

__all__ = ["Scene", "Event", "ObjectRef", "ObjectSet", "EventSet", "FrameRef", "ExecutionError",
           "IllPosedError", "MissingSceneDataError", "execute", "answer", "answer_to_string"]


class ExecutionError(ValueError):
    """A program whose values do not fit its modules (or a frame outside the video)."""


class IllPosedError(ExecutionError):
    """A reference with no single referent: the question is ill-posed for this scene."""


class MissingSceneDataError(ExecutionError):
    """A module needs the future or counterfactual worlds, which the scene lacks."""


@dataclasses.dataclass(frozen=True)
class ObjectRef:
    """One object."""
    object_id: int


@dataclasses.dataclass(frozen=True)
class ObjectSet:
    """A set of objects, ids sorted."""
    object_ids: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class EventSet:
    """A set of events in time order."""
    events: tuple[Event, ...]


@dataclasses.dataclass(frozen=True)
class FrameRef:
    """An observed frame index, or None for the whole video."""
    index: int | None


Value = Union[ObjectRef, ObjectSet, Event, EventSet, FrameRef, int, bool, str]
_TYPE_NAMES = ((bool, "a yes/no value"), (int, "a number"), (str, "a string"),
               (ObjectRef, "an object"), (ObjectSet, "an object set"), (Event, "an event"),
               (EventSet, "an event set"), (FrameRef, "a frame"))
_MODULES: dict[str, Callable[..., Value]] = {}


def _type_name(value: Value) -> str:
    return next(name for kind, name in _TYPE_NAMES if isinstance(value, kind))


def _module(*names: str):
    def register(function):
        for name in names:
            _MODULES[name] = function
        return function
    return register


class _Context:
    """What a module call sees: the scene, its own name and position, for messages."""

    def __init__(self, scene: Scene, call: programs.Call):
        self.scene, self.call = scene, call

    def where(self) -> str:
        """The scene, module and position, to start an error message."""
        return (f"scene {self.scene.scene_index}, module {self.call.module!r} at position "
                f"{self.call.position}")

    def expect(self, value: Value, slot: int, *kinds: type) -> Value:
        """Returns `value` if it has one of `kinds`; raises ExecutionError otherwise."""
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok:
            wanted = " or ".join(name for kind, name in _TYPE_NAMES if kind in kinds)
            raise ExecutionError(f"{self.where()}: argument {slot} must be {wanted}, got "
                                 f"{_type_name(value)}.")
        return value

    def frame(self, value: Value, slot: int) -> int | None:
        """The index of a frame argument (None: whole video), checked against the video."""
        index = self.expect(value, slot, FrameRef).index
        if index is not None and not 0 <= index < self.scene.num_frames:
            raise ExecutionError(f"{self.where()}: frame {index} is outside the observed frames "
                                 f"0..{self.scene.num_frames - 1}.")
        return index

    def object_ids(self, value: Value, slot: int) -> set[int]:
        """The ids of an object or object-set argument."""
        value = self.expect(value, slot, ObjectRef, ObjectSet)
        return {value.object_id} if isinstance(value, ObjectRef) else set(value.object_ids)

    def events(self, value: Value, slot: int) -> tuple[Event, ...]:
        """The events of an event-set argument."""
        return self.expect(value, slot, EventSet).events

    def timed(self, event: Event) -> Event:
        """`event`, which must have a frame (not a possible collision)."""
        if event.frame is None:
            raise ExecutionError(f"{self.where()}: a possible collision has no frame.")
        return event

    def ill_posed(self, reason: str) -> IllPosedError:
        """The error for a reference without a single referent."""
        return IllPosedError(f"{self.where()}: {reason}")


def _evaluate(node: programs.Node, scene: Scene) -> Value:
    if isinstance(node, programs.Literal):
        return FrameRef(node.value) if node.kind == programs.FRAME else node.value
    if isinstance(node, programs.Input):
        raise ExecutionError("the program needs an input value; run choice + question programs.")
    args = [_evaluate(arg, scene) for arg in node.args]
    return _MODULES[node.module](_Context(scene, node), *args)


def execute(program: Sequence[str], scene: Scene) -> Value:
    """Parses and runs a complete program on a scene.

    Raises:
      programs.ProgramError: the program is not well formed.
      IllPosedError: a reference has no single referent in this scene.
      MissingSceneDataError: the scene lacks the future / counterfactual worlds needed.
      ExecutionError: a value does not fit the module it is given to.
    """
    return _evaluate(programs.parse_program(program), scene)


def answer_to_string(value: Value) -> str:
    """CLEVRER's answer string of a result: yes / no, a number, or an attribute."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, str)):
        return str(value)
    raise ExecutionError(f"the program yields {_type_name(value)}, which is not an answer.")


def answer(program: Sequence[str], scene: Scene,
           choice_program: Sequence[str] | None = None) -> str:
    """The answer of a descriptive program, or of one choice of a multiple-choice question.

    Args:
      program: the question's program.
      scene: the video.
      choice_program: for multiple-choice questions, the choice's program; the
        result is then "correct" or "wrong".
    """
    if choice_program is None:
        return answer_to_string(execute(program, scene))
    value = execute(list(choice_program) + list(program), scene)
    if not isinstance(value, bool):
        raise ExecutionError(f"choice + question program yields {_type_name(value)}, not yes/no.")
    return "correct" if value else "wrong"


# ---- Sets and their entry points.

@_module("objects")
def _objects(ctx: _Context) -> ObjectSet:
    return ObjectSet(ctx.scene.visible_object_ids)


@_module("events")
def _events(ctx: _Context) -> EventSet:
    return EventSet(ctx.scene.events)


@_module("unseen_events")
def _unseen_events(ctx: _Context) -> EventSet:
    if ctx.scene.future_events is None:
        raise MissingSceneDataError(f"{ctx.where()}: the scene was built without `future`.")
    return EventSet(ctx.scene.future_events)


@_module("all_events")
def _all_events(ctx: _Context) -> EventSet:
    pairs = itertools.combinations(ctx.scene.visible_object_ids, 2)
    return EventSet(tuple(Event("collision", None, pair) for pair in pairs))


@_module("counterfact_events")
def _counterfact_events(ctx: _Context, obj: Value) -> EventSet:
    object_id = ctx.expect(obj, 0, ObjectRef).object_id
    worlds = ctx.scene.counterfactual_events
    if worlds is None or object_id not in worlds:
        missing = "`counterfactuals`" if worlds is None else f"the world without object {object_id}"
        raise MissingSceneDataError(f"{ctx.where()}: the scene was built without {missing}.")
    return EventSet(worlds[object_id])


@_module("filter_counterfact")
def _filter_counterfact(ctx: _Context, events: Value, obj: Value) -> EventSet:
    happening = {e.signature for e in _counterfact_events(ctx, obj).events}
    return EventSet(tuple(e for e in ctx.events(events, 0) if e.signature in happening))


@_module("unique")
def _unique(ctx: _Context, members: Value) -> Union[ObjectRef, Event]:
    members = ctx.expect(members, 0, ObjectSet, EventSet)
    items = members.object_ids if isinstance(members, ObjectSet) else members.events
    if len(items) != 1:
        raise ctx.ill_posed(f"expected exactly one member, found {len(items)}.")
    return ObjectRef(items[0]) if isinstance(members, ObjectSet) else items[0]


@_module("count")
def _count(ctx: _Context, members: Value) -> int:
    members = ctx.expect(members, 0, ObjectSet, EventSet)
    return len(members.object_ids if isinstance(members, ObjectSet) else members.events)


@_module("exist")
def _exist(ctx: _Context, members: Value) -> bool:
    return _count(ctx, members) > 0


@_module("negate")
def _negate(ctx: _Context, value: Value) -> bool:
    return not ctx.expect(value, 0, bool)


@_module("belong_to")
def _belong_to(ctx: _Context, entry: Value, events: Value) -> bool:
    entry = ctx.expect(entry, 0, ObjectRef, Event)
    real = [e for e in ctx.events(events, 1) if e.kind not in ("start", "end")]
    if isinstance(entry, ObjectRef):
        return any(entry.object_id in e.objects for e in real)
    return any(e.signature == entry.signature for e in real)


# ---- Object filters and queries.

def _attribute_filter(attribute: str):
    def run(ctx: _Context, objects: Value, literal: Value) -> ObjectSet:
        props = ctx.scene.properties
        keep = sorted(o for o in ctx.object_ids(objects, 0) if getattr(props[o], attribute) == literal)
        return ObjectSet(tuple(keep))
    return run


def _attribute_query(attribute: str):
    def run(ctx: _Context, obj: Value) -> str:
        return getattr(ctx.scene.properties[ctx.expect(obj, 0, ObjectRef).object_id], attribute)
    return run


for _attribute in ("color", "material", "shape"):
    _module(f"filter_{_attribute}")(_attribute_filter(_attribute))
    _module(f"query_{_attribute}")(_attribute_query(_attribute))


def _motion_filter(want_moving: bool):
    def run(ctx: _Context, objects: Value, frame: Value) -> ObjectSet:
        index = ctx.frame(frame, 1)
        scene = ctx.scene
        keep = []
        for o in sorted(ctx.object_ids(objects, 0)):
            column = scene.column(o)
            visible, moving = scene.visible[:, column], scene.moving[:, column]
            if index is None:
                hit = moving.any() if want_moving else (visible.any() and not moving.any())
            else:
                hit = visible[index] and moving[index] == want_moving
            if hit:
                keep.append(o)
        return ObjectSet(tuple(keep))
    return run


_module("filter_moving")(_motion_filter(True))
_module("filter_stationary", "filter_resting")(_motion_filter(False))


@_module("query_direction")
def _query_direction(ctx: _Context, obj: Value, frame: Value) -> str:
    object_id = ctx.expect(obj, 0, ObjectRef).object_id
    index = ctx.frame(frame, 1)
    if index is None:
        raise ExecutionError(f"{ctx.where()}: a direction needs one frame, not the whole video.")
    column = ctx.scene.column(object_id)
    if not ctx.scene.moving[index, column]:
        raise ctx.ill_posed(f"object {object_id} is not moving in view at frame {index}.")
    vx, vy = ctx.scene.velocity[index, column, :2]
    if abs(vx) >= abs(vy):
        return "right" if vx > 0 else "left"
    return "up" if vy > 0 else "down"


# ---- Event filters and queries.

def _kind_filter(kind: str):
    def run(ctx: _Context, events: Value, objects: Value) -> EventSet:
        wanted = ctx.object_ids(objects, 1)
        return EventSet(tuple(e for e in ctx.events(events, 0)
                              if e.kind == kind and wanted.intersection(e.objects)))
    return run


for _kind, _name in (("in", "filter_in"), ("out", "filter_out"), ("collision", "filter_collision")):
    _module(_name)(_kind_filter(_kind))


def _marker_filter(kind: str):
    def run(ctx: _Context, events: Value) -> Event:
        found = [e for e in ctx.events(events, 0) if e.kind == kind]
        if not found:
            raise ctx.ill_posed(f"the event set holds no {kind} event.")
        return found[0]
    return run


_module("filter_start")(_marker_filter("start"))
_module("filter_end")(_marker_filter("end"))


@_module("filter_order")
def _filter_order(ctx: _Context, events: Value, order: Value) -> Event:
    ordered = sorted((ctx.timed(e) for e in ctx.events(events, 0)), key=event_sort_key)
    index = {"first": 0, "second": 1, "last": len(ordered) - 1}[order]
    if not 0 <= index < len(ordered):
        raise ctx.ill_posed(f"no {order} event among {len(ordered)}.")
    return ordered[index]


def _time_filter(before: bool):
    def run(ctx: _Context, events: Value, anchor: Value) -> EventSet:
        frame = ctx.timed(ctx.expect(anchor, 1, Event)).frame
        keep = [e for e in ctx.events(events, 0)
                if (ctx.timed(e).frame < frame if before else ctx.timed(e).frame > frame)]
        return EventSet(tuple(keep))
    return run


_module("filter_before")(_time_filter(True))
_module("filter_after")(_time_filter(False))


@_module("filter_ancestor")
def _filter_ancestor(ctx: _Context, events: Value, target: Value) -> EventSet:
    target = ctx.expect(target, 1, Event)
    if target not in ctx.scene.causal_parents:
        raise ExecutionError(f"{ctx.where()}: only observed in/out/collision events have causes, "
                             f"got a {target.kind} event at frame {target.frame}.")
    ancestors = ctx.scene.ancestors(target)
    return EventSet(tuple(e for e in ctx.events(events, 0) if e in ancestors))


@_module("query_frame")
def _query_frame(ctx: _Context, event: Value) -> FrameRef:
    return FrameRef(ctx.timed(ctx.expect(event, 0, Event)).frame)


@_module("query_object")
def _query_object(ctx: _Context, event: Value) -> ObjectRef:
    event = ctx.expect(event, 0, Event)
    if event.kind not in ("in", "out"):
        raise ExecutionError(f"{ctx.where()}: needs an in or out event, got a {event.kind} event.")
    return ObjectRef(event.objects[0])


@_module("query_collision_partner")
def _query_collision_partner(ctx: _Context, event: Value, obj: Value) -> ObjectRef:
    event = ctx.expect(event, 0, Event)
    object_id = ctx.expect(obj, 1, ObjectRef).object_id
    if event.kind != "collision":
        raise ExecutionError(f"{ctx.where()}: needs a collision, got a {event.kind} event.")
    if object_id not in event.objects:
        raise ctx.ill_posed(f"object {object_id} is not part of the collision {event.objects}.")
    return ObjectRef(next(o for o in event.objects if o != object_id))
