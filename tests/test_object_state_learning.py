"""ALOE learns from the command line, on the ground-truth object states of generated videos.

The learning run does what a researcher would: generate render-free mini-CLEVRER
videos (`aloe.synthetic.clevrer --render false`), write their object states
(`aloe.data.object_states`), train `configs/object_states.py:no_auxiliary` with
`aloe.main` (killed with SIGKILL once it has saved a checkpoint, then resumed to the
end) and evaluate on the held-out validation videos. Perception is exact here, so
the held-out accuracy above the answer prior is the reasoner's.
"""

import atexit
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from aloe import answer_prior
from aloe import checkpointing

import baselines
import shared_run
import subprocess_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_VIDEOS = 300   # 180 training, 60 validation, 60 test videos.
LEARN_STEPS = 500
KILL_AFTER = 250   # The checkpoint the run is killed after.
DATA_SEED, MODEL_SEED = 1, 0
# configs/object_states.py's model (4 blocks of width 80, Adam at 1e-3, here decayed
# by a cosine) on 4 frames: held-out explanatory accuracy leaves the prior after ~300
# steps, descriptive climbs steadily (values over seeds beside the assertions below).
LEARN_FLAGS = [f"--config={REPO}/configs/object_states.py:no_auxiliary",
               f"--config.train.steps={LEARN_STEPS}", "--config.data.num_frames=4",
               "--config.optimizer.schedule=cosine",
               f"--config.train.checkpoint_every={KILL_AFTER}", f"--config.seed={MODEL_SEED}"]
# One CPU device at full optimisation: this run is matrix work, not compiling.
ONE_DEVICE = subprocess_env.cpu_devices(compile_flags=False)


def _run(args: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], cwd=REPO, env=ONE_DEVICE,
                          capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, (args, done.stderr[-3000:])
    return done


def _learning_run(base: str) -> dict:
    """Generates the videos and their object states into `base`, trains (killed after
    step `KILL_AFTER`, then resumed) and returns what the tests check: the paths, the
    command, the steps saved when the run was killed, the resumed run's stderr and
    the held-out metrics."""
    videos, root = os.path.join(base, "clevrer"), os.path.join(base, "states")
    workdir = os.path.join(base, "learn")
    _run(["-m", "aloe.synthetic.clevrer", f"--out={videos}", f"--num_videos={NUM_VIDEOS}",
          f"--seed={DATA_SEED}", "--render=false", "--workers=1"])
    _run(["-m", "aloe.data.object_states", f"--annotations={videos}/annotations",
          f"--questions={videos}/questions", f"--out={root}"])
    args = [sys.executable, "-m", "aloe.main", f"--workdir={workdir}", *LEARN_FLAGS,
            f"--config.data.root={root}"]
    proc = subprocess.Popen(args, cwd=REPO, env=ONE_DEVICE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    atexit.register(proc.kill)
    ckpt_dir = os.path.join(workdir, "checkpoints")
    deadline = time.time() + 1800
    while time.time() < deadline and proc.poll() is None:
        if os.path.isdir(ckpt_dir) and str(KILL_AFTER) in os.listdir(ckpt_dir):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it was killed"
    killed_at = checkpointing.Checkpointer(workdir, every_steps=KILL_AFTER).all_steps()
    resumed = _run(args[1:])
    with open(os.path.join(workdir, f"eval_valid_{LEARN_STEPS}.json")) as f:
        results = json.load(f)
    return {"root": root, "workdir": workdir, "args": args, "killed_at": killed_at,
            "resumed_stderr": resumed.stderr, "results": results}


LEARNING_RUN = shared_run.SharedRun("object_state_learning", _learning_run)


def start_early(item):
    """Called by conftest.py once tests are collected: the learning run (one CPU
    device, mostly matrix work) starts then, so it trains while other tests, mostly
    compiling on one core, run."""
    if "learned" in getattr(item, "fixturenames", ()):
        LEARNING_RUN.start()


@pytest.fixture(scope="module")
def learned():
    return LEARNING_RUN.result()


@pytest.mark.slow
def test_descriptive_beats_the_answer_prior_on_held_out_videos(learned):
    root, results = learned["root"], learned["results"]
    prior = baselines.question_only(root)
    # The project's own prior (what `aloe.study` prints beside a row) is the same number.
    assert answer_prior.clevrer_prior(os.path.join(root, "train.json"),
                                      os.path.join(root, "valid.json"))["descriptive"] == (
                                          pytest.approx(prior))
    # Seeds (data, model) (1, 0), (2, 1), (3, 2): +0.064, +0.064, +0.092 over the prior
    # (0.367, 0.385, 0.368); 0.04 is two binomial standard errors of the prior at the
    # ~640 validation questions.
    assert results["descriptive"] > prior + 0.04, (prior, results)


@pytest.mark.slow
def test_explanatory_and_multiple_choice_beat_a_constant_answer_on_held_out_videos(learned):
    root, results = learned["root"], learned["results"]
    explanatory = baselines.constant_choice(root, "explanatory")
    # Seeds as above: +0.234, +0.258, +0.233 (explanatory); +0.131, +0.139, +0.140 (all
    # multiple choice: predictive stays at chance, counterfactual a little above).
    assert results["explanatory_per_option"] > explanatory + 0.15, (explanatory, results)
    constant = baselines.constant_choice(root)
    assert results["multiple_choice_per_option"] > constant + 0.08, (constant, results)


@pytest.mark.slow
def test_command_line_train_killed_then_resumed_then_eval(learned):
    workdir, args, killed_at = learned["workdir"], learned["args"], learned["killed_at"]
    assert killed_at and max(killed_at) < LEARN_STEPS, killed_at
    assert f"Restored checkpoint {max(killed_at)}" in learned["resumed_stderr"]
    results = learned["results"]
    evaluated = subprocess.run(args + ["--mode=eval", "--config.eval.split=valid"],
                               cwd=REPO, env=ONE_DEVICE, capture_output=True, text=True,
                               timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "descriptive" in evaluated.stdout and "counterfactual_per_question" in evaluated.stdout
    with open(os.path.join(workdir, f"eval_valid_{LEARN_STEPS}.json")) as f:
        assert json.load(f) == results   # The same checkpoint gives the same metrics.
