"""Multi-process runs: 2 processes x 2 CPU devices against 1 process x 4, and the launchers.

The end-to-end test starts two `python -m aloe.main` processes that talk through
`jax.distributed` (gloo collectives on CPU) and trains the tiny configuration on
generated latents; the same global batches on one process with four devices must
give the same training state, evaluation and predictions. A smaller two-process
test gathers rows of unequal counts and wide dtypes across processes. The
launcher tests run the scripts of `launch/` with a stand-in interpreter that
records how it was called, so they need neither JAX nor a cluster.
"""

import json
import os
import shlex
import socket
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from aloe import checkpointing
from aloe import evaluate
from aloe import parallel
from aloe import tasks
from aloe import train
from aloe.synthetic import toy_latents
from configs import test as test_config

import subprocess_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 4
# Overrides of configs/test.py shared by the two runs (dropout and slot
# permutation stay on: their random numbers depend on the global device index).
OVERRIDES = {"train.steps": STEPS, "train.checkpoint_every": 2, "train.log_every": 2}


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    """A generated latent store: 16 training and 9 validation scenes."""
    root = str(tmp_path_factory.mktemp("toy"))
    # 9 validation scenes hold 89 descriptive questions: the two processes evaluate
    # 44 and 45 of them, so gathering their rows must cope with unequal shares.
    toy_latents.write_toy_dataset(root, num_train=16, num_valid=9, seed=0)
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _reference_config(root):
    config = test_config.get_config()
    config.data.root = root
    for key, value in OVERRIDES.items():
        section, name = key.split(".")
        config[section][name] = value
    return config


def _start_processes(root, workdir, log_dir, num_processes=2):
    """Starts the processes of one distributed run; returns (Popen, log path) pairs."""
    port = _free_port()
    env = subprocess_env.cpu_devices(2, TF_CPP_MIN_LOG_LEVEL="2")
    flags = [f"--config={REPO}/configs/test.py", f"--workdir={workdir}",
             f"--config.data.root={root}"] + [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
    started = []
    for index in range(num_processes):
        log = os.path.join(log_dir, f"process_{index}.log")
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aloe.main", *flags, "--distributed",
                 f"--coordinator_address=localhost:{port}", f"--num_processes={num_processes}",
                 f"--process_id={index}"],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        started.append((proc, log))
    return started


def _wait_all(started, timeout_s):
    """Waits for every process; on a failure or timeout kills the rest and fails."""
    deadline = time.time() + timeout_s
    try:
        for proc, _ in started:
            proc.wait(timeout=max(1.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        pass
    failed = [(proc, log) for proc, log in started if proc.poll() != 0]
    for proc, _ in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if failed:
        tails = "\n".join(f"--- {log} (status {proc.returncode}):\n{open(log).read()[-3000:]}"
                          for proc, log in failed)
        pytest.fail(f"distributed run failed or timed out after {timeout_s} s:\n{tails}")
    return [open(log).read() for _, log in started]


def _restore_state(config, workdir, step, mesh):
    """The whole TrainState of checkpoint `step` of `workdir`, replicated over `mesh`."""
    task = tasks.build(config)
    tx = train.make_optimizer(config.optimizer, config.train.steps)
    abstract = jax.eval_shape(lambda: train.init_state(task, tx, config.seed))
    sharding = jax.sharding.NamedSharding(mesh, parallel.REPLICATED)
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                          abstract)
    ckpt = checkpointing.Checkpointer(workdir, every_steps=0)
    try:
        return jax.device_get(ckpt.restore(target, step))
    finally:
        ckpt.close()


def _assert_trees_close(got, want, *, rtol, atol):
    """Leaf-by-leaf allclose; returns the largest absolute difference."""
    assert jax.tree.structure(got) == jax.tree.structure(want)
    largest = 0.0
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(got)[0], jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=jax.tree_util.keystr(path))
        if np.size(a):
            largest = max(largest, float(np.max(np.abs(np.asarray(a, np.float64) - b))))
    return largest


