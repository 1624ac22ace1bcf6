r"""The README's result tables, generated from the studies' results files.

  python studies/tables.py [--readme README.md]

A study is a directory `studies/{study}/` whose parts `{part}/results.json` are
written by `aloe.study`. For each study this prints one Markdown table of every
finished run of every part (mean ± sample standard deviation over finished
seeds), with the part's answer prior where it has one: per CLEVRER question type
(descriptive and its training accuracy; explanatory, predictive and counterfactual
per option and per question); a part evaluated with the counterfactual difficulty
split (Appendix B) in a table of that split; parts with CATER's metrics in a table of
top-1 / top-5 / L1 and their split by where the snitch is at the end; any other part
in a table of its own columns; runs that validated during training in a table of
their learning curves; and the study's `sampled_states_*.json` files
(`aloe.analysis.sampled_states`: the symbolic executor on videos rebuilt from the
sampled frames alone) in a last table. With `--readme` it also
replaces the text between the `<!-- table:{study}:begin -->` and
`<!-- table:{study}:end -->` lines of that file for every study the file marks,
so the README never holds a hand-typed result.
"""

import argparse
import os
import sys
from typing import Any, Optional, Sequence

from aloe import json_io
from aloe import study_results

HERE = os.path.dirname(os.path.abspath(__file__))
# Parts in reading order; a study's parts not named here follow in sorted order.
PART_ORDER = ("fraction_1.0", "fraction_0.5", "pixels", "table1_fraction_1.0",
              "table1_fraction_0.5", "optimizer", "auxiliary_weight_1.0", "slots",
              "eval_frames_strided", "eval_frames_spanning",
              "masking", "masking_pair", "long", "optimizer_long", "optimizer_long_4k",
              "counterfactual")
CLEVRER_COLUMNS = (("descriptive", "descriptive"),
                   # The training questions of the last logging interval (aloe.study_results).
                   ("train/descriptive_accuracy", "descriptive, training"),
                   ("explanatory_per_option", "explanatory / option"),
                   ("explanatory_per_question", "explanatory / question"),
                   ("predictive_per_option", "predictive / option"),
                   ("predictive_per_question", "predictive / question"),
                   ("counterfactual_per_option", "counterfactual / option"),
                   ("counterfactual_per_question", "counterfactual / question"))
# CATER: all videos, then split by where the snitch is at the end (aloe.study --split_by).
CATER_COLUMNS = (("top1", "top-1"), ("top5", "top-5"), ("l1", "L1"),
                 ("top1_snitch_contained_at_end", "top-1, snitch contained at the end"),
                 ("top1_not_snitch_contained_at_end", "top-1, not contained"),
                 ("l1_snitch_contained_at_end", "L1, contained"),
                 ("l1_not_snitch_contained_at_end", "L1, not contained"))
# The counterfactual difficulty split (Appendix B; aloe.clevrer.difficulty), a part's
# evaluation with eval.clevrer_annotations set: each category's share and accuracy.
COUNTERFACTUAL_SPLIT_COLUMNS = (
    ("counterfactual_per_option", "counterfactual / option"),
    ("counterfactual_no_collision_share", "no collision: share"),
    ("counterfactual_no_collision_per_option", "no collision / option"),
    ("counterfactual_descriptive_share", "answerable as descriptive: share"),
    ("counterfactual_descriptive_per_option", "answerable as descriptive / option"),
    ("counterfactual_hard_share", "hard: share"),
    ("counterfactual_hard_per_option", "hard / option"),
    ("counterfactual_hard_per_question", "hard / question"))
# Learning curves: parts whose runs validated during training (`train.eval_every`) get a
# row per validation step in one more table, with the columns some of them have.
CURVE_COLUMNS = (("train/descriptive_accuracy", "descriptive, training"),
                 ("valid/descriptive", "descriptive"),
                 ("valid/explanatory_per_option", "explanatory / option"),
                 ("valid/predictive_per_option", "predictive / option"),
                 ("valid/counterfactual_per_option", "counterfactual / option"),
                 ("valid/top1", "top-1"), ("valid/l1", "L1"))
