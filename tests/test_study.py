"""Tests of `aloe.study`: planning, tabulation over seeds, and a resumable two-run study."""

import json
import os

import numpy as np
import pytest

from aloe import reporting
from aloe import study
from aloe import study_results
from aloe.synthetic import toy_latents

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_CONFIG = os.path.join(REPO, "configs", "test.py")
ABLATIONS = os.path.join(REPO, "configs", "ablations.py")


def write_eval(run: study.Run, metrics: dict) -> None:
    """An evaluation file as `aloe.evaluate` writes it (metrics, counts, step, split)."""
    os.makedirs(run.workdir, exist_ok=True)
    with open(run.eval_file, "w") as f:
        json.dump({**metrics, "num_descriptive": 10, "step": 2, "split": "valid"}, f)


def test_summary_has_mean_and_sample_std_over_finished_seeds(tmp_path):
    runs = [study.Run(name, "cfg", seed, str(tmp_path / name / f"seed_{seed}"),
                      str(tmp_path / name / f"seed_{seed}" / "eval_valid_2.json"), ())
            for name, seed in (("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1))]
    values = {("a", 0): 0.5, ("a", 1): 0.75, ("a", 2): 0.25, ("b", 0): 0.9}
    for run in runs:
        if (run.name, run.seed) in values:  # b's seed 1 has not finished.
            x = values[run.name, run.seed]
            write_eval(run, {"predictive_per_option": 1 - x, "descriptive": x, "extra": 2 * x})
    summary = study_results.write_results(str(tmp_path), runs)
    # Paper order first, then the others alphabetically; counts, step and split are not metrics.
    assert summary["columns"] == ["descriptive", "predictive_per_option", "extra"]
    a, b = summary["runs"]
    assert (a["name"], a["seeds"], a["finished_seeds"]) == ("a", [0, 1, 2], [0, 1, 2])
    assert (b["seeds"], b["finished_seeds"]) == ([0, 1], [0])
    np.testing.assert_allclose(a["metrics"]["descriptive"]["mean"], 0.5)
    np.testing.assert_allclose(a["metrics"]["descriptive"]["std"],
                               np.std([0.5, 0.75, 0.25], ddof=1))
    np.testing.assert_allclose(a["metrics"]["extra"]["values"], [1.0, 1.5, 0.5])
    assert b["metrics"]["descriptive"] == {"mean": 0.9, "std": None, "values": [0.9]}
    with open(tmp_path / "results.json") as f:
        assert json.load(f) == summary
    table = (tmp_path / "results.md").read_text().splitlines()
    assert table[0] == "| run | seeds | descriptive | predictive_per_option | extra |"
    assert table[2] == "| a | 3/3 | 0.5000 ± 0.2500 | 0.5000 ± 0.2500 | 1.0000 ± 0.5000 |"
    assert table[3] == "| b | 1/2 | 0.9000 | 0.1000 | 1.8000 |"


def test_results_name_configs_inside_the_repository_relative_to_it(tmp_path):
    inside = os.path.join(study_results.REPO, "configs", "object_states.py")
    outside = str(tmp_path / "mine.py")
    assert study_results.portable(inside + ":full") == "configs/object_states.py:full"
    assert study_results.portable(inside) == "configs/object_states.py"
    assert study_results.portable(outside + ":x") == outside + ":x"
    run = study.Run("a", inside + ":full", 0, str(tmp_path / "a"), str(tmp_path / "e.json"), ())
    assert study_results.summarize([run])["runs"][0]["config"] == "configs/object_states.py:full"


def test_dry_run_prints_commands_and_runs_nothing(tmp_path, capsys):
    out = tmp_path / "study"
    status = study.main(["--out", str(out), "--run", f"base={TEST_CONFIG}",
                         "--run", f"mlp={ABLATIONS}:mlp,test", "--override", "data.root=/none",
                         "--override", "train.steps=7", "--seeds", "0,3", "--dry_run"])
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all("-m aloe.main" in line for line in lines)
    assert "mlp seed 3" in lines[3] and "--config.seed=3" in lines[3]
    assert f"--workdir={out}/mlp/seed_3" in lines[3] and "--config.train.steps=7" in lines[3]
    assert f"--config={ABLATIONS}:mlp,test" in lines[3]
    assert not any("--cpu_devices" in line for line in lines)  # Not given: JAX's default.
    assert not out.exists()
    study.main(["--out", str(out), "--run", f"base={TEST_CONFIG}", "--cpu_devices", "2",
                "--dry_run"])
    assert capsys.readouterr().out.strip().endswith("--cpu_devices=2")
    # Every config is loaded with the overrides before anything runs.
    with pytest.raises(ValueError, match="configs/test.py"):
        study.main(["--out", str(out), "--run", f"base={TEST_CONFIG}",
                    "--override", "data.no_such_field=1", "--dry_run"])
    with pytest.raises(ValueError, match="names must differ"):
        study.main(["--out", str(out), "--run", f"a={TEST_CONFIG}", "--run", f"a={TEST_CONFIG}",
                    "--dry_run"])
    with pytest.raises(ValueError, match="--seeds"):
        study.main(["--out", str(out), "--run", f"a={TEST_CONFIG}", "--override", "seed=3"])


@pytest.mark.slow
def test_two_run_study_writes_results_and_skips_finished_runs(tmp_path, capsys):
    root = tmp_path / "toy"
    toy_latents.write_toy_dataset(root, num_train=16, num_valid=8, seed=0)
    out = tmp_path / "study"
    args = ["--out", str(out), "--run", f"base={TEST_CONFIG}",
            "--run", f"mlp={ABLATIONS}:mlp,test"]
    overrides = [f"data.root={root}", "train.steps=2", "train.checkpoint_every=2",
                 "train.log_every=1", "data.num_frames=4", "model.num_layers=1"]
    for override in overrides:
        args += ["--override", override]
    assert study.main(args) == 0
    first = capsys.readouterr().out
    assert first.count(": running in ") == 2 and first.count(": done in ") == 2, first

    eval_files = [out / name / "seed_0" / "eval_valid_2.json" for name in ("base", "mlp")]
    stamps = [os.stat(path).st_mtime_ns for path in eval_files]
    with open(out / "results.json") as f:
        summary = json.load(f)
    assert [row["name"] for row in summary["runs"]] == ["base", "mlp"]
    assert summary["columns"][:2] == ["descriptive", "explanatory_per_option"]
    for row, path in zip(summary["runs"], eval_files):
        with open(path) as f:
            evaluated = json.load(f)
        logged = reporting.read_scalars(os.path.join(os.path.dirname(path), "scalars.jsonl"))
        evaluated.update({k: v for k, v in logged[2].items() if k.startswith("train/")})
        assert row["finished_seeds"] == [0]
        assert "train/loss" in summary["columns"]  # The training log's last interval.
        for column in summary["columns"]:
            np.testing.assert_equal(row["metrics"][column]["values"], [evaluated[column]])
    table = (out / "results.md").read_text().splitlines()
    assert [line.split(" | ")[0] for line in table[2:]] == ["| base", "| mlp"]
    assert "mlp" in (out / "mlp" / "seed_0" / "study.log").read_text()

    # Again: both runs are finished, so nothing trains and the results are rewritten.
    os.remove(out / "results.md")
    assert study.main(args) == 0
    second = capsys.readouterr().out
    assert second.count("finished, skipped") == 2 and "running in" not in second, second
    assert [os.stat(path).st_mtime_ns for path in eval_files] == stamps
    assert (out / "results.md").read_text().splitlines() == table

    # A changed command meets a workdir made by another one: an error, not a mixed run.
    with pytest.raises(ValueError, match="made by another command"):
        study.main(args + ["--override", "train.steps=3"])


def test_prior_row_tables_by_type_and_only(tmp_path, capsys):
    runs = [study.Run(name, "cfg", 0, str(tmp_path / name / "seed_0"),
                      str(tmp_path / name / "seed_0" / "eval_valid_2.json"), ())
            for name in ("a", "b")]
    write_eval(runs[0], {"descriptive": 0.8, "explanatory_per_option": 0.9,
                         "explanatory_per_question": 0.7, "counterfactual_hard_per_option": 0.6,
                         "overall_per_question": 0.5})
    # Run a's training log: the last interval's train/ scalars become its train/ columns
    # (a validation line after it, and b without a log, add none).
    writer = reporting.create_writer(runs[0].workdir)
    writer.write_scalars(1, {"train/descriptive_accuracy": 0.3, "train/loss": 2.0})
    writer.write_scalars(2, {"train/descriptive_accuracy": 0.75, "train/loss": 1.0})
    writer.write_scalars(2, {"valid/descriptive": 0.8})
    prior = {"descriptive": 0.4, "explanatory_per_option": 0.5}
    summary = study_results.write_results(str(tmp_path), runs, prior=prior, tables="by_type")
    assert summary["runs"][0]["metrics"]["train/descriptive_accuracy"]["values"] == [0.75]
    assert "train/loss" not in summary["runs"][1]["metrics"]
    assert "valid/descriptive" not in summary["columns"]
    assert [row["name"] for row in summary["runs"]] == ["a", "b", "answer prior"]
    assert summary["runs"][2]["metrics"]["descriptive"]["mean"] == 0.4
    text = (tmp_path / "results.md").read_text()
    sections = text.split("### ")[1:]
    assert [s.splitlines()[0] for s in sections] == [
        "descriptive", "explanatory", "counterfactual", "other metrics",
        "training, mean over the last logging interval", "validation during training"]
    assert sections[4].splitlines()[4] == "| a | 1/1 | 0.7500 | 1.0000 |"
    assert sections[5].splitlines()[2:] == [
        "| run | step | seeds | train/descriptive_accuracy | valid/descriptive |",
        "|---|---|---|---|---|", "| a | 2 | 1 | 0.7500 | 0.8000 |"]
    explanatory = sections[1].splitlines()
    assert explanatory[2] == ("| run | seeds | explanatory_per_option | "
                              "explanatory_per_question |")
    assert explanatory[4] == "| a | 1/1 | 0.9000 | 0.7000 |"
    assert explanatory[6] == "| answer prior | – | 0.5000 | – |"
    # --only runs a part: the others are skipped (dry run shows which would run).
    out = tmp_path / "study"
    study.main(["--out", str(out), "--run", f"base={TEST_CONFIG}", "--run",
                f"mlp={ABLATIONS}:mlp,test", "--override", "data.root=/none", "--seeds", "0,1",
                "--only", "mlp:1,base", "--dry_run"])
    lines = capsys.readouterr().out.splitlines()
    assert [("not selected" in line) for line in lines] == [False, False, True, False]


def test_validation_curve_is_averaged_over_seeds_at_the_steps_all_validated(tmp_path):
    runs = [study.Run("a", "cfg", seed, str(tmp_path / "a" / f"seed_{seed}"),
                      str(tmp_path / "a" / f"seed_{seed}" / "eval_valid_4.json"), ())
            for seed in (0, 1)]
    logs = {0: {2: 0.5, 4: 0.75}, 1: {2: 0.25, 3: 0.4, 4: 0.5}}  # Seed 1 also validated at 3.
    for run in runs:
        write_eval(run, {"descriptive": logs[run.seed][4]})
        writer = reporting.create_writer(run.workdir)
        for step, value in logs[run.seed].items():
            writer.write_scalars(step, {"train/descriptive_accuracy": value + 0.1,
                                        "train/loss": 1.0})
            writer.write_scalars(step, {"valid/descriptive": value, "valid/num_descriptive": 9})
        writer.write_scalars(5, {"train/descriptive_accuracy": 0.9})  # No validation at 5.
        writer.flush()
    summary = study_results.write_results(str(tmp_path), runs)
    curve = summary["runs"][0]["curve"]
    assert [point["step"] for point in curve] == [2, 4]
    np.testing.assert_allclose(curve[0]["metrics"]["valid/descriptive"]["mean"], 0.375)
    np.testing.assert_allclose(curve[1]["metrics"]["valid/descriptive"]["std"],
                               np.std([0.75, 0.5], ddof=1))
    np.testing.assert_allclose(curve[1]["metrics"]["train/descriptive_accuracy"]["values"],
                               [0.85, 0.6])
    lines = (tmp_path / "results.md").read_text().split("### validation during training")[1]
    assert "| a | 4 | 2 | 0.7250 ± 0.1768 | 0.6250 ± 0.1768 |" in lines.splitlines()


def test_cater_runs_split_by_a_labels_field(tmp_path):
    labels = {"v/a": {"label": 0, "camera": "static", "hidden": True},
              "v/b": {"label": 7, "camera": "moving", "hidden": False},
              "v/c": {"label": 35, "camera": "static", "hidden": False}}
    labels_file = tmp_path / "valid_labels.json"
    labels_file.write_text(json.dumps(labels))
    run = study.Run("cater", "cfg", 0, str(tmp_path / "w"), str(tmp_path / "w" / "eval_valid_2.json"),
                    (), str(labels_file))
    write_eval(run, {"top1": 0.5})
    # a: right; b: wrong by one cell (8 is next to 7), label second of the top 5; c: wrong.
    predictions = [{"name": "v/a", "label": 0, "prediction": 0, "top5": [0, 1, 2, 3, 4]},
                   {"name": "v/b", "label": 7, "prediction": 8, "top5": [8, 7, 1, 2, 3]},
                   {"name": "v/c", "label": 35, "prediction": 0, "top5": [0, 1, 2, 3, 4]}]
    (tmp_path / "w" / "predictions_valid_2.json").write_text(json.dumps(predictions))
    metrics = study_results.summarize([run], split_by=["hidden"])["runs"][0]["metrics"]
    mean = lambda key: metrics[key]["mean"]
    assert (mean("top1_hidden"), mean("top5_hidden"), mean("l1_hidden")) == (1.0, 1.0, 0.0)
    assert mean("top1_not_hidden") == 0.0 and mean("top5_not_hidden") == 0.5
    assert mean("l1_not_hidden") == pytest.approx((1 + 10) / 2)  # Cells 8 vs 7; 0 vs 35.
    assert "top1_static" not in metrics  # Only the requested split is added.
