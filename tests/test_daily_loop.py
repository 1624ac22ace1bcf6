"""The daily loop: validation during training in TensorBoard, quiet logs, the local launcher."""

import glob
import logging as std_logging
import os
import re
import subprocess
import sys
import tempfile

import jax
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from aloe import evaluate
from aloe import json_io
from aloe import parallel
from aloe import reporting
from aloe import tasks
from aloe import train
from aloe.synthetic import toy_latents
from configs import test as test_config

import subprocess_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("toy"))
    toy_latents.write_toy_dataset(root, num_train=32, num_valid=24, seed=0)
    return root


def make_config(root, **overrides):
    config = test_config.get_config()
    config.data.root = root
    config.update_from_flattened_dict({"train.steps": 6, "train.log_every": 3,
                                       "train.checkpoint_every": 6, **overrides})
    return config


def scalars(logdir):
    """tag -> [(step, value)] of every scalar, read the way TensorBoard's own tools do."""
    accumulator = event_accumulator.EventAccumulator(logdir)
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)]
            for tag in accumulator.Tags()["scalars"]}


def test_validation_reaches_tensorboard_and_leaves_training_unchanged(toy_root, tmp_path):
    config = make_config(toy_root, **{"train.eval_every": 3, "train.eval_batches": 1})
    workdir = str(tmp_path / "validated")
    state = train.train(config, workdir)
    found = scalars(workdir)

    # Validation at the configured steps, with the final evaluation's metrics.
    for name in ("descriptive", "multiple_choice_per_option", "explanatory_per_option"):
        assert [step for step, _ in found[f"valid/{name}"]] == [3, 6], sorted(found)
    # The learning rate at each log line: the schedule's value at the last update.
    schedule = train.make_schedule(config.optimizer, config.train.steps)
    assert [s for s, _ in found["train/learning_rate"]] == [3, 6]
    np.testing.assert_allclose([v for _, v in found["train/learning_rate"]],
                               [float(schedule(2)), float(schedule(5))], rtol=1e-6)
    assert [s for s, _ in found["train/loss"]] == [3, 6]

    # The step-6 numbers are those of the first evaluation batch of the final parameters.
    task = tasks.build(config)
    records = evaluate.run_split(task, state.params, "valid", parallel.make_mesh(),
                                 max_batches=1)
    assert len(records["desc_answer"]) == config.eval.batch_size  # One batch, not the split.
    with tempfile.TemporaryDirectory() as scratch:
        expected = task.summarize(records, scratch, "check")
    for name in ("descriptive", "multiple_choice_per_option", "num_descriptive"):
        assert found[f"valid/{name}"][-1][1] == pytest.approx(expected[name], abs=1e-6)
    # Validation's result files are not left in the workdir.
    assert not glob.glob(os.path.join(workdir, "predictions_*"))

    # Validation consumes no training randomness and no batches: same parameters.
    plain = train.train(make_config(toy_root), str(tmp_path / "plain"))
    for a, b in zip(jax.tree.leaves(jax.device_get(plain.params)),
                    jax.tree.leaves(jax.device_get(state.params))):
        np.testing.assert_array_equal(a, b)
    assert not any(tag.startswith("valid/") for tag in scalars(str(tmp_path / "plain")))


def test_library_info_lines_are_hidden_unless_asked():
    absl_logger = std_logging.getLogger("absl")
    record = lambda path, level: std_logging.LogRecord("absl", level, path, 1, "m", (), None)
    orbax = os.path.join(os.path.dirname(std_logging.__file__), "orbax", "manager.py")
    ours = os.path.join(REPO, "aloe", "train.py")
    try:
        reporting.configure_logging()
        assert not absl_logger.filter(record(orbax, std_logging.INFO))
        assert absl_logger.filter(record(orbax, std_logging.WARNING))
        assert absl_logger.filter(record(ours, std_logging.INFO))
        reporting.configure_logging(show_libraries=True)
        assert absl_logger.filter(record(orbax, std_logging.INFO))
    finally:
        reporting.configure_logging(show_libraries=True)


