r"""A tiny ALOE-on-CLEVRER configuration for tests and smoke runs (seconds on a CPU).

  python -m aloe.main --config=configs/test.py --workdir=/tmp/aloe_test \
      --config.data.root=/path/to/latents
"""

import ml_collections

from configs import clevrer


def get_config() -> ml_collections.ConfigDict:
    """Two small layers, a few steps, batches divisible by 4 devices."""
    config = clevrer.get_config()
    config.data.num_frames = 8
    config.data.frame_size = 32
    config.model.num_heads = 2
    config.model.num_layers = 2
    config.model.mlp_dim = 64
    config.model.head_hidden_dim = 32
    config.optimizer.warmup_steps = 5
    config.train.steps = 10
    config.train.descriptive_batch = 4
    config.train.mc_batch = 4
    config.train.log_every = 5
    config.train.checkpoint_every = 5
    config.train.eval_every = 0         # No validation during training; tests turn it on.
    config.eval.batch_size = 8
    config.auxiliary.weight = 0.0       # Off; tests turn it on where they need it.
    return config
