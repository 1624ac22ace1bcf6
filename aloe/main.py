r"""Command-line entry point.

  python -m aloe.main --config=configs/clevrer.py --workdir=/tmp/aloe --mode=train
  python -m aloe.main --config=configs/clevrer.py --workdir=/tmp/aloe --mode=eval \
      --config.eval.split=valid

Config fields can be overridden on the command line (`--config.train.steps=100`);
a misspelt field is an error. `--mode=train` trains (resuming from the newest
readable checkpoint in the workdir) and then evaluates the final parameters when
`config.eval.after_training` is set; `--mode=eval` evaluates a checkpoint;
`--mode=extract` (MONet configs) writes the latents of every video with the
workdir's MONet (`aloe/extract.py`). Eval and extract read the workdir's
`config.json` and change only the fields overridden on the command line;
resuming with changed optimisation fields needs `--allow_config_change`
(`aloe/run_config.py`).

Exit status: 0 when the run finished; `checkpointing.STOPPED_EXIT_STATUS` (143,
128 + SIGTERM) when it stopped on a signal after saving a checkpoint (requeue
it: the same command resumes); anything else is a failure.

Multi-host: every process runs the same command with `--distributed` (Cloud TPU
VMs, SLURM and Open MPI are detected automatically) or with the explicit
`--coordinator_address`, `--num_processes`, `--process_id`. The launchers in
`launch/` (local processes, TPU pods, SLURM) do this; see `launch/README.md`.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, logs and results go here.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval", "extract"], "What to run.")
_STEP = flags.DEFINE_integer("step", None, "With --mode=eval: the checkpoint step (default latest).")
_ALLOW_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False,
    "With --mode=train: resume even though the config changes fields of the workdir's "
    "config.json that alter the optimisation; the change is recorded in config_changes.jsonl.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False,
    "Start the multi-process runtime (jax.distributed.initialize). Alone, the cluster is "
    "detected (Cloud TPU VMs, SLURM, Open MPI); on other machines also give "
    "--coordinator_address, --num_processes and --process_id.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 (implies --distributed).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0..N-1.")
_CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices", 0, "Split this process's CPU into this many JAX devices, each taking its "
    "share of every batch (aloe.parallel.split_cpu: MONet trains faster so on several cores); "
    "0 keeps JAX's default. Accelerators are unaffected.", lower_bound=0)
_LOG_LIBRARIES = flags.DEFINE_bool(
    "log_libraries", False, "Also show the libraries' INFO lines (orbax, tfds, clu); by default "
    "only their warnings and this project's lines (progress, validation) are shown.")
flags.mark_flags_as_required(["config", "workdir"])


def _start_jax() -> None:
    """Starts the multi-process runtime (before any other JAX call) and logs the topology.

    On CPU, cross-process collectives use JAX's default implementation, gloo over
    TCP (`jax_cpu_collectives_implementation`; set JAX_CPU_COLLECTIVES_IMPLEMENTATION
    to choose another).
    """
    import jax  # pylint: disable=g-import-not-at-top
    from aloe import parallel  # pylint: disable=g-import-not-at-top
    parallel.split_cpu(_CPU_DEVICES.value)
    explicit = {"--coordinator_address": _COORDINATOR.value,
                "--num_processes": _NUM_PROCESSES.value, "--process_id": _PROCESS_ID.value}
    if not (_DISTRIBUTED.value or _COORDINATOR.value):
        given = [name for name, value in explicit.items() if value is not None]
        if given:
            raise app.UsageError(f"{', '.join(given)} given without --distributed or "
                                 f"--coordinator_address; this would run a single process.")
    else:
        given = [f"{name}={value}" for name, value in explicit.items() if value is not None]
        logging.info("Starting jax.distributed (%s).", ", ".join(given) or "cluster auto-detection")
        jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                                   num_processes=_NUM_PROCESSES.value,
                                   process_id=_PROCESS_ID.value)
    logging.info("JAX process %d of %d on %s: %d local devices %s; %d devices in all.",
                 jax.process_index(), jax.process_count(), jax.default_backend(),
                 jax.local_device_count(), jax.local_devices(), jax.device_count())


def _hide_accelerators_from_tensorflow():
    """tf.data runs on the CPU only; it must not take accelerator memory."""
    try:
        import tensorflow as tf  # pylint: disable=g-import-not-at-top
    except ImportError:
        return
    tf.config.set_visible_devices([], "GPU")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from aloe import reporting  # pylint: disable=g-import-not-at-top
    reporting.configure_logging(show_libraries=_LOG_LIBRARIES.value)
    _start_jax()
    _hide_accelerators_from_tensorflow()
    from aloe import evaluate  # pylint: disable=g-import-not-at-top
    from aloe import train  # pylint: disable=g-import-not-at-top

    from aloe import checkpointing  # pylint: disable=g-import-not-at-top
    from aloe import run_config  # pylint: disable=g-import-not-at-top

    config, workdir = _CONFIG.value, _WORKDIR.value
    os.makedirs(workdir, exist_ok=True)
    if _MODE.value != "train":  # The workdir's config, changed only where the command line says.
        config = run_config.for_workdir(
            config, workdir, config_flags.get_override_values(flags.FLAGS["config"]))
    if _MODE.value == "train":
        state = train.train(config, workdir, allow_config_change=_ALLOW_CHANGE.value)
        if int(state.step) < config.train.steps:  # Stopped on a signal, after saving.
            logging.warning("Exiting with status %d: stopped at step %d of %d; run the same "
                            "command again to resume.", checkpointing.STOPPED_EXIT_STATUS,
                            int(state.step), config.train.steps)
            sys.exit(checkpointing.STOPPED_EXIT_STATUS)
        if config.eval.after_training:
            evaluate.evaluate(config, workdir, params=state.params, step=int(state.step))
    elif _MODE.value == "eval":
        try:
            evaluate.evaluate(config, workdir, step=_STEP.value)
        except FileNotFoundError as e:  # E.g. no checkpoint --step; the message names those there.
            raise SystemExit(f"aloe.main: {e}") from None
    else:
        from aloe import extract  # pylint: disable=g-import-not-at-top
        written = extract.extract(config, workdir)
        logging.info("Extraction wrote %s new latent files.", written)


if __name__ == "__main__":
    app.run(main)
