"""A study's results: metrics of its runs over seeds, as `results.json` and Markdown tables.

`Run` is one (config, seed) of a study and its files; `aloe.study` plans and runs
them and calls `write_results`. One row per run name and
one column per metric: the floats of each finished seed's evaluation file (e.g.
CLEVRER's `descriptive` and `{type}_per_option` / `{type}_per_question`, or
CATER's `top1` / `top5` / `l1`), the mean over the finished seeds with the sample
standard deviation (ddof = 1) when there are several; an "answer prior" row when
given one; CATER's metrics split by a labels field (`grouped_cater_metrics`); and
the training metrics of each run's last logging interval, `train/...`, read from
its `scalars.jsonl` (`final_training_scalars`), which tell whether a model fits
its training questions better than held-out ones. Runs that validated during
training (`train.eval_every`) also get their learning curve (`validation_curve`),
averaged over seeds.
"""

import dataclasses
import json
import os
import statistics
import sys
from typing import Any, Optional, Sequence

import numpy as np

from aloe import answer_prior
from aloe import json_io
from aloe import reporting
from aloe.cater import grid

# The repository root: results name config files relative to it, so they read the same
# on every checkout.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Metrics first in this order (paper order), then any others alphabetically.
_METRIC_ORDER = (
    "descriptive", "explanatory_per_option", "explanatory_per_question",
    "predictive_per_option", "predictive_per_question", "counterfactual_per_option",
    "counterfactual_per_question", "multiple_choice_per_option", "multiple_choice_per_question",
    "overall_per_question", "top1", "top5", "l1")
_NOT_METRICS = ("step", "split")


@dataclasses.dataclass(frozen=True)
class Run:
    """One (config, seed) of a study.

    Attributes:
      name: the row's name.
      config: the config argument, `PATH[:arg]`, PATH absolute.
      seed: the value of `config.seed`.
      workdir: `{out}/{name}/seed_{seed}`.
      eval_file: the evaluation file that marks the run finished.
      args: the `aloe.main` arguments (after `python -m aloe.main`).
      labels_file: the CATER labels file of the evaluated split ("" for CLEVRER).
    """
    name: str
    config: str
    seed: int
    workdir: str
    eval_file: str
    args: tuple[str, ...]
    labels_file: str = ""

    def command(self) -> list[str]:
        """The full command line."""
        return [sys.executable, "-m", "aloe.main", *self.args]

    def finished(self) -> bool:
        """Whether its evaluation file exists."""
        return os.path.isfile(self.eval_file)


def _ordered_metrics(names: set[str]) -> list[str]:
    known = [m for m in _METRIC_ORDER if m in names]
    return known + sorted(names - set(known))


def grouped_cater_metrics(run: Run, fields: Sequence[str]) -> dict[str, float]:
    """top1 / top5 / l1 of a finished CATER run per group of `answer_prior.label_groups`.

    Read from the run's predictions file (`predictions_{split}_{steps}.json`, each
    video's top-5 cells) and its labels file.
    """
    directory, name = os.path.split(run.eval_file)
    path = os.path.join(directory, "predictions_" + name[len("eval_"):])
    predictions = json_io.read_json(path)
    entries = json_io.read_json(run.labels_file)
    missing = [p["name"] for p in predictions if p["name"] not in entries]
    if missing:
        raise ValueError(f"{path}: videos {missing[:3]} are not in {run.labels_file}.")
    names = [p["name"] for p in predictions]
    # Scores that rank the top-5 cells first, in order; the rest below them.
    scores = np.zeros((len(predictions), grid.NUM_CELLS))
    for row, p in enumerate(predictions):
        scores[row, p["top5"]] = np.arange(len(p["top5"]), 0, -1)
    labels = np.array([int(p["label"]) for p in predictions])
    groups = answer_prior.label_groups(entries, names, fields)
    return {k: v for k, v in answer_prior.split_metrics(scores, labels, groups).items()
            if any(k.endswith(f"_{f}") for f in fields)}


def run_scalars(workdir: str) -> dict[int, dict[str, float]]:
    """`workdir`'s `scalars.jsonl` as `reporting.read_scalars` gives it; {} without one."""
    path = os.path.join(workdir, reporting.SCALARS_FILE)
    return reporting.read_scalars(path) if os.path.isfile(path) else {}


