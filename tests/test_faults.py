"""Faults a run must survive or report rightly, each run as a user runs it (`python -m aloe.main`).

Non-finite states are never saved or evaluated; unreadable checkpoints are
passed over with a warning; errors name what is wrong (unreadable, another
model, another vocabulary, a changed config) and leave the run's record as it
was; a stop on SIGTERM exits with `checkpointing.STOPPED_EXIT_STATUS`.
"""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from aloe import checkpointing
from aloe import run_config
from aloe.data import vocab as vocab_lib
from aloe.synthetic import toy_latents

import subprocess_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = subprocess_env.cpu_devices()


def aloe_main(workdir, *args, config="test", timeout=600):
    """Runs `python -m aloe.main` with `configs/{config}.py`; returns the finished process."""
    command = [sys.executable, "-m", "aloe.main", f"--config={REPO}/configs/{config}.py",
               f"--workdir={workdir}", *args]
    return subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("toy"))
    toy_latents.write_toy_dataset(root, num_train=16, num_valid=8, seed=0)
    return root


@pytest.fixture(scope="module")
def trained(toy_root, tmp_path_factory):
    """A finished 6-step run with checkpoints 2, 4 and 6 (copy it before changing it)."""
    workdir = str(tmp_path_factory.mktemp("trained") / "run")
    done = aloe_main(workdir, f"--config.data.root={toy_root}", "--config.train.steps=6",
                     "--config.train.checkpoint_every=2", "--config.eval.after_training=false")
    assert done.returncode == 0, done.stderr[-3000:]
    assert checkpointing.Checkpointer(workdir, every_steps=0).all_steps() == [2, 4, 6]
    return workdir


def copy_of(workdir, tmp_path):
    target = str(tmp_path / "run")
    shutil.copytree(workdir, target)
    return target


def newest_params_finite(workdir):
    """`(step, finite)` of the newest checkpoint's parameters, read as saved."""
    ckpt = checkpointing.Checkpointer(workdir, every_steps=0, read_only=True)
    step = ckpt.latest_step()
    metadata = ckpt._manager.item_metadata(step).tree  # pylint: disable=protected-access
    target = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), metadata["params"])
    params, restored = ckpt.restore_params(target)
    return restored, all(np.isfinite(x).all() for x in jax.tree.leaves(params))


# 1 and 2: an update that makes the parameters NaN while the loss before it was finite.
NAN_ARGS = ("--config.optimizer.learning_rate=1e6", "--config.train.log_every=100")


def test_non_finite_update_on_the_last_step_is_not_saved_or_evaluated(toy_root, tmp_path):
    # configs/toy.py at learning rate 1e6: the loss of step 3 is finite (~1e25), the
    # update it makes turns the parameters to NaN. Step 3 is due for a periodic save
    # and is the last step (the final save and evaluation).
    workdir = str(tmp_path / "nan")
    done = aloe_main(workdir, f"--config.data.root={toy_root}", "--config.train.steps=3",
                     "--config.train.checkpoint_every=1", *NAN_ARGS, config="toy")
    assert done.returncode not in (0, checkpointing.STOPPED_EXIT_STATUS), done.stderr[-3000:]
    assert "NonFiniteStateError: The training state after step 3 is not finite" in done.stderr
    assert "newest checkpoint" in done.stderr and "is step 2" in done.stderr
    assert checkpointing.Checkpointer(workdir, every_steps=0).all_steps() == [1, 2]
    step, finite = newest_params_finite(workdir)
    assert step == 2 and finite
    assert not glob.glob(os.path.join(workdir, "eval_*.json"))
    assert not glob.glob(os.path.join(workdir, "predictions_*.json"))


# 3 and 4: damaged newest checkpoints are passed over, named, and why.

def damage(workdir):
    """Step 6 loses its metadata file; step 4 has its data files truncated; step 2 is intact."""
    directory = os.path.join(workdir, "checkpoints")
    os.remove(os.path.join(directory, "6", "default", "_METADATA"))
    data = glob.glob(os.path.join(directory, "4", "default", "**", "d", "*"), recursive=True)
    assert data
    for path in data:
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)


