r"""A study: train and evaluate several configs and seeds, then tabulate their metrics.

  python -m aloe.study --out=studies/table1 \
      --run full=configs/ablations.py:full --run mlp=configs/ablations.py:mlp \
      --override data.root=/path/to/clevrer_latents --seeds 0,1 [--only full:0]

(configs/ablations.py lists the command of the whole Table 1.) Each run NAME and
seed S trains and evaluates in its own workdir `{out}/NAME/seed_S`, through
`python -m aloe.main --mode=train` in a subprocess (`aloe.train.train`, then
`aloe.evaluate.evaluate` of the final parameters), so every run starts with
clean absl flags and JAX devices. `--override key=value` becomes
`--config.key=value` of every run; the seed becomes `--config.seed=S`;
`--cpu_devices N` is passed on to every run. A run's console output goes to
`{workdir}/study.log`.

`--only NAME[:SEED],...` runs a part of the study (the results still list
every run, unfinished seeds counted as such). Resuming: a run whose evaluation file `eval_{eval.split}_{train.steps}.json`
exists is finished and skipped; any other run is started again and resumes
from its latest checkpoint. Each workdir records the arguments of its command
in `study_command.json`; meeting a workdir whose recorded command differs is
an error (change --out, or remove that workdir).

Results (`aloe.study_results`): `{out}/results.json` and `{out}/results.md` have
one row per run and one column per metric, the mean over the finished seeds with
the sample standard deviation. `--dry_run` prints the commands without running
anything.

Options for reading the results: `--prior FILE` (a JSON object of metrics, e.g.
from `aloe.answer_prior`) adds an "answer prior" row beside the runs;
`--tables by_type` writes one Markdown table per CLEVRER question type
(descriptive, explanatory, predictive, counterfactual with its difficulty
split, then the rest) instead of one wide table; `--split_by FIELD` (CATER)
adds each run's top-1 / top-5 / L1 over the validation videos whose labels
entry has `FIELD` true (`_FIELD`) and false (`_not_FIELD`), from its
predictions file and `{data.root}/{eval.split}_labels.json`.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from typing import Any, Optional, Sequence

from absl import flags
from ml_collections import config_flags

from aloe import json_io
from aloe import reporting
from aloe import study_results
from aloe.study_results import Run

REPO = study_results.REPO


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
         seeds: Sequence[int], cpu_devices: int = 0) -> list[Run]:
    """Every (run, seed) of a study, its config checked, in order.

    Args:
      out: the study folder.
      runs: `(name, config)` pairs, config `PATH[:arg]`.
      overrides: `(key, value)` pairs applied to every run.
      seeds: the seeds of every run.
      cpu_devices: `aloe.main --cpu_devices` of every run (0: not given, JAX's default).

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
            tag = reporting.evaluation_tag(loaded.eval.split, loaded.train.steps, loaded.eval.tag)
            eval_file = os.path.join(workdir, f"eval_{tag}.json")
            args = (f"--config={config}", f"--workdir={workdir}", "--mode=train",
                    f"--config.seed={seed}", *[f"--config.{k}={v}" for k, v in overrides],
                    *([f"--cpu_devices={cpu_devices}"] if cpu_devices else []))
            labels_file = ""
            if loaded.task == "cater":
                labels_file = os.path.join(os.path.abspath(loaded.data.root),
                                           f"{loaded.eval.split}_labels.json")
            planned.append(Run(name, config, seed, workdir, eval_file, args, labels_file))
    return planned


def _check_recorded_command(run: Run) -> None:
    """Records the run's arguments in its workdir, or checks them against the record."""
    path = os.path.join(run.workdir, "study_command.json")
    if os.path.exists(path):
        recorded = json_io.read_json(path)
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="Study folder.")
    parser.add_argument("--run", action="append", required=True, metavar="NAME=CONFIG[:arg]",
                        help="A row: its name and config file (repeatable).")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="Config override for every run, e.g. train.steps=100 (repeatable).")
    parser.add_argument("--seeds", default="0", help="Comma-separated seeds, e.g. 0,1,2.")
    parser.add_argument("--cpu_devices", type=int, default=0,
                        help="aloe.main --cpu_devices of every run (0: JAX's default); on "
                             "2 cores the object-state rows train 1.4x faster as 2 devices.")
    parser.add_argument("--dry_run", action="store_true", help="Print the commands only.")
    parser.add_argument("--only", default="",
                        help="Run only these runs (comma-separated NAME or NAME:SEED); the "
                             "results still list every run.")
    parser.add_argument("--prior", default="", help="JSON file of answer-prior metrics.")
    parser.add_argument("--tables", choices=("wide", "by_type"), default="wide",
                        help="One wide table, or one per CLEVRER question type.")
    parser.add_argument("--split_by", default="",
                        help="CATER: comma-separated boolean fields of the labels file.")
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds {args.seeds!r}: expected comma-separated integers.")
    runs = plan(args.out, [_parse_run(r) for r in args.run],
                [_parse_override(o) for o in args.override], seeds, args.cpu_devices)
    only = {item.strip() for item in args.only.split(",") if item.strip()}
    failed = []
    for index, run in enumerate(runs, start=1):
        label = f"[study {index}/{len(runs)}] {run.name} seed {run.seed}"
        if run.finished():
            print(f"{label}: finished, skipped ({run.eval_file})", flush=True)
            continue
        if only and run.name not in only and f"{run.name}:{run.seed}" not in only:
            print(f"{label}: not selected by --only, skipped", flush=True)
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
    prior = None
    if args.prior:
        prior = json_io.read_json(args.prior)
        if not isinstance(prior, dict):
            raise ValueError(f"--prior {args.prior}: expected a JSON object of metrics.")
    split_by = [field for field in args.split_by.split(",") if field]
    summary = study_results.write_results(args.out, runs, prior, split_by, args.tables)
    print(study_results.markdown_table(summary), end="", flush=True)
    print(f"Wrote {os.path.join(args.out, 'results.json')} and results.md", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
