r"""A tiny MONet for tests and smoke runs (seconds on a CPU).

  python -m aloe.main --config=configs/monet_test.py --workdir=/tmp/monet_test \
      --config.data.data_dir=$TFDS_DATA
"""

import ml_collections

from configs import monet_clevrer


def get_config() -> ml_collections.ConfigDict:
    """`configs/monet_clevrer.py` at widths of 8, 4 slots, a few steps of 8 frames."""
    config = monet_clevrer.get_config()
    config.model.num_slots = 4
    config.model.latent_dim = 8
    config.model.unet_channels = (8, 8, 8, 8, 8)
    config.model.unet_mlp_hidden = (32,)
    config.model.encoder_channels = (8, 8, 8, 8)
    config.model.encoder_hidden = 32
    config.model.decoder_channels = (8, 8)
    config.optimizer.learning_rate = 1e-3
    config.train.steps = 4
    config.train.batch_size = 8
    config.train.log_every = 2
    config.train.checkpoint_every = 2
    config.eval.num_videos = 1
    config.eval.frames_per_video = 4
    config.eval.batch_size = 4
    config.extract.batch_size = 16
    return config
