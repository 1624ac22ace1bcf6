"""The CLEVRER executor on a hand-built scene whose answers are worked out by hand.

The scene (20 observed frames, 10 more unseen):
  0 red metal cube        in view throughout; still, then moves +x from frame 8.
  1 blue rubber sphere    enters at frame 3, moves -x during frames 3-7.
  2 green metal cylinder  still until frame 11, then moves +y; exits at frame 14.
  3 yellow rubber cube    in view throughout, never moves.
  4 gray rubber cylinder  enters at frame 15, moves -y.
  5 purple rubber sphere  out of view in the observed frames; enters at frame 24.
Collisions: 0-1 at frame 8, 0-2 at frame 11; unseen: 3-4 at 22; object 0 exits at 25.
Causal chain: in(1)@3 -> collision 0-1 -> collision 0-2 -> out(2)@14.
Without object 1: the entrances of 4 and 5 and a collision 3-4 at frame 18.
"""

import pytest

from aloe.clevrer import executor, program
from aloe.clevrer.executor import ExecutionError, IllPosedError, MissingSceneDataError, Scene
from aloe.clevrer.scene import Event
import clevrer_test_scenes as scenes

T = 20
SPECS = {
    0: scenes.spec("red", "metal", "cube", moving=(8, 10**6), velocity=(1.0, 0.0)),
    1: scenes.spec("blue", "rubber", "sphere", visible=(3, 10**6), moving=(3, 8), velocity=(-1.0, 0.0)),
    2: scenes.spec("green", "metal", "cylinder", visible=(0, 14), moving=(11, 10**6), velocity=(0.0, 1.0)),
    3: scenes.spec("yellow", "rubber", "cube"),
    4: scenes.spec("gray", "rubber", "cylinder", visible=(15, 10**6), moving=(0, 10**6),
                   velocity=(0.0, -1.0)),
    5: scenes.spec("purple", "rubber", "sphere", visible=(24, 10**6)),
}
FUTURE_SPECS = {**SPECS, 0: dict(SPECS[0], visible=(0, 25))}


def _scene(future: bool = True, counterfactuals: bool = True) -> Scene:
    ann = scenes.annotation(SPECS, [(0, 1, 8), (0, 2, 11)], T, scene_index=7)
    fut = scenes.world(FUTURE_SPECS, [(3, 4, 22)], range(T, 30)) if future else None
    cfs = None
    if counterfactuals:
        without_1 = {**SPECS, 2: dict(SPECS[2], visible=(0, 30), moving=(0, 0))}
        cfs = {1: scenes.world(without_1, [(3, 4, 18)], range(30), absent=1),
               "3": scenes.world(FUTURE_SPECS, [(0, 1, 8), (0, 2, 11)], range(30), absent=3)}
    return Scene.from_annotation(ann, future=fut, counterfactuals=cfs)


SCENE = _scene()
RED = ["objects", "red", "filter_color", "unique"]
BLUE = ["objects", "blue", "filter_color", "unique"]
GREEN = ["objects", "green", "filter_color", "unique"]
YELLOW = ["objects", "yellow", "filter_color", "unique"]
GRAY = ["objects", "gray", "filter_color", "unique"]
GREEN_EXIT = ["events"] + GREEN + ["filter_out", "unique"]


def _possible(a: list[str], b: list[str]) -> list[str]:
    return ["all_events"] + a + ["filter_collision"] + b + ["filter_collision", "unique"]


def ans(*parts: list[str]) -> str:
    return executor.answer(sum(parts, []), SCENE)


def test_scene_events_and_causes():
    kinds = [(e.kind, e.frame, e.objects) for e in SCENE.events]
    assert kinds == [("start", 0, ()), ("in", 3, (1,)), ("collision", 8, (0, 1)),
                     ("collision", 11, (0, 2)), ("out", 14, (2,)), ("in", 15, (4,)), ("end", 19, ())]
    assert [(e.kind, e.frame, e.objects) for e in SCENE.future_events] == [
        ("collision", 22, (3, 4)), ("in", 24, (5,)), ("out", 25, (0,))]
    assert SCENE.ancestors(Event("out", 14, (2,))) == {
        Event("in", 3, (1,)), Event("collision", 8, (0, 1)), Event("collision", 11, (0, 2))}
    assert SCENE.counterfactual_events[1] == (Event("in", 15, (4,)), Event("collision", 18, (3, 4)),
                                              Event("in", 24, (5,)))


def test_entry_modules():
    assert ans(["objects", "count"]) == "5"                      # objects: 5 never in view.
    assert ans(["events", "count"]) == "7"                       # events, with start/end.
    assert ans(["unseen_events", "count"]) == "3"                # unseen_events
    assert ans(["all_events", "count"]) == "10"                  # all_events: 5 choose 2.
    assert executor.execute(["all_events", "unique"], SCENE.__class__.from_annotation(
        scenes.annotation({0: SPECS[0], 1: SPECS[1]}, [], T))) == Event("collision", None, (0, 1))


