r"""Converts DeepMind's released TF1 ALOE checkpoint into a workdir.

  python -m aloe.release --checkpoint=clevrer_monet_latents/checkpoints/model.ckpt \
      --workdir=$WORKDIR [--config=configs/release.py]

`--checkpoint` is the checkpoint prefix (the path without `.index` /
`.data-*`) or its directory; `--config` (default `configs/release.py`) must
build the release's model. See `aloe.release.converter` for what is written.
"""

import os

from absl import app
from absl import flags
from ml_collections import config_flags

from aloe import release
from aloe import reporting

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir,
                           "configs", "release.py"),
    "Config of the release's model.", lock_config=True)
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "TF1 checkpoint prefix of the release.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir to write (without checkpoints).")
flags.mark_flags_as_required(["checkpoint", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    reporting.configure_logging()
    release.convert(_CHECKPOINT.value, _WORKDIR.value, _CONFIG.value)


if __name__ == "__main__":
    app.run(main)