def test_progress_lines_give_rate_and_eta(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(reporting.time, "time", lambda: clock[0])
    progress = reporting.Progress("evaluating valid", 40)
    clock[0] = 105.0
    progress.count = 10
    assert progress.line() == ("evaluating valid: 10/40 batches, 2.00/s, ETA 0:00:15, "
                               "elapsed 0:00:05")
    assert reporting.format_duration(3725) == "1:02:05"
    logged = []
    monkeypatch.setattr(reporting.logging, "info", lambda fmt, *args: logged.append(fmt % args))
    progress.done()                               # Nothing logged yet: a short loop is silent.
    clock[0] = 106.0
    progress.update(2)                            # 6 s after the start: not yet due.
    clock[0] = 121.0
    progress.update(8)                            # 21 s: due.
    progress.done()
    assert logged == ["evaluating valid: 20/40 batches, 0.95/s, ETA 0:00:21, elapsed 0:00:21",
                      "evaluating valid: 20/40 batches, 0.95/s, elapsed 0:00:21 (done)"]


ABSL_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ (\S+?):\d+\] (.*)$")


@pytest.mark.slow
def test_local_launcher_runs_two_processes_with_the_project_python(toy_root, tmp_path):
    """`launch/local.sh 2` right after the README's set-up: no PYTHON, no activated venv."""
    venv_python = os.path.join(REPO, ".venv", "bin", "python")
    assert os.path.exists(venv_python), "the README's set-up makes .venv"
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHON", "VIRTUAL_ENV", "XLA_FLAGS", "JAX_PLATFORMS")}
    env.update(LOG_DIR=str(tmp_path / "logs"), TF_CPP_MIN_LOG_LEVEL="2")
    workdir = str(tmp_path / "two")
    done = subprocess.run(
        ["bash", os.path.join(REPO, "launch", "local.sh"), "2", "--config=configs/test.py",
         f"--workdir={workdir}", f"--config.data.root={toy_root}", "--config.train.steps=4",
         "--config.train.log_every=2", "--config.train.checkpoint_every=4",
         "--config.train.eval_every=2", "--config.train.eval_batches=1",
         "--config.eval.after_training=False"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    logs = {i: (tmp_path / "logs" / f"process_{i}.log").read_text() for i in (0, 1)}
    assert done.returncode == 0, done.stderr + logs[0][-3000:] + logs[1][-3000:]
    assert f"using {venv_python} (the repository's .venv)" in done.stderr
    assert "JAX process 1 of 2" in logs[1]
    assert [s for s, _ in scalars(workdir)["valid/descriptive"]] == [2, 4]

    # One progress line per interval; no INFO line of a library (orbax, clu, tfds).
    lines = [ABSL_LINE.match(line) for line in logs[0].splitlines()]
    infos = [m for m in lines if m and m.group(0).startswith("I")]
    assert sum(m.group(2).startswith("step 2/4") for m in infos) == 1, logs[0]
    project = {os.path.basename(p) for p in glob.glob(os.path.join(REPO, "aloe", "**", "*.py"),
                                                        recursive=True)}
    assert infos and {m.group(1) for m in infos} <= project, {m.group(1) for m in infos}
    assert any("validation at step 4" in m.group(2) for m in infos)


def test_evaluating_a_missing_step_says_so_without_a_traceback(toy_root, tmp_path):
    workdir = str(tmp_path / "run")
    train.train(make_config(toy_root, **{"train.steps": 2, "train.checkpoint_every": 2}), workdir)
    env = subprocess_env.cpu_devices()
    done = subprocess.run(
        [sys.executable, "-m", "aloe.main", f"--config={REPO}/configs/test.py",
         f"--workdir={workdir}", f"--config.data.root={toy_root}", "--mode=eval", "--step=45"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "No checkpoint 45" in done.stderr and "available steps: [2]" in done.stderr
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


def test_an_evaluation_tag_names_every_file_and_keeps_the_untagged_ones(toy_root, tmp_path):
    workdir = str(tmp_path / "tagged")
    config = make_config(toy_root)
    train.train(config, workdir)
    evaluate.evaluate(config, workdir)  # eval_valid_6.json and the task's files.
    untagged = json_io.read_json(os.path.join(workdir, "eval_valid_6.json"))

    config.eval.tag = "again"
    again = evaluate.evaluate(config, workdir)
    written = sorted(os.path.basename(p) for p in glob.glob(os.path.join(workdir, "*_6*.json")))
    assert written == ["answers_valid_6.json", "answers_valid_6_again.json",
                       "eval_valid_6.json", "eval_valid_6_again.json",
                       "predictions_valid_6.json", "predictions_valid_6_again.json"]
    # The same checkpoint under the same settings: the same metrics, the first file intact.
    assert json_io.read_json(os.path.join(workdir, "eval_valid_6_again.json")) == again
    assert json_io.read_json(os.path.join(workdir, "eval_valid_6.json")) == untagged
    assert again == untagged

    config.eval.tag = "../elsewhere"
    with pytest.raises(ValueError, match="eval.tag"):
        evaluate.evaluate(config, workdir)