def test_unique_count_exist_negate():
    assert ans(RED, ["query_shape"]) == "cube"                               # unique
    with pytest.raises(IllPosedError, match="found 2"):
        ans(["objects", "cube", "filter_shape", "unique"])
    with pytest.raises(IllPosedError, match="found 0"):
        ans(["objects", "purple", "filter_color", "unique"])
    assert ans(["objects", "rubber", "filter_material", "count"]) == "3"     # count
    assert ans(["objects", "yellow", "filter_color", "exist"]) == "yes"      # exist
    assert ans(["objects", "purple", "filter_color", "exist"]) == "no"
    assert ans(["objects", "yellow", "filter_color", "exist", "negate"]) == "no"  # negate


def test_attribute_filters_and_queries():
    assert ans(["objects", "green", "filter_color", "count"]) == "1"         # filter_color
    assert ans(["objects", "metal", "filter_material", "count"]) == "2"      # filter_material
    assert ans(["objects", "sphere", "filter_shape", "count"]) == "1"        # filter_shape
    assert ans(["objects", "sphere", "filter_shape", "unique", "query_color"]) == "blue"  # query_color
    assert ans(GREEN, ["query_material"]) == "metal"                         # query_material
    assert ans(["events", "objects", "filter_out", "unique", "query_object",
                "query_shape"]) == "cylinder"                                # query_shape


def test_motion_filters():
    assert ans(["objects", "null", "filter_moving", "count"]) == "4"         # filter_moving
    assert ans(["objects", "5", "filter_moving", "unique", "query_color"]) == "blue"
    assert ans(["objects", "19", "filter_stationary", "count"]) == "2"       # filter_stationary
    assert ans(["objects", "null", "filter_stationary", "unique", "query_color"]) == "yellow"
    assert ans(["objects", "null", "filter_resting", "unique", "query_color"]) == "yellow"  # resting
    # filter_start / filter_end pick the markers; query_frame turns them into frames.
    assert ans(["objects", "events", "filter_start", "query_frame", "filter_stationary",
                "count"]) == "3"
    assert ans(["objects", "events", "filter_end", "query_frame", "filter_moving", "count"]) == "2"
    assert ans(["objects", "cylinder", "filter_shape", "events"], GRAY,
               ["filter_in", "unique", "query_frame", "filter_moving", "unique",
                "query_material"]) == "rubber"
    assert executor.execute(["events"] + RED + ["filter_collision", "first", "filter_order",
                                                "query_frame"], SCENE) == executor.FrameRef(8)


def test_event_filters():
    assert ans(["events", "objects", "filter_in", "count"]) == "2"           # filter_in
    assert ans(["events", "objects", "filter_out", "count"]) == "1"          # filter_out
    assert ans(["events", "objects", "filter_collision", "count"]) == "2"    # filter_collision
    assert ans(["events"], RED, ["filter_collision"], GREEN, ["filter_collision", "exist"]) == "yes"
    assert ans(["events"], BLUE, ["filter_collision"], GREEN, ["filter_collision", "exist"]) == "no"
    assert ans(["events", "objects", "filter_in", "last", "filter_order", "query_object",
                "query_color"]) == "gray"                                    # filter_order, query_object
    assert ans(["events"], RED, ["filter_collision", "second", "filter_order"], RED,
               ["query_collision_partner", "query_color"]) == "green"        # query_collision_partner
    with pytest.raises(IllPosedError, match="no second event"):
        ans(["events", "objects", "filter_out", "second", "filter_order", "query_object",
             "query_color"])
    assert ans(["events"], GREEN_EXIT, ["filter_before", "objects", "filter_collision",
                                        "count"]) == "2"                     # filter_before
    assert ans(["events"], GREEN_EXIT, ["filter_before", "objects", "filter_in", "count"]) == "1"
    blue_in = ["events"] + BLUE + ["filter_in", "unique"]
    assert ans(["events"], blue_in, ["filter_after", "objects", "filter_collision",
                                     "count"]) == "2"                        # filter_after
    assert ans(["events", "events"], RED, ["filter_collision"], GREEN,
               ["filter_collision", "unique", "filter_after", "objects", "filter_collision",
                "count"]) == "0"


def test_query_direction():
    assert ans(RED, ["12", "query_direction"]) == "right"
    assert ans(GRAY, ["17", "query_direction"]) == "down"
    assert ans(GREEN, ["12", "query_direction"]) == "up"
    with pytest.raises(IllPosedError, match="not moving"):
        ans(RED, ["5", "query_direction"])


def test_explanatory_ancestors_and_belong_to():
    assert ans(["events"], GREEN_EXIT, ["filter_ancestor", "count"]) == "3"  # filter_ancestor
    first_collision = ["events"] + RED + ["filter_collision", "first", "filter_order"]
    assert ans(["events"], first_collision, ["filter_ancestor", "count"]) == "1"
    question = ["events"] + GREEN_EXIT + ["filter_ancestor", "belong_to"]     # belong_to
    assert executor.answer(question, SCENE, choice_program=BLUE) == "correct"
    assert executor.answer(question, SCENE, choice_program=YELLOW) == "wrong"
    blue_entrance = ["events"] + BLUE + ["filter_in", "unique"]
    assert executor.answer(question, SCENE, choice_program=blue_entrance) == "correct"
    gray_entrance = ["events"] + GRAY + ["filter_in", "unique"]
    assert executor.answer(question, SCENE, choice_program=gray_entrance) == "wrong"
    assert executor.answer(question + ["negate"], SCENE, choice_program=gray_entrance) == "correct"


