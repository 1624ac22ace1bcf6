r"""Answer priors: what answering without looking at the video scores, to print beside a model.

  python -m aloe.answer_prior --root=$LATENTS --out=prior.json            # CLEVRER
  python -m aloe.answer_prior --root=$CATER_LATENTS --dataset=cater --out=prior.json

CLEVRER (`{root}/{train_split}.json` and `{root}/{eval_split}.json`, the question
files of a latent store): descriptive, the most common training answer of each
`question_subtype` family (a family not seen in training scores 0); multiple
choice per type, the more common training label ("correct" / "wrong") for
every choice, scored per option and per question (a question is right when all
its choices carry that label). CATER (`{root}/{split}_labels.json`): the training
split's most common cells, scored top-1 / top-5 / L1 as a model that always
gives them, overall and per camera, and split by any boolean field of the
labels (e.g. `snitch_contained_at_end` of `aloe.data.cater_object_states`).
Metric names are those of the evaluation files, so `aloe.study` can put the
prior beside its rows.
"""

import argparse
import collections
import json
import os
import sys
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from aloe import json_io
from aloe.cater import grid
from aloe.data import cater_latents

TYPES = ("explanatory", "predictive", "counterfactual")


def _questions(path: str) -> list[dict[str, Any]]:
    scenes = json_io.read_json(path)
    if not isinstance(scenes, list):
        raise ValueError(f"{path}: expected a JSON list of scenes.")
    return [q for scene in scenes for q in scene.get("questions", [])]


def clevrer_prior_answers(
        train: Sequence[Mapping[str, Any]]) -> Callable[[Mapping[str, Any]], Any]:
    """The answer prior of the `train` questions, as a function of a question.

    Returns:
      `answer(question)`: for a descriptive question, its family's most common
      training answer (None for a family not seen in training); for a
      multiple-choice one, its type's more common training label for every
      choice, a list (None for a type without training labels).
    """
    family = lambda q: q.get("question_subtype", "")
    majority: dict[str, collections.Counter] = {}
    labels: dict[str, collections.Counter] = {}
    for q in train:
        if q["question_type"] == "descriptive":
            if "answer" in q:
                majority.setdefault(family(q), collections.Counter())[q["answer"]] += 1
        else:
            labels.setdefault(q["question_type"], collections.Counter()).update(
                c["answer"] for c in q["choices"] if "answer" in c)
    common = {kind: counts.most_common(1)[0][0] for kind, counts in labels.items() if counts}
    answers = {name: counts.most_common(1)[0][0] for name, counts in majority.items()}

    def answer(question: Mapping[str, Any]) -> Any:
        if question["question_type"] == "descriptive":
            return answers.get(family(question))
        label = common.get(question["question_type"])
        return None if label is None else [label] * len(question["choices"])
    return answer


def clevrer_prior(train_file: str, eval_file: str) -> dict[str, float]:
    """Accuracy of the answer prior of `train_file` on `eval_file` (evaluation metric names)."""
    answer = clevrer_prior_answers(_questions(train_file))
    valid = _questions(eval_file)
    desc = [q for q in valid if q["question_type"] == "descriptive" and "answer" in q]
    results = {"descriptive": float(np.mean([answer(q) == q["answer"] for q in desc]))
               if desc else 0.0}
    for kind in TYPES:
        questions = [q for q in valid if q["question_type"] == kind]
        if not questions or answer(questions[0]) is None:
            continue
        right = [[a == c["answer"] for a, c in zip(answer(q), q["choices"])] for q in questions]
        results[f"{kind}_per_option"] = float(np.mean([x for r in right for x in r]))
        results[f"{kind}_per_question"] = float(np.mean([all(r) for r in right]))
    return results


def _read_labels(root: str, split: str) -> dict[str, dict[str, Any]]:
    """The entries of `{root}/{split}_labels.json`, validated as training reads them."""
    path = cater_latents.labels_path(root, split)
    entries = json_io.read_json(path)
    cater_latents.parse_labels(entries, path)  # Errors name the file and the video.
    return entries


def grid_metrics(scores: np.ndarray, labels: np.ndarray, suffix: str = "") -> dict[str, float]:
    """top1 / top5 / l1 (with `suffix`) of scores `[N, 36]` against labels `[N]`."""
    if not len(labels):
        return {}
    return {f"top1{suffix}": float(grid.top1(scores, labels)),
            f"top5{suffix}": float(grid.top5(scores, labels)),
            f"l1{suffix}": float(np.mean(grid.l1_errors(scores, labels)))}


def split_metrics(scores: np.ndarray, labels: np.ndarray,
                  groups: dict[str, np.ndarray]) -> dict[str, float]:
    """`grid_metrics` over all rows and over each group of rows (bool masks `[N]`)."""
    results = grid_metrics(scores, labels)
    for name, rows in groups.items():
        results.update(grid_metrics(scores[rows], labels[rows], f"_{name}"))
    return results


def label_groups(entries: dict[str, dict[str, Any]], names: Sequence[str],
                 fields: Sequence[str]) -> dict[str, np.ndarray]:
    """Camera groups and, per boolean field F, the groups `F` and `not_F` of `names`."""
    groups = {camera: np.array([entries[n].get("camera") == camera for n in names])
              for camera in ("static", "moving")}
    for field in fields:
        values = np.array([bool(entries[n].get(field, False)) for n in names])
        groups[field], groups[f"not_{field}"] = values, ~values
    return groups


def cater_prior(root: str, train_split: str = "train", eval_split: str = "valid",
                fields: Sequence[str] = ()) -> dict[str, float]:
    """Scores of always giving the training split's most common cells (see the docstring)."""
    train, valid = _read_labels(root, train_split), _read_labels(root, eval_split)
    counts = np.bincount([int(e["label"]) for e in train.values()], minlength=grid.NUM_CELLS)
    # Ties broken towards lower cells, tiny enough not to reorder distinct counts.
    scores = counts - np.arange(grid.NUM_CELLS) * 1e-6
    names = sorted(valid)
    labels = np.array([int(valid[n]["label"]) for n in names])
    return split_metrics(np.broadcast_to(scores, (len(names), grid.NUM_CELLS)), labels,
                         label_groups(valid, names, fields))


def main(argv: Optional[Sequence[str]] = None) -> dict[str, float]:
    """Command line (see the module docstring); prints and writes the prior."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="latent store root")
    parser.add_argument("--dataset", choices=("clevrer", "cater"), default="clevrer")
    parser.add_argument("--train_split", default="train")
    parser.add_argument("--eval_split", default="valid")
    parser.add_argument("--split_by", default="", help="CATER: comma-separated bool fields")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    if args.dataset == "clevrer":
        prior = clevrer_prior(os.path.join(args.root, f"{args.train_split}.json"),
                              os.path.join(args.root, f"{args.eval_split}.json"))
    else:
        prior = cater_prior(args.root, args.train_split, args.eval_split,
                            [f for f in args.split_by.split(",") if f])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(prior, f, indent=1)
    print(json.dumps(prior, indent=1))
    return prior


if __name__ == "__main__":
    main(sys.argv[1:])
