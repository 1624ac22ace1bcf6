r"""ALOE on the generated toy CATER latents: a small model, a few minutes on 2 CPU cores.

  python -m aloe.synthetic.toy_cater_latents --out data/toy_cater --num_train 300 --num_valid 50
  python -m aloe.main --config=configs/toy_cater.py --workdir=workdirs/toy_cater

The toy latents (aloe/synthetic/toy_cater_latents.py) write every object's
colour code, shape and camera-frame position into fixed latent dimensions and
the camera's offset into the background slot; the golden snitch may end hidden
under a cone, or be carried by one. Baselines on that validation split (100
videos): its most common cell has top-1 0.07; the best constant cell has L1
2.97. Measured (1500 steps, ~2 minutes on one CPU device): top-1 / top-5 / L1
0.70 / 0.91 / 0.71 (static 0.70 / 0.94 / 0.48, moving 0.70 / 0.88 / 0.94);
top-1 0.87 when the snitch stays in view, 0.56 when a cone carries it away,
0.45 when a cone covers it where it stopped.
"""

import ml_collections

from configs import cater


def get_config(arg: str = "transformer") -> ml_collections.ConfigDict:
    """A small ALOE on the toy CATER latents; the argument as in configs/cater.py."""
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
    config.train.eval_every = 250       # Validation on the whole split.
    config.train.eval_batches = 0
    config.train.checkpoint_every = 500
    config.eval.batch_size = 64
    config.auxiliary.weight = 0.0    # Without the auxiliary loss (the measured run above).
    return cater.with_part(config, arg, "toy")
