"""The counterfactual difficulty split (paper Appendix B): classifier, report and command.

The hand-built video (20 frames, every object in view throughout):
  0 red metal cube        moves +x from frame 2 and hits 1 at frame 5.
  1 blue rubber sphere    set moving by 0, hits 2 at frame 10.
  2 green metal cylinder  hit by 1 at frame 10.
  3 yellow rubber cube    never moves, collides with nothing.
  4 gray rubber cylinder  never moves, collides with nothing.
Worked out by hand: without 3 (or 4) nothing changes; without 2, the collision 0-1
still happens; without 0, 1 never moves, so neither collision happens.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from aloe.clevrer import difficulty
from aloe.clevrer.scene import Event, Scene
from aloe.synthetic import clevrer as mini_clevrer
import clevrer_test_scenes as scenes

T = 20
SPECS = {
    0: scenes.spec("red", "metal", "cube", moving=(2, 5), velocity=(1.0, 0.0)),
    1: scenes.spec("blue", "rubber", "sphere", moving=(5, 10), velocity=(1.0, 0.0), start=(2.0, 0.0)),
    2: scenes.spec("green", "metal", "cylinder", moving=(10, 20), velocity=(1.0, 0.0), start=(4.0, 0.0)),
    3: scenes.spec("yellow", "rubber", "cube", start=(0.0, 3.0)),
    4: scenes.spec("gray", "rubber", "cylinder", start=(3.0, 3.0)),
}
COLLISIONS = [(0, 1, 5), (1, 2, 10)]
ANNOTATION = scenes.annotation(SPECS, COLLISIONS, T, scene_index=10000)
SCENE = Scene.from_annotation(ANNOTATION)
METAL_CUBE = ["objects", "metal", "filter_material", "cube", "filter_shape", "unique"]


def _color(color: str) -> list[str]:
    return ["objects", color, "filter_color", "unique"]


def _choice(choice_id: int, first: str, second: str, answer: str) -> dict:
    """'The <first> object collides with the <second> object', over possible collisions."""
    return {"choice_id": choice_id, "choice": f"The {first} object collides with the {second} object",
            "program": ["all_events"] + _color(first) + ["filter_collision"] + _color(second) +
                       ["filter_collision", "unique"],
            "answer": answer}


def _question(question_id: int, removed: list[str], choices: list[dict], negated: bool = False,
              filter_form: bool = False) -> dict:
    """'Which event will (not) happen if <removed> is removed?' in CLEVRER's program form.

    With `filter_form` the world without the object is reached through
    `filter_counterfact` over the possible collisions instead of `counterfact_events`.
    """
    world = (["all_events"] + removed + ["filter_counterfact"] if filter_form
             else removed + ["counterfact_events"])
    return {"question_id": question_id, "question_type": "counterfactual",
            "question": f"Which event will {'not ' if negated else ''}happen if it is removed?",
            "program": world + ["belong_to"] + (["negate"] if negated else []), "choices": choices}


def _no_collision(question_id: int = 0, **kwargs) -> dict:
    """Removes the yellow cube, which touches nothing: the answers are the video's."""
    return _question(question_id, _color("yellow"), [_choice(0, "red", "blue", "correct"),
                                                     _choice(1, "green", "gray", "wrong")], **kwargs)


def _descriptive(question_id: int = 1, **kwargs) -> dict:
    """Removes the green cylinder: it collides, but the collision red-blue still happens."""
    return _question(question_id, _color("green"), [_choice(0, "red", "blue", "correct"),
                                                    _choice(1, "yellow", "gray", "wrong")], **kwargs)


def _descriptive_negated(question_id: int = 1) -> dict:
    """'What will not happen without the green cylinder?': the video's outcomes, negated."""
    return _question(question_id, _color("green"), [_choice(0, "red", "blue", "wrong"),
                                                    _choice(1, "yellow", "gray", "correct")], negated=True)


def _hard(question_id: int = 0, **kwargs) -> dict:
    """Removes the red metal cube: the blue sphere then never reaches the green cylinder."""
    return _question(question_id, METAL_CUBE, [_choice(0, "blue", "green", "wrong"),
                                               _choice(1, "yellow", "gray", "wrong"),
                                               _choice(2, "blue", "yellow", "wrong")], **kwargs)


# ---- The classifier on the hand-built video.

def test_no_collision_question():
    analysis = difficulty.analyze(_no_collision(), SCENE)
    assert analysis.removed_object == 3
    assert analysis.collisions == ()
    assert analysis.descriptive_answers == ("correct", "wrong") == analysis.true_answers
    assert analysis.category == difficulty.NO_COLLISION