def final_training_scalars(scalars: dict[int, dict[str, float]]) -> dict[str, float]:
    """The `train/*` scalars of the last training log of a run's `scalars` (`run_scalars`),
    each the mean over its logging interval; {} without one."""
    logged = [values for values in scalars.values()
              if any(tag.startswith("train/") for tag in values)]
    return {k: v for k, v in logged[-1].items() if k.startswith("train/")} if logged else {}


def validation_curve(scalars: dict[int, dict[str, float]]) -> dict[int, dict[str, float]]:
    """`{step: scalars}` at every step of a run's `scalars` (`run_scalars`) with `valid/*`
    scalars (`train.eval_every`): those and the `train/*` scalars of the interval ending there."""
    return {step: {k: v for k, v in values.items() if k.startswith(("valid/", "train/"))}
            for step, values in scalars.items()
            if any(tag.startswith("valid/") for tag in values)}


def _statistics(values: Sequence[float]) -> dict[str, Any]:
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None, "values": list(values)}


def _mean_curve(curves: Sequence[dict[int, dict[str, float]]]) -> list[dict[str, Any]]:
    """The steps every seed validated at, each `{'step', 'metrics': {tag: statistics}}`."""
    if not curves:
        return []
    steps = sorted(set.intersection(*(set(curve) for curve in curves)))
    points = []
    for step in steps:
        tags = set.intersection(*(set(curve[step]) for curve in curves))
        points.append({"step": step, "metrics": {
            tag: _statistics([curve[step][tag] for curve in curves]) for tag in sorted(tags)}})
    return points


def portable(config: str) -> str:
    """A run's `PATH[:arg]` with PATH relative to `REPO` when it lies inside it."""
    path, colon, arg = config.partition(":")
    if os.path.isabs(path) and os.path.commonpath([path, REPO]) == REPO:
        path = os.path.relpath(path, REPO)
    return path + colon + arg


def summarize(runs: Sequence[Run], prior: Optional[dict[str, float]] = None,
              split_by: Sequence[str] = ()) -> dict[str, Any]:
    """Mean and spread of each metric of each run name over its finished seeds.

    Returns:
      `{'columns': [metric, ...], 'runs': [{'name', 'config', 'seeds',
      'finished_seeds', 'metrics': {metric: {'mean', 'std', 'values'}}}]}`, run
      names in their first order; std is the sample standard deviation (ddof =
      1), None for one seed. With `prior`, a last row named "answer prior"
      (no seeds) holds its metrics; `split_by` adds the grouped CATER metrics. A
      run's training metrics at its end (`final_training_scalars`) are columns
      `train/...`, over the seeds whose workdir has them. A row whose runs
      validated during training (`validation_curve`) has a 'curve': `[{'step',
      'metrics': {tag: {'mean', 'std', 'values'}}}]` over the steps all its
      finished seeds validated at.
    """
    rows: dict[str, dict[str, Any]] = {}
    columns: set[str] = set()
    for run in runs:
        row = rows.setdefault(run.name, {"name": run.name, "config": portable(run.config),
                                         "seeds": [],
                                         "finished_seeds": [], "values": {}, "curves": []})
        row["seeds"].append(run.seed)
        if not run.finished():
            continue
        results = json_io.read_json(run.eval_file)
        if split_by:
            results.update(grouped_cater_metrics(run, split_by))
        row["finished_seeds"].append(run.seed)
        scalars = run_scalars(run.workdir)
        results.update(final_training_scalars(scalars))
        curve = validation_curve(scalars)
        if curve:
            row["curves"].append(curve)
        for key, value in results.items():
            if (key in _NOT_METRICS or key.startswith("num_") or isinstance(value, bool)
                    or not isinstance(value, (int, float))):
                continue
            columns.add(key)
            row["values"].setdefault(key, []).append(float(value))
    if prior is not None:
        rows["answer prior"] = {"name": "answer prior", "config": "", "seeds": [],
                                "finished_seeds": [], "curves": [],
                                "values": {k: [float(v)] for k, v in prior.items()}}
        columns.update(prior)
    for row in rows.values():
        row["metrics"] = {key: _statistics(v) for key, v in row.pop("values").items()}
        curves = row.pop("curves")
        if curves and len(curves) == len(row["finished_seeds"]):
            row["curve"] = _mean_curve(curves)
    return {"columns": _ordered_metrics(columns), "runs": list(rows.values())}


