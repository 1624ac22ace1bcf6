"""The counterfactual difficulty split of CLEVRER (ALOE paper, Appendix B).

Some counterfactual questions ("which event will (not) happen if X is removed?")
can be answered without counterfactual reasoning. Appendix B sorts them in three:

  no_collision  the removed object collides with no other object in the video, so
                removing it changes no object's motion and every answer is the
                factual outcome;
  descriptive   it does collide, yet every choice is answered right by treating the
                question as a descriptive one: the world without the object is taken
                to be the video itself (so "will happen" means "happens in the video");
  hard          the rest: at least one choice's answer differs from what the video shows.

The symbolic executor (`aloe.clevrer.executor`) does the work on the factual
annotation: the removed object is the value of the object argument of
`counterfact_events` (or `filter_counterfact`); its collisions are `events <object>
filter_collision`; a choice's descriptive answer runs `choice + question` on the
scene whose world without that object is the observed video. The categories compare
those answers with the ground truth, so CLEVRER's test split (no answers) cannot be
sorted. The paper finds, on CLEVRER, about 47% no_collision questions and, among
the others, about 45% descriptive ones; ALOE scores 59.8% on the hard ones.
`difficulty_report` gives a split's shares and, with a prediction file in the
submission format (as `aloe.evaluate` writes it), the model's per-option and
per-question accuracy per category, beside those of answering descriptively.
The CLEVRER task adds it to its evaluation metrics; `aloe.analysis.counterfactual`
prints it as a table.
"""

import dataclasses
import math
import os
from typing import Any, Mapping, Sequence, Union

import numpy as np

from aloe.clevrer import executor
from aloe.clevrer import metrics
from aloe.clevrer import program as programs
from aloe.clevrer.scene import Event, Scene
from aloe.json_io import read_json

NO_COLLISION, DESCRIPTIVE, HARD = "no_collision", "descriptive", "hard"
CATEGORIES = (NO_COLLISION, DESCRIPTIVE, HARD)
COUNTERFACTUAL = "counterfactual"
CHOICE_ANSWERS = ("correct", "wrong")
# CLEVRER stores videos and annotations in folders of 1000 scenes.
SCENES_PER_FOLDER = 1000
# Modules that refer to the world without an object -> the argument slot of that object.
_REMOVED_OBJECT_SLOT = {"counterfact_events": 0, "filter_counterfact": 1}

PathLike = Union[str, os.PathLike]


@dataclasses.dataclass(frozen=True)
class CounterfactualAnalysis:
    """What the executor finds about one counterfactual question.

    Attributes:
      question_id: the question's id.
      removed_object: the id of the object the question removes.
      collisions: the observed collisions of that object, in time order.
      choice_ids: the choices' ids, in file order.
      true_answers: the file's answer per choice, "correct" or "wrong".
      descriptive_answers: per choice, the answer when the world without the object
        is taken to be the video itself.
    """
    question_id: int
    removed_object: int
    collisions: tuple[Event, ...]
    choice_ids: tuple[int, ...]
    true_answers: tuple[str, ...]
    descriptive_answers: tuple[str, ...]

    @property
    def category(self) -> str:
        """The Appendix B category: "no_collision", "descriptive" or "hard" (module docstring)."""
        if not self.collisions:
            return NO_COLLISION
        return DESCRIPTIVE if self.descriptive_answers == self.true_answers else HARD


def _removed_object_references(node: programs.Node) -> list[programs.Node]:
    """The object arguments of every counterfact_events / filter_counterfact call in a tree."""
    if not isinstance(node, programs.Call):
        return []
    found = []
    if node.module in _REMOVED_OBJECT_SLOT:
        found.append(node.args[_REMOVED_OBJECT_SLOT[node.module]])
    for arg in node.args:
        found.extend(_removed_object_references(arg))
    return found


