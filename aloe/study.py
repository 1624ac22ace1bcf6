r"""A study: train and evaluate several configs and seeds, then tabulate their metrics.

  python -m aloe.study --out=studies/table1 \
      --run full=configs/ablations.py:full --run mlp=configs/ablations.py:mlp \
      --override data.root=/path/to/clevrer_latents --seeds 0,1

(configs/ablations.py lists the command of the whole Table 1.) Each run NAME and
seed S trains and evaluates in its own workdir `{out}/NAME/seed_S`, through
`python -m aloe.main --mode=train` in a subprocess (`aloe.train.train`, then
`aloe.evaluate.evaluate` of the final parameters), so every run starts with
clean absl flags and JAX devices. `--override key=value` becomes
`--config.key=value` of every run; the seed becomes `--config.seed=S`. A run's
console output goes to `{workdir}/study.log`.

Resuming: a run whose evaluation file `eval_{eval.split}_{train.steps}.json`
exists is finished and skipped; any other run is started again and resumes
from its latest checkpoint. Each workdir records the arguments of its command
in `study_command.json`; meeting a workdir whose recorded command differs is
an error (change --out, or remove that workdir).

Results: `{out}/results.json` and `{out}/results.md` have one row per run and
one column per evaluation metric (the floats of the evaluation file, e.g.
CLEVRER's `descriptive` and `{type}_per_option` / `{type}_per_question`, or
CATER's `top1` / `top5` / `l1`), the mean over the finished seeds, with the
sample standard deviation (ddof = 1) when there are several. `--dry_run`
prints the commands without running anything.
"""

import argparse
import dataclasses
import json
import math
import os
import shlex
import subprocess
import sys
import time
from typing import Any, Optional, Sequence