def test_predictive_and_counterfactual():
    predictive = ["unseen_events", "belong_to"]
    assert executor.answer(predictive, SCENE, _possible(YELLOW, GRAY)) == "correct"
    assert executor.answer(predictive, SCENE, _possible(RED, BLUE)) == "wrong"
    counterfactual = BLUE + ["counterfact_events", "belong_to"]                   # counterfact_events
    assert executor.answer(counterfactual, SCENE, _possible(YELLOW, GRAY)) == "correct"
    assert executor.answer(counterfactual, SCENE, _possible(RED, GREEN)) == "wrong"
    assert executor.answer(YELLOW + ["counterfact_events", "belong_to"], SCENE,
                           _possible(RED, GREEN)) == "correct"                    # "3" key read as int
    assert ans(["all_events"], BLUE, ["filter_counterfact", "count"]) == "1"      # filter_counterfact
    assert ans(["events"], BLUE, ["filter_counterfact", "unique", "query_object",
                                  "query_color"]) == "gray"


def test_execution_errors():
    with pytest.raises(ExecutionError, match="argument 0 must be an object set or an event set"):
        ans(["objects", "count", "unique"])
    with pytest.raises(ExecutionError, match="outside the observed frames"):
        ans(["objects", "25", "filter_moving", "count"])
    with pytest.raises(ExecutionError, match="not an answer"):
        ans(["objects"])
    with pytest.raises(ExecutionError, match="needs a collision"):
        ans(["events"], BLUE, ["filter_in", "unique"], BLUE, ["query_collision_partner"])
    with pytest.raises(IllPosedError, match="not part of the collision"):
        ans(["events"], RED, ["filter_collision", "first", "filter_order"], YELLOW,
            ["query_collision_partner", "query_color"])
    with pytest.raises(program.ProgramError, match="position 0 .'belong_to'."):
        executor.answer(["belong_to"], SCENE)
    with pytest.raises(MissingSceneDataError, match="without object 0"):
        ans(RED, ["counterfact_events", "count"])
    bare = _scene(future=False, counterfactuals=False)
    with pytest.raises(MissingSceneDataError, match="without `future`"):
        executor.answer(["unseen_events", "count"], bare)
    with pytest.raises(MissingSceneDataError, match="without `counterfactuals`"):
        executor.answer(BLUE + ["counterfact_events", "count"], bare)


def _broken(edit) -> dict:
    ann = scenes.annotation(SPECS, [(0, 1, 8)], T, scene_index=7)
    edit(ann)
    return ann


@pytest.mark.parametrize("edit, message", [
    (lambda a: a["object_property"][1].update(color="pink"),
     r"scene 7 .*object 1: field 'color' is 'pink'"),
    (lambda a: a.pop("motion_trajectory"), r"scene 7 .*field 'motion_trajectory' is missing"),
    (lambda a: a["motion_trajectory"].pop(4), r"frame 5: field 'frame_id' should be 4"),
    (lambda a: a["collision"].append({"object_ids": [0, 9], "frame_id": 3}),
     r"collision\[1\]: field 'object_ids'"),
    (lambda a: a["collision"].append({"object_ids": [0, 1], "frame_id": 40}),
     r"collision\[1\]: field 'frame_id' 40 lies outside"),
    (lambda a: a["motion_trajectory"][2]["objects"][0].pop("velocity"),
     r"frame 2, object 0: field 'velocity' is missing"),
])
def test_malformed_annotations(edit, message):
    with pytest.raises(ValueError, match=message):
        Scene.from_annotation(_broken(edit))


def test_malformed_counterfactual_and_future():
    ann = scenes.annotation(SPECS, [], T)
    with pytest.raises(ValueError, match="without object 1.*removed object 1"):
        Scene.from_annotation(ann, counterfactuals={1: scenes.world(SPECS, [(1, 2, 3)], range(30),
                                                                    absent=1)})
    with pytest.raises(ValueError, match="without object 1.*object 1 appears"):
        Scene.from_annotation(ann, counterfactuals={1: scenes.world(SPECS, [], range(30))})
    with pytest.raises(ValueError, match="future .*field 'frame_id' should be 20"):
        Scene.from_annotation(ann, future=scenes.world(SPECS, [], range(21, 30)))
    with pytest.raises(ValueError, match=r"future .*collision\[0\]: field 'frame_id' 5 lies outside"):
        Scene.from_annotation(ann, future=scenes.world(SPECS, [(0, 1, 5)], range(T, 30)))


def test_every_module_is_exercised():
    """Guards the module table: all 33 modules of the language are registered and tested."""
    source = open(__file__).read()
    missing = [m for m in program.MODULE_SIGNATURES if f'"{m}"' not in source]
    assert len(program.MODULE_SIGNATURES) == 33 and not missing