@pytest.mark.slow
def test_two_processes_train_and_evaluate_like_one_process(toy_root, tmp_path):
    multi, single = str(tmp_path / "two_processes"), str(tmp_path / "one_process")
    started = _start_processes(toy_root, multi, str(tmp_path))
    # The reference (1 process x 4 devices, this one) runs while the others start.
    config = _reference_config(toy_root)
    try:
        assert jax.process_count() == 1 and jax.device_count() == 4
        state = train.train(config, single)
        evaluate.evaluate(config, single, params=state.params, step=STEPS)
    except BaseException:
        for proc, _ in started:
            proc.kill()
            proc.wait()
        raise
    logs = _wait_all(started, timeout_s=300)

    # Both processes joined one runtime of 4 devices and logged it.
    for index, log in enumerate(logs):
        assert f"JAX process {index} of 2 on cpu: 2 local devices" in log
        assert "4 devices in all" in log
    pids = [proc.pid for proc, _ in started]

    # The checkpoints are complete: only finished steps, every leaf of the whole
    # state restorable, and equal to the one-process run's at every step.
    mesh = parallel.make_mesh()
    assert checkpointing.Checkpointer(multi, every_steps=0).all_steps() == [2, STEPS]
    assert sorted(os.listdir(os.path.join(multi, "checkpoints"))) == ["2", str(STEPS)]
    for step in (2, STEPS):
        got = _restore_state(config, multi, step, mesh)
        want = _restore_state(config, single, step, mesh)
        assert int(got.step) == int(want.step) == step
        # Gloo and the in-process all-reduce add the 4 devices' gradients in
        # different orders (and not always the same one). Parameters stay equal
        # to float32 rounding (observed: 3e-8 to 1.2e-7 on values up to 0.4; one
        # step's update is ~1e-3 of a weight, so a wrong batch or a missing mean
        # is far outside the tolerance); the optimizer's moments of gradients as
        # large as ~100 keep that rounding (observed: up to 5e-6 on values of ~5).
        params_diff = _assert_trees_close(got.params, want.params, rtol=1e-5, atol=1e-6)
        moments_diff = _assert_trees_close(got.opt_state, want.opt_state, rtol=1e-4, atol=1e-6)
        print(f"step {step}: largest |two processes - one process|: parameters "
              f"{params_diff:.3g}, optimizer state {moments_diff:.3g}")
    _assert_trees_close(got.params, jax.device_get(state.params), rtol=1e-5, atol=1e-6)

    # Only process 0 writes metrics (event files) and evaluation results.
    events = [n for n in os.listdir(multi) if n.startswith("events.out.tfevents")]
    assert len(events) == 1 and f".{pids[0]}." in events[0], (events, pids)
    assert "Evaluation of step" in logs[0] and "Evaluation of step" not in logs[1]

    # The evaluation gathered every question from both processes, exactly once.
    with open(os.path.join(multi, f"eval_valid_{STEPS}.json")) as f:
        results_multi = json.load(f)
    with open(os.path.join(single, f"eval_valid_{STEPS}.json")) as f:
        results_single = json.load(f)
    with open(os.path.join(toy_root, "valid.json")) as f:
        scenes = json.load(f)
    num_desc = sum(q["question_type"] == "descriptive" for s in scenes for q in s["questions"])
    assert results_multi["num_descriptive"] == num_desc
    assert results_multi == results_single
    predictions = []
    for workdir in (multi, single):
        with open(os.path.join(workdir, f"predictions_valid_{STEPS}.json")) as f:
            predictions.append(sorted(json.load(f), key=lambda s: s["scene_index"]))
    assert predictions[0] == predictions[1]
    assert sorted(s["scene_index"] for s in predictions[0]) == sorted(
        s["scene_index"] for s in scenes)


GATHER_SCRIPT = textwrap.dedent("""\
    import json, sys
    import jax
    import numpy as np
    from aloe import parallel

    index = int(sys.argv[2])
    jax.distributed.initialize(sys.argv[1], num_processes=2, process_id=index)
    rows = 2 + index  # 2 rows on process 0, 3 on process 1.
    tree = {"ids": np.arange(rows, dtype=np.int64) + 2**40 + 10 * index,
            "values": np.full((rows, 2, 3), index + 0.5, np.float32),
            "valid": np.arange(rows) % 2 == 0,
            "none": np.zeros((0, 4), np.int32)}
    out = parallel.gather_from_processes(tree)
    report = {k: [v.dtype.str, list(v.shape), v.reshape(-1).tolist()] for k, v in out.items()}
    try:
        parallel.gather_from_processes({"x": np.zeros((1, 2 + index), np.float32)})
        report["mismatch"] = "no error"
    except ValueError as e:
        report["mismatch"] = str(e)
    print("RESULT " + json.dumps(report))
    """)


