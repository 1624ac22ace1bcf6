"""CLEVRER metrics and the submission file format.

Descriptive questions are scored by accuracy. Multiple-choice questions
(explanatory, predictive, counterfactual) are scored two ways (Yi et al. 2020):
per option (each choice judged on its own) and per question (a question counts
only when every one of its choices is judged right).
"""

from collections.abc import Sequence

import numpy as np

MC_TYPES = ("explanatory", "predictive", "counterfactual")


def choice_accuracy(pred_correct: np.ndarray, labels: np.ndarray,
                    mask: np.ndarray) -> tuple[float, float]:
    """Per-option and per-question accuracy of multiple-choice predictions.

    Args:
      pred_correct: bool `[questions, choices]`: the model says "correct".
      labels: `[questions, choices]`: 1 correct, 0 wrong.
      mask: bool `[questions, choices]`: which choices exist.

    Returns:
      (per_option, per_question) accuracies; NaN when there are no questions.
    """
    mask = np.asarray(mask, bool)
    if not mask.any():
        return float("nan"), float("nan")
    right = (np.asarray(pred_correct, bool) == (np.asarray(labels) == 1)) | ~mask
    per_option = float(right[mask].mean())
    questions = mask.any(axis=1)
    per_question = float(right.all(axis=1)[questions].mean())
    return per_option, per_question


def clevrer_metrics(desc_pred: np.ndarray, desc_answer: np.ndarray, mc_pred_correct: np.ndarray,
                    mc_labels: np.ndarray, mc_mask: np.ndarray,
                    mc_type: np.ndarray) -> dict[str, float]:
    """All CLEVRER metrics of one evaluation.

    Args:
      desc_pred: int `[n_desc]` predicted answer classes.
      desc_answer: int `[n_desc]` true answer classes.
      mc_pred_correct: bool `[n_mc, choices]`.
      mc_labels: int `[n_mc, choices]`: 1 correct, 0 wrong.
      mc_mask: bool `[n_mc, choices]`: which choices exist.
      mc_type: int `[n_mc]`: index into `MC_TYPES`.

    Returns:
      `descriptive`, `{type}_per_option`, `{type}_per_question` for each
      multiple-choice type, `multiple_choice_per_option`,
      `multiple_choice_per_question`, `overall_per_question` (every question,
      descriptive or not, counted once), and the question counts `num_*`.
    """
    desc_right = np.asarray(desc_pred) == np.asarray(desc_answer)
    metrics = {"descriptive": float(desc_right.mean()) if desc_right.size else float("nan"),
               "num_descriptive": int(desc_right.size)}
    mc_type = np.asarray(mc_type)
    for index, name in enumerate(MC_TYPES):
        rows = mc_type == index
        option, question = choice_accuracy(mc_pred_correct[rows], mc_labels[rows], mc_mask[rows])
        metrics[f"{name}_per_option"] = option
        metrics[f"{name}_per_question"] = question
        metrics[f"num_{name}"] = int(rows.sum())
    option, question = choice_accuracy(mc_pred_correct, mc_labels, mc_mask)
    metrics["multiple_choice_per_option"] = option
    metrics["multiple_choice_per_question"] = question
    mask = np.asarray(mc_mask, bool)
    mc_right = ((np.asarray(mc_pred_correct, bool) == (np.asarray(mc_labels) == 1)) | ~mask)
    mc_right = mc_right.all(axis=1)[mask.any(axis=1)]
    total = desc_right.size + mc_right.size
    metrics["overall_per_question"] = (
        float((desc_right.sum() + mc_right.sum()) / total) if total else float("nan"))
    return metrics


def submission(desc_scene: Sequence[int], desc_question_id: Sequence[int],
               desc_answer: Sequence[str], mc_scene: Sequence[int],
               mc_question_id: Sequence[int], mc_choice_ids: np.ndarray,
               mc_pred_correct: np.ndarray, mc_mask: np.ndarray) -> list[dict]:
    """Predictions in the CLEVRER submission format.

    Returns:
      `[{scene_index, questions: [{question_id, answer} |
      {question_id, choices: [{choice_id, answer: 'correct'|'wrong'}]}]}]`,
      scenes and questions in ascending order.
    """
    scenes: dict[int, list[dict]] = {}
    for scene, qid, answer in zip(desc_scene, desc_question_id, desc_answer):
        scenes.setdefault(int(scene), []).append({"question_id": int(qid), "answer": str(answer)})
    for row, (scene, qid) in enumerate(zip(mc_scene, mc_question_id)):
        choices = [{"choice_id": int(mc_choice_ids[row, c]),
                    "answer": "correct" if mc_pred_correct[row, c] else "wrong"}
                   for c in range(mc_mask.shape[1]) if mc_mask[row, c]]
        scenes.setdefault(int(scene), []).append({"question_id": int(qid), "choices": choices})
    return [{"scene_index": scene,
             "questions": sorted(questions, key=lambda q: q["question_id"])}
            for scene, questions in sorted(scenes.items())]
