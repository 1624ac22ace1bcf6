"""CLEVRER metrics against values worked out by hand."""

import numpy as np
import pytest

from aloe.clevrer import metrics


def test_choice_accuracy_by_hand():
    # Three questions; question 2 has only two choices.
    pred = np.array([[1, 0, 1, 0],    # labels 1 0 1 0: all 4 right.
                     [1, 1, 0, 0],    # labels 1 0 0 1: 2 of 4 right.
                     [0, 1, 1, 1]], bool)  # labels 0 1 (+2 absent): both right.
    labels = np.array([[1, 0, 1, 0], [1, 0, 0, 1], [0, 1, 0, 0]])
    mask = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]], bool)
    per_option, per_question = metrics.choice_accuracy(pred, labels, mask)
    assert per_option == pytest.approx(8 / 10)   # 4 + 2 + 2 right of 10 options.
    assert per_question == pytest.approx(2 / 3)  # Questions 0 and 2 are wholly right.


def test_clevrer_metrics_by_type_and_overall():
    desc_pred = np.array([3, 1, 4, 1, 5])
    desc_answer = np.array([3, 1, 0, 1, 0])  # 3 of 5 right.
    pred = np.array([[1, 0], [0, 0], [1, 1], [0, 1]], bool)
    labels = np.array([[1, 0], [0, 1], [1, 1], [0, 1]])
    mask = np.ones((4, 2), bool)
    mc_type = np.array([0, 0, 1, 2])  # explanatory x2, predictive, counterfactual.
    m = metrics.clevrer_metrics(desc_pred, desc_answer, pred, labels, mask, mc_type)
    assert m["descriptive"] == pytest.approx(0.6)
    assert m["explanatory_per_option"] == pytest.approx(3 / 4)
    assert m["explanatory_per_question"] == pytest.approx(1 / 2)
    assert m["predictive_per_question"] == 1.0
    assert m["counterfactual_per_option"] == 1.0
    assert m["multiple_choice_per_option"] == pytest.approx(7 / 8)
    assert m["multiple_choice_per_question"] == pytest.approx(3 / 4)
    assert m["overall_per_question"] == pytest.approx((3 + 3) / 9)
    assert (m["num_descriptive"], m["num_explanatory"], m["num_predictive"]) == (5, 2, 1)


def test_metrics_of_a_missing_type_are_nan():
    m = metrics.clevrer_metrics(np.array([1]), np.array([1]), np.zeros((1, 2), bool),
                                np.zeros((1, 2)), np.ones((1, 2), bool), np.array([0]))
    assert np.isnan(m["predictive_per_option"]) and m["num_predictive"] == 0
    assert m["explanatory_per_question"] == 1.0


def test_submission_format():
    out = metrics.submission(
        desc_scene=[10001, 10000], desc_question_id=[0, 2], desc_answer=["red", "3"],
        mc_scene=[10000], mc_question_id=[1], mc_choice_ids=np.array([[0, 1, 2]]),
        mc_pred_correct=np.array([[True, False, True]]), mc_mask=np.array([[1, 1, 0]], bool))
    assert out == [
        {"scene_index": 10000, "questions": [
            {"question_id": 1, "choices": [{"choice_id": 0, "answer": "correct"},
                                           {"choice_id": 1, "answer": "wrong"}]},
            {"question_id": 2, "answer": "3"}]},
        {"scene_index": 10001, "questions": [{"question_id": 0, "answer": "red"}]},
    ]