from absl import flags
from ml_collections import config_flags

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
    """
    name: str
    config: str
    seed: int
    workdir: str
    eval_file: str
    args: tuple[str, ...]

    def command(self) -> list[str]:
        """The full command line."""
        return [sys.executable, "-m", "aloe.main", *self.args]

    def finished(self) -> bool:
        """Whether its evaluation file exists."""
        return os.path.isfile(self.eval_file)


def _parse_run(spec: str) -> tuple[str, str]:
    """`NAME=PATH[:arg]` -> (name, `ABSPATH[:arg]`)."""
    name, sep, config = spec.partition("=")
    if not sep or not name or not config:
        raise ValueError(f"--run {spec!r}: expected NAME=CONFIG_PATH[:arg].")
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"--run {spec!r}: NAME may hold letters, digits, '_' and '-' only.")
    path, colon, arg = config.partition(":")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--run {spec!r}: config file {path!r} does not exist.")
    return name, os.path.abspath(path) + colon + arg


def _parse_override(spec: str) -> tuple[str, str]:
    key, sep, value = spec.partition("=")
    if not sep or not key:
        raise ValueError(f"--override {spec!r}: expected key=value (e.g. train.steps=100).")
    if key == "seed":
        raise ValueError("--override seed=...: give the seeds with --seeds.")
    return key, value


def load_config(config: str, overrides: Sequence[tuple[str, str]]) -> Any:
    """The `ml_collections` config that `aloe.main` builds from the same arguments."""
    argv = ["aloe.study", f"--config={config}"] + [f"--config.{k}={v}" for k, v in overrides]
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=flag_values, lock_config=True,
                                    sys_argv=argv)
    if REPO not in sys.path:  # Config files import the `configs` package.
        sys.path.insert(0, REPO)
    try:
        flag_values(argv)
        loaded = flag_values.config
        loaded.train.steps  # pylint: disable=pointless-statement
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"Config {config} with overrides {dict(overrides)}: {err}") from None
    return loaded


def plan(out: str, runs: Sequence[tuple[str, str]], overrides: Sequence[tuple[str, str]],
         seeds: Sequence[int]) -> list[Run]:
    """Every (run, seed) of a study, its config checked, in order.

    Args:
      out: the study folder.
      runs: `(name, config)` pairs, config `PATH[:arg]`.
      overrides: `(key, value)` pairs applied to every run.
      seeds: the seeds of every run.

    Raises:
      ValueError: a repeated name, a config that does not load with the
        overrides (named), or one that would not evaluate after training.
    """
    names = [name for name, _ in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"--run names must differ, got {names}.")
    planned = []
    for name, config in runs:
        for seed in seeds:
            loaded = load_config(config, list(overrides) + [("seed", str(seed))])
            if not loaded.eval.after_training:
                raise ValueError(f"Run {name!r} ({config}): eval.after_training is False, so it "
                                 f"would never be evaluated.")
            workdir = os.path.join(os.path.abspath(out), name, f"seed_{seed}")
            eval_file = os.path.join(workdir,
                                     f"eval_{loaded.eval.split}_{loaded.train.steps}.json")
            args = (f"--config={config}", f"--workdir={workdir}", "--mode=train",
                    f"--config.seed={seed}", *[f"--config.{k}={v}" for k, v in overrides])
            planned.append(Run(name, config, seed, workdir, eval_file, args))
    return planned


def _check_recorded_command(run: Run) -> None:
    """Records the run's arguments in its workdir, or checks them against the record."""
    path = os.path.join(run.workdir, "study_command.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            recorded = json.load(f)
        if recorded != list(run.args):
            raise ValueError(f"{path}: this workdir was made by another command:\n  "
                             f"{shlex.join(recorded)}\nnot\n  {shlex.join(run.args)}\nUse "
                             f"another --out, or remove {run.workdir}.")
        return
    os.makedirs(run.workdir, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(list(run.args), f, indent=1)


def execute(run: Run) -> int:
    """Trains and evaluates one run in a subprocess; returns its exit status."""
    _check_recorded_command(run)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    with open(os.path.join(run.workdir, "study.log"), "a", encoding="utf-8") as log:
        log.write(f"$ {shlex.join(run.command())}\n")
        log.flush()
        return subprocess.run(run.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                              check=False).returncode


def _ordered_metrics(names: set[str]) -> list[str]:
    known = [m for m in _METRIC_ORDER if m in names]
    return known + sorted(names - set(known))


def summarize(runs: Sequence[Run]) -> dict[str, Any]:
    """Mean and spread of each metric of each run name over its finished seeds.

    Returns:
      `{'columns': [metric, ...], 'runs': [{'name', 'config', 'seeds',
      'finished_seeds', 'metrics': {metric: {'mean', 'std', 'values'}}}]}`, run
      names in their first order; std is the sample standard deviation (ddof =
      1), None for one seed.
    """
    rows: dict[str, dict[str, Any]] = {}
    columns: set[str] = set()
    for run in runs:
        row = rows.setdefault(run.name, {"name": run.name, "config": run.config, "seeds": [],
                                         "finished_seeds": [], "values": {}})
        row["seeds"].append(run.seed)
        if not run.finished():
            continue
        with open(run.eval_file, encoding="utf-8") as f:
            results = json.load(f)
        row["finished_seeds"].append(run.seed)
        for key, value in results.items():
            if (key in _NOT_METRICS or key.startswith("num_") or isinstance(value, bool)
                    or not isinstance(value, (int, float))):
                continue
            columns.add(key)
            row["values"].setdefault(key, []).append(float(value))
    for row in rows.values():
        values = row.pop("values")
        row["metrics"] = {key: {"mean": _mean(v), "std": _std(v), "values": v}
                          for key, v in values.items()}
    return {"columns": _ordered_metrics(columns), "runs": list(rows.values())}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _std(values: Sequence[float]) -> Optional[float]:
    if len(values) < 2:
        return None
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def markdown_table(summary: dict[str, Any]) -> str:
    """`summary` as a Markdown table: `mean ± std` (or the single value) per cell."""
    columns = summary["columns"]
    lines = ["| run | seeds | " + " | ".join(columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for row in summary["runs"]:
        cells = []
        for column in columns:
            metric = row["metrics"].get(column)
            if metric is None:
                cells.append("–")
            elif metric["std"] is None:
                cells.append(f"{metric['mean']:.4f}")
            else:
                cells.append(f"{metric['mean']:.4f} ± {metric['std']:.4f}")
        seeds = f"{len(row['finished_seeds'])}/{len(row['seeds'])}"
        lines.append(f"| {row['name']} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(out: str, runs: Sequence[Run]) -> dict[str, Any]:
    """Writes `{out}/results.json` and `{out}/results.md`; returns the summary."""
    summary = summarize(runs)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as f:
        f.write(markdown_table(summary))
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="Study folder.")
    parser.add_argument("--run", action="append", required=True, metavar="NAME=CONFIG[:arg]",
                        help="A row: its name and config file (repeatable).")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="Config override for every run, e.g. train.steps=100 (repeatable).")
    parser.add_argument("--seeds", default="0", help="Comma-separated seeds, e.g. 0,1,2.")
    parser.add_argument("--dry_run", action="store_true", help="Print the commands only.")
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds {args.seeds!r}: expected comma-separated integers.")
    runs = plan(args.out, [_parse_run(r) for r in args.run],
                [_parse_override(o) for o in args.override], seeds)
    failed = []
    for index, run in enumerate(runs, start=1):
        label = f"[study {index}/{len(runs)}] {run.name} seed {run.seed}"
        if run.finished():
            print(f"{label}: finished, skipped ({run.eval_file})", flush=True)
            continue
        if args.dry_run:
            print(f"{label}: {shlex.join(run.command())}", flush=True)
            continue
        print(f"{label}: running in {run.workdir}", flush=True)
        start = time.time()
        status = execute(run)
        if status == 0 and run.finished():
            print(f"{label}: done in {time.time() - start:.0f} s", flush=True)
        else:
            failed.append(run)
            print(f"{label}: FAILED (exit status {status}); see "
                  f"{os.path.join(run.workdir, 'study.log')}", flush=True)
    if args.dry_run:
        return 0
    summary = write_results(args.out, runs)
    print(markdown_table(summary), end="", flush=True)
    print(f"Wrote {os.path.join(args.out, 'results.json')} and results.md", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
