r"""Command-line entry point.

  python -m aloe.main --config=configs/clevrer.py --workdir=/tmp/aloe --mode=train
  python -m aloe.main --config=configs/clevrer.py --workdir=/tmp/aloe --mode=eval \
      --config.eval.split=valid

Config fields can be overridden on the command line (`--config.train.steps=100`);
a misspelt field is an error. `--mode=train` trains (resuming from the latest
checkpoint in the workdir) and then evaluates the final parameters when
`config.eval.after_training` is set; `--mode=eval` evaluates a checkpoint.

Multi-host: pass `--distributed` (TPU pods and SLURM clusters are detected
automatically) or the explicit `--coordinator_address`, `--num_processes`,
`--process_id`; every process runs the same command.
"""

import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, logs and results go here.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"], "What to run.")
_STEP = flags.DEFINE_integer("step", None, "With --mode=eval: the checkpoint step (default latest).")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize() (cluster auto-detection).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
flags.mark_flags_as_required(["config", "workdir"])


def _start_jax():
    """Starts the multi-process runtime (before any other JAX call) and logs the topology."""
    import jax  # pylint: disable=g-import-not-at-top
    if _COORDINATOR.value or _DISTRIBUTED.value:
        jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                                   num_processes=_NUM_PROCESSES.value,
                                   process_id=_PROCESS_ID.value)
    logging.info("JAX process %d of %d; %d local devices of %d: %s", jax.process_index(),
                 jax.process_count(), jax.local_device_count(), jax.device_count(),
                 jax.local_devices())
    return jax


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
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    jax = _start_jax()
    _hide_accelerators_from_tensorflow()
    from aloe import evaluate  # pylint: disable=g-import-not-at-top
    from aloe import train  # pylint: disable=g-import-not-at-top

    config, workdir = _CONFIG.value, _WORKDIR.value
    os.makedirs(workdir, exist_ok=True)
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2))
    if _MODE.value == "train":
        state = train.train(config, workdir)
        if config.eval.after_training and int(state.step) == config.train.steps:
            evaluate.evaluate(config, workdir, params=state.params, step=int(state.step))
    else:
        evaluate.evaluate(config, workdir, step=_STEP.value)


if __name__ == "__main__":
    app.run(main)