def test_descriptive_question_with_and_without_negation():
    analysis = difficulty.analyze(_descriptive(), SCENE)
    assert analysis.removed_object == 2
    assert analysis.collisions == (Event("collision", 10, (1, 2)),)
    assert analysis.descriptive_answers == ("correct", "wrong")
    assert difficulty.classify(_descriptive(), SCENE) == difficulty.DESCRIPTIVE
    negated = difficulty.analyze(_descriptive_negated(), SCENE)
    assert negated.descriptive_answers == ("wrong", "correct")
    assert negated.category == difficulty.DESCRIPTIVE


def test_hard_question():
    analysis = difficulty.analyze(_hard(), SCENE)
    assert analysis.removed_object == 0  # "the metal cube", resolved by the executor.
    assert analysis.collisions == (Event("collision", 5, (0, 1)),)
    assert analysis.descriptive_answers == ("correct", "wrong", "wrong")
    assert analysis.category == difficulty.HARD
    # The same choices with the video's outcomes as answers would be descriptive.
    as_video = _hard()
    as_video["choices"][0]["answer"] = "correct"
    assert difficulty.classify(as_video, SCENE) == difficulty.DESCRIPTIVE


def test_filter_counterfact_form_and_annotation_input_agree():
    for make, category in ((_no_collision, "no_collision"), (_descriptive, "descriptive"),
                           (_hard, "hard")):
        assert difficulty.classify(make(filter_form=True), SCENE) == category
        assert difficulty.classify(make(), ANNOTATION) == category


@pytest.mark.parametrize("edit, message", [
    (lambda q: q.update(question_type="predictive"), "question_id 0: field 'question_type'"),
    (lambda q: q.update(program=["events", "belong_to"]),
     "question_id 0: field 'program' has no counterfact_events"),
    (lambda q: q.update(program=["objects", "rubber", "filter_material", "unique",
                                 "counterfact_events", "belong_to"]),
     "question_id 0: field 'program': the removed object"),
    (lambda q: q["program"].insert(0, "bogus"), "question 0: field 'program'"),
    (lambda q: q["choices"][1].pop("answer"), "question_id 0, choice_id 1: field 'answer' is missing"),
    (lambda q: q["choices"][1].update(choice_id=0), "choice_id 0 appears twice"),
])
def test_malformed_question_is_named(edit, message):
    question = _no_collision()
    edit(question)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as raised:
        difficulty.analyze(question, SCENE, source="q.json: scene_index 10000")
    assert str(raised.value).startswith("q.json: scene_index 10000")


# ---- The report over a CLEVRER-layout folder of hand-built videos.

def _write(path: pathlib.Path, value) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
    return path


@pytest.fixture()
def hand_built_root(tmp_path) -> pathlib.Path:
    """Scenes 10000 and 10001 (the video above) with 4 counterfactual questions; 10002 has
    only a descriptive question and no annotation file."""
    for scene_index in (10000, 10001):
        _write(tmp_path / "annotations" / "validation" / "annotation_10000-11000" /
               f"annotation_{scene_index}.json",
               scenes.annotation(SPECS, COLLISIONS, T, scene_index=scene_index))
    descriptive = {"question_id": 2, "question_type": "descriptive", "question": "How many?",
                   "program": ["objects", "count"], "answer": "5"}
    _write(tmp_path / "questions" / "validation.json", [
        {"scene_index": 10000, "video_filename": "video_10000.mp4",
         "questions": [_no_collision(0), _descriptive(1), descriptive]},
        {"scene_index": 10001, "video_filename": "video_10001.mp4",
         "questions": [_hard(0), _descriptive_negated(1)]},
        {"scene_index": 10002, "video_filename": "video_10002.mp4", "questions": [descriptive]}])
    return tmp_path


def _choices(*answers: str) -> list[dict]:
    return [{"choice_id": i, "answer": a} for i, a in enumerate(answers)]


PREDICTIONS = [  # Right choices: 2/2, 1/2, then 2/3 (hard), 2/2.
    {"scene_index": 10000, "questions": [
        {"question_id": 0, "choices": _choices("correct", "wrong")},
        {"question_id": 1, "choices": _choices("correct", "correct")},
        {"question_id": 2, "answer": "5"}]},
    {"scene_index": 10001, "questions": [
        {"question_id": 0, "choices": _choices("correct", "wrong", "wrong")},
        {"question_id": 1, "choices": _choices("wrong", "correct")}]}]