_TYPES = ("descriptive", "explanatory", "predictive", "counterfactual")


def markdown_by_type(summary: dict[str, Any]) -> str:
    """One `markdown_table` per CLEVRER question type, then one of the other metrics."""
    sections, rest = [], list(summary["columns"])
    for kind in _TYPES:
        columns = [c for c in summary["columns"] if c == kind or c.startswith(f"{kind}_")]
        rest = [c for c in rest if c not in columns]
        if columns:
            sections.append(f"### {kind}\n\n" + markdown_table(summary, columns))
    training = [c for c in rest if c.startswith("train/")]
    rest = [c for c in rest if c not in training]
    if rest:
        sections.append("### other metrics\n\n" + markdown_table(summary, rest))
    if training:
        sections.append("### training, mean over the last logging interval\n\n"
                        + markdown_table(summary, training))
    return "\n".join(part for part in sections + [markdown_curves(summary)] if part)


# The learning-curve columns, where runs have them: training, then validation.
CURVE_COLUMNS = ("train/descriptive_accuracy", "valid/descriptive",
                 "valid/explanatory_per_option", "valid/predictive_per_option",
                 "valid/counterfactual_per_option", "train/multiple_choice_per_option",
                 "valid/multiple_choice_per_option", "valid/top1", "valid/l1")


def markdown_curves(summary: dict[str, Any]) -> str:
    """A section "validation during training": a table of every row's 'curve' (run, step;
    the `CURVE_COLUMNS` it has), or '' when no row has one."""
    rows = [row for row in summary["runs"] if row.get("curve")]
    present = {tag for row in rows for point in row["curve"] for tag in point["metrics"]}
    columns = [c for c in CURVE_COLUMNS if c in present]
    if not columns:
        return ""
    lines = ["| run | step | seeds | " + " | ".join(columns) + " |",
             "|---|---|---|" + "---|" * len(columns)]
    for row in rows:
        for point in row["curve"]:
            cells = [format_metric(point["metrics"].get(c)) for c in columns]
            lines.append(f"| {row['name']} | {point['step']} | {len(row['finished_seeds'])} | "
                         + " | ".join(cells) + " |")
    return "### validation during training\n\n" + "\n".join(lines) + "\n"


def format_metric(metric: Optional[dict[str, Any]], digits: int = 4) -> str:
    """A summarised metric as a table cell: `mean ± std`, the single value, or "–"."""
    if metric is None:
        return "–"
    if metric.get("std") is None:
        return f"{metric['mean']:.{digits}f}"
    return f"{metric['mean']:.{digits}f} ± {metric['std']:.{digits}f}"


def markdown_table(summary: dict[str, Any], columns: Optional[Sequence[str]] = None) -> str:
    """`summary` as a Markdown table: `mean ± std` (or the single value) per cell.

    Args:
      summary: as `summarize` returns it.
      columns: the metrics to show (default all, `summary['columns']`).
    """
    columns = summary["columns"] if columns is None else list(columns)
    lines = ["| run | seeds | " + " | ".join(columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for row in summary["runs"]:
        cells = [format_metric(row["metrics"].get(column)) for column in columns]
        seeds = f"{len(row['finished_seeds'])}/{len(row['seeds'])}" if row["seeds"] else "–"
        lines.append(f"| {row['name']} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(out: str, runs: Sequence[Run], prior: Optional[dict[str, float]] = None,
                  split_by: Sequence[str] = (), tables: str = "wide") -> dict[str, Any]:
    """Writes `{out}/results.json` and `{out}/results.md`; returns the summary.

    Args:
      out: the study folder.
      runs: the planned runs (unfinished ones count as unfinished seeds).
      prior, split_by: as in `summarize`.
      tables: "wide" (one table) or "by_type" (`markdown_by_type`).
    """
    summary = summarize(runs, prior, split_by)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    if tables == "by_type":
        text = markdown_by_type(summary)
    else:
        text = "\n".join(part for part in (markdown_table(summary), markdown_curves(summary))
                          if part)
    with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as f:
        f.write(text)
    return summary