def _int_field(entry: Any, key: str, where: str) -> int:
    value = entry.get(key) if isinstance(entry, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: field {key!r} must be an integer, got {value!r}.")
    return value


def _list_field(entry: Any, key: str, where: str) -> list:
    value = entry.get(key) if isinstance(entry, Mapping) else None
    if not isinstance(value, list):
        raise ValueError(f"{where}: field {key!r} must be a list, got {value!r}.")
    return value


def _choice_answers(question: Mapping, where: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The choices' ids and ground-truth answers."""
    ids, answers = [], []
    for position, choice in enumerate(_list_field(question, "choices", where)):
        choice_id = _int_field(choice, "choice_id", f"{where}, choice {position}")
        if choice_id in ids:
            raise ValueError(f"{where}: choice_id {choice_id} appears twice.")
        answer = choice.get("answer")
        if answer not in CHOICE_ANSWERS:
            problem = ("is missing (the categories need the ground-truth answers)"
                       if answer is None else f"must be 'correct' or 'wrong', got {answer!r}")
            raise ValueError(f"{where}, choice_id {choice_id}: field 'answer' {problem}.")
        ids.append(choice_id)
        answers.append(answer)
    return tuple(ids), tuple(answers)


def analyze(question: Mapping, scene: Union[Scene, Mapping], *,
            source: str = "question") -> CounterfactualAnalysis:
    """Finds the removed object, its collisions and the descriptive answer of each choice.

    Args:
      question: a counterfactual question in CLEVRER's schema, with choice answers.
      scene: the executor's scene, or the video's official annotation dict.
      source: where the question comes from, to start error messages (e.g. the
        question file and scene index).

    Raises:
      ValueError: naming `source`, the question id (and choice id) and the field: not
        a counterfactual question, a malformed program, a missing answer, no single
        removed object, or a program the executor cannot run on this scene.
    """
    if not isinstance(question, Mapping):
        raise ValueError(f"{source}: a question must be a JSON object, got {question!r}.")
    question_id = _int_field(question, "question_id", source)
    where = f"{source}, question_id {question_id}"
    if question.get("question_type") != COUNTERFACTUAL:
        raise ValueError(f"{where}: field 'question_type' must be 'counterfactual', got "
                         f"{question.get('question_type')!r}.")
    choice_ids, true_answers = _choice_answers(question, where)
    try:
        programs.validate_question(question)
    except ValueError as err:
        raise ValueError(f"{source}, {err}") from None
    scene = scene if isinstance(scene, Scene) else Scene.from_annotation(scene)

    references = _removed_object_references(programs.parse_program(question["program"], 1))
    if not references:
        raise ValueError(f"{where}: field 'program' has no counterfact_events or "
                         f"filter_counterfact module naming the removed object.")
    removed: dict[int, list[str]] = {}
    for tokens in map(programs.to_postfix, references):
        try:
            value = executor.execute(tokens, scene)
        except ValueError as err:
            raise ValueError(f"{where}: field 'program': the removed object {tokens}: {err}") from None
        if not isinstance(value, executor.ObjectRef):
            raise ValueError(f"{where}: field 'program': the removed object {tokens} is not one object.")
        removed.setdefault(value.object_id, tokens)
    if len(removed) != 1:
        raise ValueError(f"{where}: field 'program' removes different objects {sorted(removed)}.")
    (removed_object, tokens), = removed.items()
    collisions = executor.execute(["events"] + tokens + ["filter_collision"], scene).events

    observed = tuple(e for e in scene.events if e.kind not in ("start", "end"))
    as_if_descriptive = dataclasses.replace(scene, counterfactual_events={removed_object: observed})
    descriptive_answers = []
    for choice_id, choice in zip(choice_ids, question["choices"]):
        try:
            descriptive_answers.append(
                executor.answer(question["program"], as_if_descriptive, choice["program"]))
        except ValueError as err:
            raise ValueError(f"{where}, choice_id {choice_id}: {err}") from None
    return CounterfactualAnalysis(question_id, removed_object, tuple(collisions), choice_ids,
                                  true_answers, tuple(descriptive_answers))


def classify(question: Mapping, scene: Union[Scene, Mapping], *, source: str = "question") -> str:
    """The Appendix B category of a counterfactual question: "no_collision", "descriptive" or "hard".

    Arguments and errors as `analyze`.
    """
    return analyze(question, scene, source=source).category


def annotation_path(annotations_dir: PathLike, scene_index: int) -> str:
    """`{annotations_dir}/annotation_{chunk}/annotation_{scene:05d}.json`, chunk e.g. `10000-11000`.

    `annotations_dir` is one split's folder, `{clevrer_root}/annotations/{split}`.
    """
    low = scene_index // SCENES_PER_FOLDER * SCENES_PER_FOLDER
    return os.path.join(os.fspath(annotations_dir),
                        f"annotation_{low:05d}-{low + SCENES_PER_FOLDER:05d}",
                        f"annotation_{scene_index:05d}.json")


def _scene_entries(path: str) -> list:
    """The JSON list of per-scene entries of a question or prediction file."""
    entries = read_json(path)
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a JSON list of scenes, got {type(entries).__name__}.")
    return entries


def _load_scene(annotations_dir: PathLike, scene_index: int, needed_by: str) -> Scene:
    path = annotation_path(annotations_dir, scene_index)
    if not os.path.isfile(path):
        raise ValueError(f"{needed_by}: the annotation {path} of scene_index {scene_index} is missing.")
    annotation = read_json(path)
    try:
        scene = Scene.from_annotation(annotation)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    if scene.scene_index != scene_index:
        raise ValueError(f"{path}: field 'scene_index' is {scene.scene_index}, expected {scene_index}.")
    return scene


def analyze_split(questions_file: PathLike,
                  annotations_dir: PathLike) -> list[tuple[int, CounterfactualAnalysis]]:
    """(scene_index, analysis) of every counterfactual question of a question file, in file order.

    Raises:
      ValueError: naming the file, scene_index and question_id of a malformed
        question, or the missing annotation file.
    """
    source = os.fspath(questions_file)
    found, scene_indices = [], set()
    for position, entry in enumerate(_scene_entries(source)):
        scene_index = _int_field(entry, "scene_index", f"{source}: scene entry {position}")
        where = f"{source}: scene_index {scene_index}"
        if scene_index in scene_indices:
            raise ValueError(f"{where}: the scene appears twice.")
        scene_indices.add(scene_index)
        questions, question_ids = _list_field(entry, "questions", where), set()
        for question in questions:
            question_id = _int_field(question, "question_id", where)
            if question_id in question_ids or "question_type" not in question:
                problem = "appears twice" if question_id in question_ids else "has no 'question_type'"
                raise ValueError(f"{where}, question_id {question_id}: the question {problem}.")
            question_ids.add(question_id)
        counterfactual = [q for q in questions if q["question_type"] == COUNTERFACTUAL]
        if not counterfactual:
            continue
        scene = _load_scene(annotations_dir, scene_index,
                            f"{where}, question_id {counterfactual[0]['question_id']}")
        found += [(scene_index, analyze(q, scene, source=where)) for q in counterfactual]
    return found


def read_predictions(path: PathLike) -> dict[tuple[int, int], str | dict[int, str]]:
    """Predictions of a submission file: (scene_index, question_id) -> answer.

    The file is a list of `{scene_index, questions: [{question_id, answer} |
    {question_id, choices: [{choice_id, answer}]}]}`; a descriptive entry's answer is
    its string, a multiple-choice entry's is `{choice_id: "correct" | "wrong"}`.

    Raises:
      ValueError: naming the file, scene_index, question_id and choice_id of a
        malformed or repeated entry.
    """
    source = os.fspath(path)
    predictions: dict[tuple[int, int], dict[int, str]] = {}
    for position, entry in enumerate(_scene_entries(source)):
        scene_index = _int_field(entry, "scene_index", f"{source}: scene entry {position}")
        for question in _list_field(entry, "questions", f"{source}: scene_index {scene_index}"):
            question_id = _int_field(question, "question_id", f"{source}: scene_index {scene_index}")
            where = f"{source}: scene_index {scene_index}, question_id {question_id}"
            if (scene_index, question_id) in predictions:
                raise ValueError(f"{where}: the question is predicted twice.")
            if "choices" not in question:  # A descriptive question's answer.
                answer = question.get("answer")
                if not isinstance(answer, str):
                    raise ValueError(f"{where}: field 'answer' must be a string, got {answer!r}.")
                predictions[(scene_index, question_id)] = answer
                continue
            answers: dict[int, str] = {}
            for choice in _list_field(question, "choices", where):
                choice_id = _int_field(choice, "choice_id", where)
                answer = choice.get("answer")
                if answer not in CHOICE_ANSWERS or choice_id in answers:
                    problem = ("appears twice" if choice_id in answers else
                               f"field 'answer' must be 'correct' or 'wrong', got {answer!r}")
                    raise ValueError(f"{where}, choice_id {choice_id}: {problem}.")
                answers[choice_id] = answer
            predictions[(scene_index, question_id)] = answers
    return predictions


def _accuracies(analyses: Sequence[CounterfactualAnalysis],
                predicted: Sequence[tuple[str, ...]]) -> tuple[float, float]:
    """(per_option, per_question) accuracy of `predicted` answers (aligned with each question's choices)."""
    shape = (len(analyses), max((len(a.choice_ids) for a in analyses), default=0))
    labels, said_correct, mask = np.zeros(shape, np.int32), np.zeros(shape, bool), np.zeros(shape, bool)
    for row, (analysis, answers) in enumerate(zip(analyses, predicted)):
        width = len(analysis.choice_ids)
        mask[row, :width] = True
        labels[row, :width] = [answer == "correct" for answer in analysis.true_answers]
        said_correct[row, :width] = [answer == "correct" for answer in answers]
    return metrics.choice_accuracy(said_correct, labels, mask)


def _model_answers(found: Sequence[tuple[int, CounterfactualAnalysis]],
                   predictions: dict[tuple[int, int], str | dict[int, str]],
                   predictions_file: str,
                   questions_file: str) -> list[tuple[str, ...]]:
    """The predicted answer of each choice of each analysed question, in choice order."""
    answers = []
    for scene_index, analysis in found:
        where = (f"{predictions_file}: scene_index {scene_index}, question_id "
                 f"{analysis.question_id}")
        predicted = predictions.get((scene_index, analysis.question_id))
        if not isinstance(predicted, dict):
            raise ValueError(f"{where}: no choice predictions for this counterfactual question of "
                             f"{questions_file}.")
        if set(predicted) != set(analysis.choice_ids):
            raise ValueError(f"{where}: predicted choice_ids {sorted(predicted)} differ from the "
                             f"question's {sorted(analysis.choice_ids)}.")
        answers.append(tuple(predicted[c] for c in analysis.choice_ids))
    return answers


def difficulty_report(questions_file: PathLike, annotations_dir: PathLike,
                      predictions: PathLike | None = None) -> dict[str, Any]:
    """Shares of the three categories among a split's counterfactual questions, and accuracies.

    Args:
      questions_file: a CLEVRER question file with answers (`questions/{split}.json`).
      annotations_dir: the split's annotation folder (`annotations/{split}`).
      predictions: optional prediction file in the CLEVRER submission format.

    Returns:
      `{questions_file, annotations_dir, predictions_file, num_questions, num_scenes,
      descriptive_share_of_colliding, categories: {name: row}}`, a row per category
      and "all": `count`, `share`, `descriptive_answering_per_option` / `_per_question`
      (answering as if descriptive) and, with predictions, `model_per_option` /
      `model_per_question`; None for the accuracies of an empty category.

    Raises:
      ValueError: a malformed file (naming it, the scene_index and question_id), a
        missing annotation or prediction, or a file without counterfactual questions.
    """
    questions_file = os.fspath(questions_file)
    found = analyze_split(questions_file, annotations_dir)
    if not found:
        raise ValueError(f"{questions_file}: the file holds no counterfactual question.")
    model = None
    if predictions is not None:
        model = _model_answers(found, read_predictions(predictions), os.fspath(predictions),
                               questions_file)
    categories = {}
    for name in CATEGORIES + ("all",):
        rows = [i for i, (_, a) in enumerate(found) if name in ("all", a.category)]
        chosen = [found[i][1] for i in rows]
        row = {"count": len(rows), "share": len(rows) / len(found)}
        answerers = [("descriptive_answering", [a.descriptive_answers for a in chosen])]
        if model is not None:
            answerers.append(("model", [model[i] for i in rows]))
        for answerer, answers in answerers:
            for kind, value in zip(("per_option", "per_question"), _accuracies(chosen, answers)):
                row[f"{answerer}_{kind}"] = None if math.isnan(value) else value
        categories[name] = row
    colliding = len(found) - categories[NO_COLLISION]["count"]
    return {"questions_file": questions_file, "annotations_dir": os.fspath(annotations_dir),
            "predictions_file": None if predictions is None else os.fspath(predictions),
            "num_questions": len(found), "num_scenes": len({s for s, _ in found}),
            "descriptive_share_of_colliding":
                categories[DESCRIPTIVE]["count"] / colliding if colliding else None,
            "categories": categories}