def test_report_shares_and_accuracy_per_category(hand_built_root):
    predictions = _write(hand_built_root / "predictions.json", PREDICTIONS)
    report = difficulty.difficulty_report(hand_built_root / "questions" / "validation.json",
                                              hand_built_root / "annotations" / "validation",
                                              predictions)
    assert report["num_questions"] == 4 and report["num_scenes"] == 2
    rows = report["categories"]
    assert {name: rows[name]["count"] for name in rows} == {
        "no_collision": 1, "descriptive": 2, "hard": 1, "all": 4}
    assert [rows[name]["share"] for name in difficulty.CATEGORIES] == [0.25, 0.5, 0.25]
    assert report["descriptive_share_of_colliding"] == pytest.approx(2 / 3)
    expected_model = {"no_collision": (1.0, 1.0), "descriptive": (3 / 4, 1 / 2),
                      "hard": (2 / 3, 0.0), "all": (7 / 9, 2 / 4)}
    expected_descriptive = {"no_collision": (1.0, 1.0), "descriptive": (1.0, 1.0),
                            "hard": (2 / 3, 0.0), "all": (8 / 9, 3 / 4)}
    for name, row in rows.items():
        assert (row["model_per_option"], row["model_per_question"]) == pytest.approx(
            expected_model[name]), name
        assert (row["descriptive_answering_per_option"],
                row["descriptive_answering_per_question"]) == pytest.approx(
            expected_descriptive[name]), name


def test_report_errors_name_the_file_and_question(hand_built_root):
    questions = hand_built_root / "questions" / "validation.json"
    annotations = hand_built_root / "annotations" / "validation"
    incomplete = [dict(PREDICTIONS[0]), {"scene_index": 10001, "questions": PREDICTIONS[1]["questions"][1:]}]
    path = _write(hand_built_root / "incomplete.json", incomplete)
    with pytest.raises(ValueError, match=r"incomplete.json: scene_index 10001, question_id 0: no choice"):
        difficulty.difficulty_report(questions, annotations, path)
    fewer = json.loads(json.dumps(PREDICTIONS))
    fewer[0]["questions"][0]["choices"].pop()
    path = _write(hand_built_root / "fewer.json", fewer)
    with pytest.raises(ValueError, match=r"question_id 0: predicted choice_ids \[0\] differ"):
        difficulty.difficulty_report(questions, annotations, path)
    os.remove(difficulty.annotation_path(annotations, 10001))
    with pytest.raises(ValueError, match=r"scene_index 10001, question_id 0: the annotation .*"
                                         r"annotation_10000-11000.annotation_10001.json .* missing"):
        difficulty.difficulty_report(questions, annotations)


def test_command_prints_table_and_writes_report(hand_built_root):
    predictions = _write(hand_built_root / "predictions.json", PREDICTIONS)
    out = hand_built_root / "report" / "counterfactual.json"
    done = subprocess.run(
        [sys.executable, "-m", "aloe.analysis.counterfactual", "--clevrer_root", str(hand_built_root),
         "--split", "validation", "--predictions", str(predictions), "--out", str(out)],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    table = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[3:7]}
    assert table["hard"] == ["1", "25.0%", "66.7%", "0.0%", "66.7%", "0.0%"]
    assert table["all"][:2] == ["4", "100.0%"]
    expected = difficulty.difficulty_report(hand_built_root / "questions" / "validation.json",
                                                hand_built_root / "annotations" / "validation",
                                                predictions)
    assert json.loads(out.read_text()) == json.loads(json.dumps(expected))


# ---- The report on a generated mini-CLEVRER dataset.

@pytest.mark.slow
def test_report_on_generated_dataset(tmp_path):
    mini_clevrer.generate_clevrer(tmp_path, 5, 0, width=96, height=64, workers=1,
                                  questions_per_video=8, progress=False)
    questions_file = tmp_path / "questions" / "train.json"
    entries = json.loads(questions_file.read_text())
    expected = [(e["scene_index"], q["question_id"]) for e in entries for q in e["questions"]
                if q["question_type"] == "counterfactual"]
    assert expected, "the generated split should hold counterfactual questions"
    annotations = tmp_path / "annotations" / "train"
    report = difficulty.difficulty_report(questions_file, annotations)
    rows = report["categories"]
    assert report["num_questions"] == len(expected) == rows["all"]["count"]
    assert sum(rows[name]["count"] for name in difficulty.CATEGORIES) == len(expected)
    assert sum(rows[name]["share"] for name in difficulty.CATEGORIES) == pytest.approx(1.0)
    # The no_collision questions are those whose removed object has no entry in the
    # annotation's collision list (read here without the executor).
    found = difficulty.analyze_split(questions_file, annotations)
    assert [(s, a.question_id) for s, a in found] == expected
    touching = 0
    for scene_index, analysis in found:
        collisions = json.loads(pathlib.Path(difficulty.annotation_path(
            annotations, scene_index)).read_text())["collision"]
        touching += any(analysis.removed_object in c["object_ids"] for c in collisions)
    assert rows["no_collision"]["count"] == len(found) - touching