def test_gather_from_processes_with_unequal_rows_and_wide_dtypes(tmp_path):
    script = tmp_path / "gather.py"
    script.write_text(GATHER_SCRIPT)
    env = subprocess_env.cpu_devices()
    address = f"localhost:{_free_port()}"
    procs = [subprocess.Popen([sys.executable, str(script), address, str(index)], cwd=REPO,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for index in range(2)]
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-3000:]
            outputs.append(json.loads(out.split("RESULT ", 1)[1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    ids = [2**40 + i for i in range(2)] + [2**40 + 10 + i for i in range(3)]
    want = {"ids": ["<i8", [5], ids],
            "values": ["<f4", [5, 2, 3], [0.5] * 12 + [1.5] * 18],
            "valid": ["|b1", [5], [True, False, True, False, True]],
            "none": ["<i4", [0, 4], []]}
    for report in outputs:  # Every process gets everything, in process order.
        assert {k: v for k, v in report.items() if k != "mismatch"} == want
        assert "trailing shapes differ between processes" in report["mismatch"]


# The launchers, with a stand-in interpreter.

FAKE_PYTHON = textwrap.dedent("""\
    #!/usr/bin/env bash
    # Records its arguments (one per line) and environment; process FAIL_ID fails,
    # or every process stops on request (status 143), STOP_ID first.
    for arg in "$@"; do
      case "$arg" in --process_id=*) id="${arg#*=}";; esac
    done
    out="$RECORD_DIR/call_${id}"
    printf '%s\\n' "$@" > "$out.args"
    printf 'XLA_FLAGS=%s\\nJAX_PLATFORMS=%s\\nJAX_LOCAL_DEVICE_IDS=%s\\nPWD=%s\\n' \\
        "${XLA_FLAGS:-}" "${JAX_PLATFORMS:-}" "${JAX_LOCAL_DEVICE_IDS:-}" "$PWD" > "$out.env"
    echo $$ > "$out.pid"
    if [[ -n "${STOP_ID:-}" ]]; then  # Process STOP_ID stops first, the others later.
      if [[ "$id" == "$STOP_ID" ]]; then sleep 0.3; exit 143; fi
      sleep 1.5; touch "$out.stopped"; exit 143
    fi
    if [[ -n "${FAIL_ID:-}" ]]; then
      if [[ "$id" == "$FAIL_ID" ]]; then sleep 0.3; exit 3; fi
      exec sleep 60
    fi
    """)


@pytest.fixture
def fake_python(tmp_path):
    """(path of the stand-in interpreter, folder where its calls are recorded)."""
    path = tmp_path / "fake_python"
    path.write_text(FAKE_PYTHON)
    path.chmod(0o755)
    records = tmp_path / "records"
    records.mkdir()
    return str(path), records


def _calls(records, count):
    calls = []
    for index in range(count):
        args = (records / f"call_{index}.args").read_text().splitlines()
        env = dict(line.split("=", 1) for line in
                   (records / f"call_{index}.env").read_text().splitlines())
        calls.append((args, env))
    return calls


def test_local_launcher_starts_numbered_processes(fake_python):
    python, records = fake_python
    env = {**os.environ, "PYTHON": python, "PORT": "12345", "DEVICES_PER_PROCESS": "2",
           "RECORD_DIR": str(records), "XLA_FLAGS": "--xla_cpu_enable_fast_math=false"}
    env.pop("JAX_PLATFORMS", None)
    done = subprocess.run([f"{REPO}/launch/local.sh", "3", "--config=configs/test.py",
                           "--workdir=/tmp/a dir"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    for index, (args, recorded) in enumerate(_calls(records, 3)):
        assert args == ["-m", "aloe.main", "--coordinator_address=localhost:12345",
                        "--num_processes=3", f"--process_id={index}",
                        "--config=configs/test.py", "--workdir=/tmp/a dir"]
        assert recorded["XLA_FLAGS"] == ("--xla_cpu_enable_fast_math=false "
                                         "--xla_force_host_platform_device_count=2")
        assert recorded["JAX_PLATFORMS"] == "cpu"
        assert recorded["PWD"] == REPO


def test_local_launcher_stops_the_others_when_one_fails(fake_python):
    python, records = fake_python
    env = {**os.environ, "PYTHON": python, "PORT": "12345", "RECORD_DIR": str(records),
           "FAIL_ID": "1", "KILL_GRACE_SECONDS": "5"}
    start = time.time()
    done = subprocess.run([f"{REPO}/launch/local.sh", "3"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert "process 1" in done.stderr and "failed with status 3" in done.stderr
    assert time.time() - start < 30  # The others would have slept 60 s.
    for index in (0, 2):
        pid = int((records / f"call_{index}.pid").read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_local_launcher_waits_for_a_stop_on_request_and_passes_it_on(fake_python):
    python, records = fake_python
    env = {**os.environ, "PYTHON": python, "PORT": "12345", "RECORD_DIR": str(records),
           "STOP_ID": "1", "KILL_GRACE_SECONDS": "5"}
    done = subprocess.run([f"{REPO}/launch/local.sh", "3"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 143, done.stderr
    assert "failed" not in done.stderr
    assert "process 1" in done.stderr and "run the same command again" in done.stderr
    for index in (0, 2):  # Not killed: each stopped by itself after process 1.
        assert (records / f"call_{index}.stopped").exists()


def test_local_launcher_rejects_a_bad_process_count():
    done = subprocess.run([f"{REPO}/launch/local.sh", "two"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "usage" in done.stderr


def test_tpu_pod_launcher_runs_the_quoted_command_on_every_worker():
    env = {**os.environ, "DRY_RUN": "1", "PROJECT": "my-project",
           "REMOTE_SETUP": "source ~/venv/bin/activate"}
    flags = ["--config=configs/clevrer.py", "--workdir=/mnt/shared/run one",
             "--config.data.root=/mnt/it's here"]
    done = subprocess.run([f"{REPO}/launch/tpu_pod.sh", "my-tpu", "us-central2-b", *flags],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    argv = shlex.split(done.stdout)
    assert argv[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-tpu"]
    assert {"--zone=us-central2-b", "--worker=all", "--project=my-project"} <= set(argv)
    command = next(a for a in argv if a.startswith("--command="))[len("--command="):]
    # What the remote shell will run, word by word.
    words = shlex.split(command)
    assert words[:8] == ["cd", "~/aloe", "&&", "source", "~/venv/bin/activate", "&&",
                         "python3", "-m"]
    assert words[8:] == ["aloe.main", "--distributed", *flags]


@pytest.mark.parametrize("bound_gpu", [None, "3"])
def test_slurm_script_gives_each_task_its_rank_and_gpu(fake_python, tmp_path, bound_gpu):
    python, records = fake_python
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # srun: runs the command once per task of 2 nodes x 2 tasks, as SLURM would.
    (bin_dir / "srun").write_text(textwrap.dedent("""\
        #!/usr/bin/env bash
        while [[ "$1" == -* ]]; do shift; done
        for rank in 0 1 2 3; do
          SLURM_NTASKS=4 SLURM_PROCID=$rank SLURM_LOCALID=$((rank % 2)) "$@" || exit $?
        done
        """))
    (bin_dir / "scontrol").write_text("#!/usr/bin/env bash\nprintf 'gpu007\\ngpu008\\n'\n")
    for name in ("srun", "scontrol"):
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": python,
           "RECORD_DIR": str(records), "SLURM_JOB_ID": "12345",
           "SLURM_JOB_NODELIST": "gpu[007-008]", "SLURM_SUBMIT_DIR": REPO}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    if bound_gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = bound_gpu
    done = subprocess.run(["bash", f"{REPO}/launch/slurm.sbatch", "--config=configs/clevrer.py",
                           "--workdir=/shared/run"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    port = 61440 + 12345 % 4096
    for rank, (args, recorded) in enumerate(_calls(records, 4)):
        assert args == ["-m", "aloe.main", f"--coordinator_address=gpu007:{port}",
                        "--num_processes=4", f"--process_id={rank}",
                        "--config=configs/clevrer.py", "--workdir=/shared/run"]
        want_gpu = "0" if bound_gpu else str(rank % 2)
        assert recorded["JAX_LOCAL_DEVICE_IDS"] == want_gpu
        assert recorded["PWD"] == REPO


def test_main_rejects_process_flags_without_distributed(toy_root, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "aloe.main", f"--config={REPO}/configs/test.py",
         f"--workdir={tmp_path}", f"--config.data.root={toy_root}", "--num_processes=2",
         "--process_id=1"], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert done.returncode != 0
    assert "--num_processes, --process_id given without --distributed" in done.stderr
    assert not os.path.exists(os.path.join(tmp_path, "checkpoints"))

