r"""The README table of the object-state study, generated from its results files.

  python studies/object_states/tables.py [--readme README.md]

Prints one Markdown table of every finished run of the study's CLEVRER parts
(`studies/object_states/*/results.json`, written by `aloe.study`) with the
answer prior, per question type (descriptive; explanatory, predictive and
counterfactual per option / per question). With `--readme` it also replaces
the text between the `<!-- object_states_table:begin -->` and
`<!-- object_states_table:end -->` lines of that file, so the README never
holds a hand-typed number.
"""

import argparse
import json
import os
import sys
from typing import Any, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
PARTS = ("table1_fraction_1.0", "table1_fraction_0.5", "slots", "masking", "counterfactual")
COLUMNS = (("descriptive", "descriptive"),
           ("explanatory_per_option", "explanatory / option"),
           ("explanatory_per_question", "explanatory / question"),
           ("predictive_per_option", "predictive / option"),
           ("predictive_per_question", "predictive / question"),
           ("counterfactual_per_option", "counterfactual / option"),
           ("counterfactual_per_question", "counterfactual / question"))
BEGIN, END = "<!-- object_states_table:begin -->", "<!-- object_states_table:end -->"


def _cell(metric: Optional[dict[str, Any]]) -> str:
    if metric is None:
        return "–"
    if metric["std"] is None:
        return f"{metric['mean']:.3f}"
    return f"{metric['mean']:.3f} ± {metric['std']:.3f}"


def table(root: str = HERE) -> str:
    """The Markdown table of the finished runs of every part, with the answer prior last."""
    lines = ["| part | run | seeds | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|---|---|---|" + "---|" * len(COLUMNS)]
    prior = None
    for part in PARTS:
        path = os.path.join(root, part, "results.json")
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
        for row in summary["runs"]:
            if row["name"] == "answer prior":
                prior = row
                continue
            if not row["finished_seeds"]:
                continue
            seeds = f"{len(row['finished_seeds'])}/{len(row['seeds'])}"
            lines.append(f"| {part} | {row['name']} | {seeds} | " + " | ".join(
                _cell(row["metrics"].get(key)) for key, _ in COLUMNS) + " |")
    if prior is not None:
        lines.append("| | answer prior | – | " + " | ".join(
            _cell(prior["metrics"].get(key)) for key, _ in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def replace_between_markers(path: str, content: str) -> None:
    """Replaces the lines between BEGIN and END in `path` with `content`."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"{path}: needs exactly one {BEGIN} line followed by one {END} line.")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}{BEGIN}\n{content}{END}{tail}")


def main(argv: Optional[Sequence[str]] = None) -> str:
    """Command line (see the module docstring); returns the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", default="", help="file whose marked section to replace")
    args = parser.parse_args(argv)
    content = table()
    print(content, end="")
    if args.readme:
        replace_between_markers(args.readme, content)
    return content


if __name__ == "__main__":
    main(sys.argv[1:])
