"""Accuracy per question family (`aloe.analysis.families`) against hand-counted values."""

import json

import pytest

from aloe.analysis import families


def _scene(index, questions):
    return {"scene_index": index, "questions": questions}


def _write(path, scenes):
    path.write_text(json.dumps(scenes))
    return str(path)


def _descriptive(qid, answer, program):
    return {"question_id": qid, "question": "Is there ...?", "question_type": "descriptive",
            "question_subtype": "exist", "program": program, "answer": answer}


def test_families_score_model_and_prior_per_family(tmp_path):
    choice = lambda cid, answer, program=(): {"choice_id": cid, "choice": "...",
                                              "program": list(program), "answer": answer}
    train = _write(tmp_path / "train.json", [_scene(0, [
        _descriptive(0, "yes", ["objects"]), _descriptive(1, "yes", ["objects"]),
        _descriptive(2, "no", ["objects"]),
        {"question_id": 3, "question": "Which ...?", "question_type": "explanatory",
         "program": ["events"],
         "choices": [choice(0, "correct"), choice(1, "correct"), choice(2, "correct"),
                     choice(3, "wrong")]}])])
    valid = _write(tmp_path / "valid.json", [_scene(7, [
        _descriptive(0, "no", ["events", "filter_collision", "exist"]),
        _descriptive(1, "yes", ["objects", "filter_moving", "exist"]),
        {"question_id": 2, "question": "Which ...?", "question_type": "explanatory",
         "program": ["events"],
         "choices": [choice(0, "correct", ["events", "filter_in"]), choice(1, "wrong")]}])])
    predictions = _write(tmp_path / "predictions.json", [_scene(7, [
        {"question_id": 0, "answer": "no"}, {"question_id": 1, "answer": "no"},
        {"question_id": 2, "choices": [{"choice_id": 1, "answer": "correct"},
                                       {"choice_id": 0, "answer": "correct"}]}])])
    report = families.family_report(valid, predictions, train)
    assert report == {
        "descriptive/exist+collision": {"count": 1, "model": 1.0, "prior": 0.0},
        "descriptive/exist+motion": {"count": 1, "model": 0.0, "prior": 1.0},
        "explanatory+in": {"count": 1, "model": 0.5, "prior": 0.5}}
    assert "descriptive/exist+motion" in families.format_report(report)

    incomplete = _write(tmp_path / "incomplete.json", [_scene(7, [
        {"question_id": 0, "answer": "no"}])])
    with pytest.raises(ValueError, match=r"incomplete\.json: no prediction for question 1 "
                                         r"of scene 7"):
        families.family_report(valid, incomplete, train)

    one_answer = _write(tmp_path / "one_answer.json", [_scene(7, [
        {"question_id": 0, "answer": "no"}, {"question_id": 1, "answer": "no"},
        {"question_id": 2, "answer": "correct"}])])
    with pytest.raises(ValueError, match=r"one_answer\.json: question 2 of scene 7 is "
                                         r"explanatory, its prediction is not: 'correct'"):
        families.family_report(valid, one_answer, train)
    not_text = _write(tmp_path / "not_text.json", [_scene(7, [{"question_id": 0, "answer": 3}])])
    with pytest.raises(ValueError, match=r"not_text\.json: scene_index 7, question_id 0: "
                                         r"field 'answer' must be a string, got 3"):
        families.family_report(valid, not_text, train)


def test_real_questions_answered_right_score_one_in_every_family(clevrer_samples_dir,
                                                                 tmp_path):
    root = clevrer_samples_dir
    with open(root / "validation_explanatory_564.json") as f:
        scenes = json.load(f)
    truth = _write(tmp_path / "truth.json", [_scene(s["scene_index"], [
        {"question_id": q["question_id"],
         "choices": [{"choice_id": c["choice_id"], "answer": c["answer"]}
                     for c in q["choices"]]} for q in s["questions"]]) for s in scenes])
    report = families.family_report(str(root / "validation_explanatory_564.json"), truth,
                                    str(root / "train_explanatory_564.json"))
    assert sum(row["count"] for row in report.values()) == sum(
        len(s["questions"]) for s in scenes)
    assert all(row["model"] == 1.0 for row in report.values())
    assert all(name.startswith("explanatory") for name in report)
    assert any("collision" in name for name in report)