def test_eval_falls_back_past_unreadable_checkpoints(trained, tmp_path):
    workdir = copy_of(trained, tmp_path)
    damage(workdir)
    done = aloe_main(workdir, "--mode=eval")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Checkpoint 6 in" in done.stderr and "_METADATA is missing" in done.stderr
    assert "Checkpoint 4 in" in done.stderr and "cannot be read" in done.stderr
    assert "different model" not in done.stderr
    assert "Evaluation of step 2 on valid" in done.stdout
    assert os.path.exists(os.path.join(workdir, "eval_valid_2.json"))


def test_training_resumes_from_newest_readable_checkpoint(trained, toy_root, tmp_path):
    workdir = copy_of(trained, tmp_path)
    damage(workdir)
    done = aloe_main(workdir, "--config.train.steps=8", "--config.train.checkpoint_every=2",
                     "--config.eval.after_training=false", f"--config.data.root={toy_root}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Falling back" in done.stderr and "Restored checkpoint 2" in done.stderr
    # The unreadable steps are set aside and written again.
    assert checkpointing.Checkpointer(workdir, every_steps=0).all_steps() == [4, 6, 8]
    assert os.path.isdir(os.path.join(workdir, "checkpoints", "6.unreadable"))


def test_no_readable_checkpoint_is_an_error(trained, tmp_path):
    workdir = copy_of(trained, tmp_path)
    for step in (2, 4, 6):
        os.remove(os.path.join(workdir, "checkpoints", str(step), "default", "_METADATA"))
    done = aloe_main(workdir, "--mode=eval")
    assert done.returncode != 0
    assert "UnreadableCheckpointError: No checkpoint in" in done.stderr


# 5 and 6: the record of a run survives a refused resume; accepted changes are recorded.

@pytest.mark.slow
def test_changed_config_is_refused_or_recorded(trained, toy_root, tmp_path):
    workdir = copy_of(trained, tmp_path)
    config_path = os.path.join(workdir, "config.json")
    with open(config_path) as f:
        first = f.read()
    base = (f"--config.data.root={toy_root}", "--config.train.checkpoint_every=2",
            "--config.eval.after_training=false")

    refused = aloe_main(workdir, *base, "--config.train.steps=8", "--config.model.mlp_dim=32")
    assert refused.returncode != 0
    assert "ConfigChangeError" in refused.stderr and "model.mlp_dim: 64 -> 32" in refused.stderr
    # Allowed, the change of shape is still refused by the checkpoint, naming entries.
    forced = aloe_main(workdir, *base, "--config.train.steps=8", "--config.model.mlp_dim=32",
                       "--allow_config_change")
    assert forced.returncode != 0
    assert "CheckpointMismatchError" in forced.stderr and "mlp_hidden" in forced.stderr
    silent = aloe_main(workdir, *base, "--config.train.steps=8",
                       "--config.optimizer.learning_rate=0.01")
    assert silent.returncode != 0
    assert "optimizer.learning_rate: 0.002 -> 0.01" in silent.stderr
    with open(config_path) as f:
        assert f.read() == first
    assert not os.path.exists(os.path.join(workdir, run_config.CHANGES_FILE))
    assert checkpointing.Checkpointer(workdir, every_steps=0).all_steps() == [2, 4, 6]

    accepted = aloe_main(workdir, *base, "--config.train.steps=8",
                         "--config.optimizer.learning_rate=0.01", "--config.train.log_every=1",
                         "--allow_config_change")
    assert accepted.returncode == 0, accepted.stderr[-3000:]
    with open(os.path.join(workdir, run_config.CHANGES_FILE)) as f:
        (line,) = [json.loads(l) for l in f]
    assert line["allowed_by_flag"]
    assert line["changes"] == {"optimizer.learning_rate": [0.002, 0.01],
                               "train.log_every": [5, 1], "train.steps": [6, 8]}
    (kept,) = glob.glob(os.path.join(workdir, run_config.HISTORY_DIR, "config_*.json"))
    with open(kept) as f:
        assert f.read() == first
    assert run_config.read(workdir)["optimizer.learning_rate"] == 0.01


# 7: evaluation with another vocabulary names it.

def test_other_vocabulary_is_named(trained, tmp_path):
    workdir = copy_of(trained, tmp_path)
    root = run_config.read(workdir)["data.root"]
    # As if training had read a vocabulary built from the training questions only.
    vocab_lib.Vocab.build([os.path.join(root, "train.json")]).save(
        os.path.join(workdir, "vocab.json"))
    done = aloe_main(workdir, "--mode=eval")
    assert done.returncode != 0
    assert "VocabularyMismatchError" in done.stderr and "vocab.json" in done.stderr
    assert "different model" not in done.stderr


def test_eval_override_that_changes_the_model_is_refused(trained):
    done = aloe_main(trained, "--mode=eval", "--config.model.mlp_dim=32",
                     "--config.eval.split=valid")
    assert done.returncode != 0
    assert "change the shape of the model" in done.stderr and "model.mlp_dim=32" in done.stderr


# 9: a stop on SIGTERM saves and exits with the "stopped, requeue me" status.

def test_sigterm_saves_and_exits_with_stopped_status(toy_root, tmp_path):
    workdir = str(tmp_path / "term")
    command = [sys.executable, "-m", "aloe.main", f"--config={REPO}/configs/test.py",
               f"--workdir={workdir}", f"--config.data.root={toy_root}",
               "--config.train.steps=10000", "--config.train.checkpoint_every=1000"]
    proc = subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not os.path.exists(os.path.join(workdir, "config.json")):
        time.sleep(0.2)  # config.json is written once training has started.
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == checkpointing.STOPPED_EXIT_STATUS == 143, stderr[-3000:]
    steps = checkpointing.Checkpointer(workdir, every_steps=0).all_steps()
    assert len(steps) == 1 and 0 < steps[0] < 10000
    assert f"stopped at step {steps[0]}" in stderr


def test_evaluation_answer_outside_the_vocabulary_is_counted(toy_root, tmp_path):
    from aloe import evaluate, parallel, tasks  # pylint: disable=g-import-not-at-top
    from configs import test as test_config  # pylint: disable=g-import-not-at-top
    root = tmp_path / "store"
    shutil.copytree(toy_root, root)
    with open(root / "valid.json") as f:
        scenes = json.load(f)
    descriptive = [q for s in scenes for q in s["questions"] if q["question_type"] == "descriptive"]
    descriptive[0]["answer"] = "an answer no vocabulary has"
    with open(root / "valid.json", "w") as f:
        json.dump(scenes, f)
    config = test_config.get_config()
    config.data.root = str(root)
    # Training answers must be in the vocabulary: as a training split, the file is an error.
    as_training = test_config.get_config()
    as_training.data.update({"root": str(root), "train_split": "valid"})
    with pytest.raises(ValueError, match="is not in the answer vocabulary"):
        tasks.build(as_training).data("valid")
    task = tasks.build(config)
    params = parallel.replicate(task.init_params(jax.random.key(0)), parallel.make_mesh())
    results = evaluate.evaluate(config, str(tmp_path / "eval"), params=params, step=0,
                                split="valid")
    assert results["num_answers_outside_vocab"] == 1
    assert results["num_descriptive"] == len(descriptive)


# train.init_from: a new run starts from another workdir's parameters.

@pytest.mark.slow
def test_init_from_starts_a_new_run_from_another_workdirs_parameters(trained, toy_root,
                                                                     tmp_path):
    from aloe import train  # pylint: disable=g-import-not-at-top
    from configs import test as test_config  # pylint: disable=g-import-not-at-top
    config = test_config.get_config()
    # Warmup's first step has learning rate 0: after it the parameters are still the source's.
    config.update_from_flattened_dict({"data.root": toy_root, "train.steps": 1,
                                       "train.init_from": trained,
                                       "eval.after_training": False})
    state = train.train(config, str(tmp_path / "fine_tune"))
    assert int(state.step) == 1
    source, step = checkpointing.Checkpointer(trained, every_steps=0, read_only=True
                                              ).restore_params(jax.device_get(state.params))
    assert step == 6
    for a, b in zip(jax.tree.leaves(source), jax.tree.leaves(jax.device_get(state.params))):
        np.testing.assert_array_equal(a, b)
    config.model.mlp_dim = 32
    with pytest.raises(checkpointing.CheckpointMismatchError,
                       match=r"init_from = .*different model .*mlp_hidden"):
        train.train(config, str(tmp_path / "other_shape"))


def test_analyses_read_the_workdirs_config(trained):
    from aloe.analysis import inputs as inputs_lib  # pylint: disable=g-import-not-at-top
    from configs import test as test_config  # pylint: disable=g-import-not-at-top
    given = test_config.get_config()
    given.data.root = "/somewhere/else"
    config = inputs_lib.workdir_config("config", given, trained)
    assert config.data.root == run_config.read(trained)["data.root"] != given.data.root
    assert inputs_lib.workdir_config("config", given, "/nonexistent") is given
