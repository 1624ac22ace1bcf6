r"""Accuracy per question family beside the answer prior: which reasoning a model has learned.

    python -m aloe.analysis.families --root STORE --predictions WORKDIR/predictions_valid_N.json \
        [--split valid] [--train_split train] [--out report.json]

A family is a question's type and subtype (descriptive: `exist`, `count`,
`query_color`, ...) with the events its program needs: `collision`, `in`
(an entrance), `out` (an exit), `motion` (moving / stationary) and `order`
(first / second / last), e.g. `descriptive/query_color+collision`. For each
family the table gives the number of questions, the model's accuracy (answer
for descriptive questions, per option for the others) and the answer prior's
(`aloe.answer_prior`, from the training questions). `--root` holds the
question files `{split}.json` (a latent store's copies); the predictions are a
file in the submission format, as `aloe.evaluate` writes it.
"""

import argparse
import collections
import json
import os
import sys
from typing import Any, Mapping, Sequence

from aloe import answer_prior
from aloe.clevrer import difficulty
from aloe.data import clevrer

# Event -> the program modules that need it.
EVENTS = {"collision": ("filter_collision", "query_collision_partner"),
          "in": ("filter_in",), "out": ("filter_out",),
          "motion": ("filter_moving", "filter_stationary"), "order": ("filter_order",)}


def family(question: Mapping[str, Any]) -> str:
    """`type/subtype+event+...` of a CLEVRER question (events in `EVENTS` order)."""
    program = set(question.get("program", ()))
    for choice in question.get("choices", ()):
        program.update(choice.get("program", ()))
    name = question["question_type"]
    if question.get("question_subtype"):
        name += "/" + question["question_subtype"]
    return "+".join([name] + [e for e, modules in EVENTS.items() if program & set(modules)])


def answered(question: Mapping[str, Any]) -> bool:
    """Whether a question (`read_question_file` features) carries its answers."""
    if question["question_type"] == "descriptive":
        return bool(question["answer"])
    return all(choice["answer"] for choice in question["choices"])


def _score(question: Mapping[str, Any], answer: Any) -> list[bool]:
    """Right (per option, in choice order, for multiple choice) of `answer` to `question`;
    a multiple-choice answer is a list in choice order or `{choice_id: answer}`."""
    if question["question_type"] == "descriptive":
        return [answer == question["answer"]]
    choices = question["choices"]
    if isinstance(answer, Mapping):
        answer = [answer.get(choice["choice_id"]) for choice in choices]
    return [given == choice["answer"]
            for given, choice in zip(answer or [None] * len(choices), choices)]


def family_report(questions_file: str, predictions_file: str,
                  train_file: str) -> dict[str, dict[str, float]]:
    """`{family: {"count", "model", "prior"}}` over the answered questions of a split.

    Raises:
      ValueError: a malformed file (`aloe.data.clevrer.read_question_file`,
        `aloe.clevrer.difficulty.read_predictions`), or naming the predictions
        file and the question it lacks.
    """
    predicted = difficulty.read_predictions(predictions_file)
    prior = answer_prior.clevrer_prior_answers(
        [q for scene in clevrer.read_question_file(train_file).values()
         for q in filter(answered, scene["questions"])])
    model, baseline = collections.defaultdict(list), collections.defaultdict(list)
    counts = collections.Counter()
    for scene_index, scene in clevrer.read_question_file(questions_file).items():
        for q in filter(answered, scene["questions"]):
            key = (scene_index, q["question_id"])
            if key not in predicted:
                raise ValueError(f"{predictions_file}: no prediction for question "
                                 f"{q['question_id']} of scene {scene_index}.")
            if isinstance(predicted[key], str) != (q["question_type"] == "descriptive"):
                raise ValueError(f"{predictions_file}: question {q['question_id']} of scene "
                                 f"{scene_index} is {q['question_type']}, its prediction is "
                                 f"not: {predicted[key]!r}.")
            name = family(q)
            counts[name] += 1
            model[name] += _score(q, predicted[key])
            baseline[name] += _score(q, prior(q))
    return {name: {"count": counts[name], "model": sum(model[name]) / len(model[name]),
                   "prior": sum(baseline[name]) / len(baseline[name])}
            for name in sorted(counts, key=lambda n: (-counts[n], n))}


def format_report(report: Mapping[str, Mapping[str, float]]) -> str:
    """The report as a table, most common families first."""
    width = max([len(name) for name in report] + [6])
    lines = [f"{'family':{width}s} {'count':>6s} {'model':>6s} {'prior':>6s} {'gain':>6s}"]
    for name, row in report.items():
        lines.append(f"{name:{width}s} {row['count']:6d} {row['model']:6.3f} "
                     f"{row['prior']:6.3f} {row['model'] - row['prior']:+6.3f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="folder of the {split}.json question files")
    parser.add_argument("--predictions", required=True, help="predictions in submission format")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--train_split", default="train")
    parser.add_argument("--out", default=None, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    report = family_report(os.path.join(args.root, f"{args.split}.json"), args.predictions,
                           os.path.join(args.root, f"{args.train_split}.json"))
    print(format_report(report))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