# Columns shown only in a table where some run has them (runs before the training log).
OPTIONAL = frozenset({"train/descriptive_accuracy"})
# (marker metrics, columns) in the order the tables appear. A part goes in the table of
# a set whose markers it has one of, the set with the fewest markers (the most specific)
# first: a part with the difficulty split has CLEVRER's metrics too.
COLUMN_SETS = ((tuple(key for key, _ in CLEVRER_COLUMNS), CLEVRER_COLUMNS),
               (("counterfactual_hard_per_option",), COUNTERFACTUAL_SPLIT_COLUMNS),
               (tuple(key for key, _ in CATER_COLUMNS), CATER_COLUMNS))
_MATCH_ORDER = sorted(range(len(COLUMN_SETS)), key=lambda i: len(COLUMN_SETS[i][0]))
PRIOR = "answer prior"


def markers(study: str) -> tuple[str, str]:
    """The README lines that enclose `study`'s table."""
    return f"<!-- table:{study}:begin -->", f"<!-- table:{study}:end -->"


def _cell(metric: Optional[dict[str, Any]]) -> str:
    return study_results.format_metric(metric, digits=3)


def _parts(directory: str) -> list[str]:
    names = [n for n in os.listdir(directory)
             if os.path.isfile(os.path.join(directory, n, "results.json"))]
    rank = {name: i for i, name in enumerate(PART_ORDER)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def _rows(part: str, summary: dict[str, Any], columns: Sequence[str]) -> list[str]:
    """The table lines of one part's finished runs, its prior after them."""
    lines = []
    for row in sorted(summary["runs"], key=lambda r: r["name"] == PRIOR):
        if row["name"] == PRIOR:
            seeds = "–"
        elif row["finished_seeds"]:
            seeds = f"{len(row['finished_seeds'])}/{len(row['seeds'])}"
        else:
            continue
        lines.append(f"| {part} | {row['name']} | {seeds} | " + " | ".join(
            _cell(row["metrics"].get(key)) for key in columns) + " |")
    return lines


def _header(titles: Sequence[str]) -> list[str]:
    return ["| part | run | seeds | " + " | ".join(titles) + " |",
            "|---|---|---|" + "---|" * len(titles)]


def _curve_table(parts: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """The validation steps of every run with a 'curve' (`aloe.study_results`), or ''."""
    rows = [(part, row) for part, summary in parts for row in summary["runs"]
            if row.get("curve")]
    present = {tag for _, row in rows for point in row["curve"] for tag in point["metrics"]}
    shown = [(key, title) for key, title in CURVE_COLUMNS if key in present]
    if not shown:
        return ""
    lines = ["| part | run | step | seeds | " + " | ".join(t for _, t in shown) + " |",
             "|---|---|---|---|" + "---|" * len(shown)]
    for part, row in rows:
        for point in row["curve"]:
            lines.append(f"| {part} | {row['name']} | {point['step']} | "
                         f"{len(row['finished_seeds'])} | " + " | ".join(
                             _cell(point["metrics"].get(key)) for key, _ in shown) + " |")
    return "\n".join(lines)


SAMPLED_STATES_COLUMNS = (("collision_pairs", "accuracy", "collision pairs: accuracy"),
                          ("collision_pairs", "recall", "recall"),
                          ("collision_pairs", "specificity", "specificity"),
                          ("descriptive", "sampled", "executor: descriptive"),
                          ("explanatory", "sampled", "executor: explanatory / option"))


def _sampled_states_table(directory: str) -> str:
    """One row per `sampled_states_*.json` of a study (fewest frames first), or ''."""
    reports = []
    for name in sorted(os.listdir(directory)):
        if name.startswith("sampled_states_") and name.endswith(".json"):
            path = os.path.join(directory, name)
            report = json_io.read_json(path)
            try:
                reports.append(((report["num_frames"], report["frames"][-1]), [
                    report["collision_pairs"][key] if group == "collision_pairs"
                    else report["executor"][group][key]
                    for group, key, _ in SAMPLED_STATES_COLUMNS], report["eval_frames"]))
            except (KeyError, TypeError, IndexError) as err:
                raise ValueError(f"{path}: field {err} is missing or malformed (expected "
                                 "aloe.analysis.sampled_states' report).") from None
    if not reports:
        return ""
    lines = ["| frames | last frame | " + " | ".join(t for _, _, t in SAMPLED_STATES_COLUMNS)
             + " |", "|---|---|" + "---|" * len(SAMPLED_STATES_COLUMNS)]
    for (count, last), values, choice in sorted(reports, key=lambda r: r[0]):
        lines.append(f"| {count} {choice} | {last} | "
                     + " | ".join(f"{v:.3f}" for v in values) + " |")
    return "\n".join(lines)


def table(study: str, root: str = HERE) -> str:
    """The Markdown tables of `root/study`'s finished runs, each part's prior after its runs.

    Parts are grouped in one table per column set (`COLUMN_SETS`: CLEVRER's
    question types, the counterfactual difficulty split, CATER's top-1 / top-5 /
    L1 and their split; an `OPTIONAL`
    column only where one of its parts has it); a part with none of those metrics
    gets a table of its own results' columns.
    """
    directory = os.path.join(root, study)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory}: no such study directory.")
    members: list[list[tuple[str, dict[str, Any]]]] = [[] for _ in COLUMN_SETS]
    others = []
    for part in _parts(directory):
        path = os.path.join(directory, part, "results.json")
        summary = json_io.read_json(path)
        try:
            metrics = {key for row in summary["runs"] for key in row["metrics"]}
            for index in _MATCH_ORDER:
                if metrics & set(COLUMN_SETS[index][0]):
                    members[index].append((part, summary))
                    break
            else:
                columns = list(summary["columns"])
                others.append("\n".join(_header(columns) + _rows(part, summary, columns)))
        except (KeyError, TypeError) as err:
            raise ValueError(f"{path}: field {err} is missing or malformed "
                             "(expected aloe.study's results.json).") from None
    tables = []
    for parts, (_, columns) in zip(members, COLUMN_SETS):
        shown = [(key, title) for key, title in columns if key not in OPTIONAL or any(
            key in row["metrics"] for _, summary in parts for row in summary["runs"])]
        lines = _header([title for _, title in shown])
        for part, summary in parts:
            lines += _rows(part, summary, [key for key, _ in shown])
        if parts:
            tables.append("\n".join(lines))
    tables += others
    curves = _curve_table([(part, summary) for parts in members for part, summary in parts])
    if curves:
        tables.append(curves)
    sampled = _sampled_states_table(directory)
    if sampled:
        tables.append(sampled)
    return "\n\n".join(tables or ["\n".join(_header([t for _, t in CLEVRER_COLUMNS]))]) + "\n"


def replace_between_markers(path: str, study: str, content: str) -> None:
    """Replaces the lines between `study`'s markers in `path` with `content`."""
    begin, end = markers(study)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ValueError(f"{path}: needs exactly one {begin} line followed by one {end} line.")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}{begin}\n{content}{end}{tail}")


def studies_marked(path: str) -> list[str]:
    """The studies whose begin marker `path` holds, in file order."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    prefix, suffix = "<!-- table:", ":begin -->"
    found = []
    for line in text.splitlines():
        if line.startswith(prefix) and line.endswith(suffix):
            found.append(line[len(prefix):-len(suffix)])
    return found


def main(argv: Optional[Sequence[str]] = None, root: str = HERE) -> dict[str, str]:
    """Command line (see the module docstring); returns the tables by study."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", default="", help="file whose marked sections to replace")
    args = parser.parse_args(argv)
    if args.readme:
        names = studies_marked(args.readme)
    else:
        names = sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n))
                       and _parts(os.path.join(root, n)))
    tables = {name: table(name, root) for name in names}
    for name, content in tables.items():
        print(f"{name}:\n{content}")
        if args.readme:
            replace_between_markers(args.readme, name, content)
    return tables


if __name__ == "__main__":
    main(sys.argv[1:])
