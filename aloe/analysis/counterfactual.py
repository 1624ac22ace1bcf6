r"""The counterfactual difficulty split of CLEVRER (ALOE paper, Appendix B) as a table.

    python -m aloe.analysis.counterfactual --clevrer_root DIR --split validation \
        [--predictions WORKDIR/predictions_valid.json] [--out report.json]

Sorts a split's counterfactual questions into `no_collision`, `descriptive` and
`hard` (`aloe.clevrer.difficulty`, which says how) and prints the shares and,
with a prediction file in the submission format (as `aloe.evaluate` writes it),
the model's per-option and per-question accuracy per category.
"""

import json
import os
from typing import Any, Mapping, Sequence

from absl import app
from absl import flags

from aloe.clevrer import difficulty

FLAGS = flags.FLAGS


def format_report(report: Mapping[str, Any]) -> str:
    """A small table of a `difficulty_report`."""
    def percent(value: float | None) -> str:
        return "     -" if value is None else f"{100 * value:5.1f}%"

    with_model = report["predictions_file"] is not None
    lines = [f"Counterfactual difficulty: {report['num_questions']} questions on "
             f"{report['num_scenes']} videos of {report['questions_file']}",
             f"{'':13s} {'count':>6s} {'share':>6s}   descriptive answering"
             + ("   model" if with_model else ""),
             f"{'category':13s} {'':6s} {'':6s}   {'option':>6s} {'question':>8s}"
             + (f"   {'option':>6s} {'question':>8s}" if with_model else "")]
    for name, row in report["categories"].items():
        line = (f"{name:13s} {row['count']:6d} {percent(row['share'])}   "
                f"{percent(row['descriptive_answering_per_option'])} "
                f"{percent(row['descriptive_answering_per_question']):>8s}")
        if with_model:
            line += (f"   {percent(row['model_per_option'])} "
                     f"{percent(row['model_per_question']):>8s}")
        lines.append(line)
    share = report["descriptive_share_of_colliding"]
    lines.append(f"descriptive among the questions whose removed object collides: {percent(share)}")
    return "\n".join(lines)


def run(clevrer_root: difficulty.PathLike, split: str,
        predictions: difficulty.PathLike | None = None,
        out: difficulty.PathLike | None = None) -> dict[str, Any]:
    """The report of `{clevrer_root}/questions/{split}.json`; prints its table, writes `out` JSON."""
    root = os.fspath(clevrer_root)
    report = difficulty.difficulty_report(os.path.join(root, "questions", f"{split}.json"),
                               os.path.join(root, "annotations", split), predictions)
    print(format_report(report))
    if out is not None:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return report


def _define_flags() -> None:
    """The command's flags (defined only when the module runs as a program)."""
    flags.DEFINE_string("clevrer_root", None, "CLEVRER root holding questions/ and annotations/.")
    flags.DEFINE_string("split", "validation",
                        "Question split with answers: train or validation (test has none).")
    flags.DEFINE_string("predictions", None, "Optional prediction file (CLEVRER submission format).")
    flags.DEFINE_string("out", None, "Optional JSON file to write the report to.")
    flags.mark_flag_as_required("clevrer_root")


def main(argv: Sequence[str]) -> None:
    """absl entry point: prints the table of `--split` and writes `--out`."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    run(FLAGS.clevrer_root, FLAGS.split, FLAGS.predictions, FLAGS.out)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
