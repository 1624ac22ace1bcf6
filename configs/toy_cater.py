r"""ALOE on the generated toy CATER latents: a small model, a few minutes on 2 CPU cores.

  python -m aloe.synthetic.toy_cater_latents --out data/toy_cater --num_train 200 --num_valid 50
  python -m aloe.main --config=configs/toy_cater.py --workdir=workdirs/toy_cater

The toy latents (aloe/synthetic/toy_cater_latents.py) write every object's
colour code, shape and camera-frame position into fixed latent dimensions and
the camera's offset into the background slot; the snitch is golden and may be
hidden under a cone that then carries it. Chance is 1/36 top-1; predicting the
most common training cell gets about 0.04 top-1 and an L1 of about 3.
"""

import ml_collections

from configs import cater


def get_config() -> ml_collections.ConfigDict:
    """A small ALOE on the toy CATER latents."""
    config = cater.get_config()
    config.data.root = "data/toy_cater"  # Written by aloe.synthetic.toy_cater_latents.
    config.data.num_frames = 10      # Of the 301 toy frames.
    config.model.latent_dim = 16     # The toy latent size.
    config.model.num_heads = 4       # Width 4 * 18 = 72.
    config.model.num_layers = 2
    config.model.mlp_dim = 128
    config.model.head_hidden_dim = 64
    config.model.dropout_rate = 0.0
    config.optimizer.warmup_steps = 50
    config.train.steps = 1500
    config.train.static_batch = 8
    config.train.moving_batch = 8
    config.train.log_every = 100
    config.train.checkpoint_every = 500
    config.eval.batch_size = 64
    return config
