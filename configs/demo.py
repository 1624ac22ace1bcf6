r"""The whole method on generated data, from nothing to answers, on a laptop.

  python -m aloe.demo --workdir=workdirs/demo

Stages (each skipped when its output exists, so an interrupted demo resumes):
generate mini-CLEVRER -> build the tfds dataset -> pretrain MONet on its
frames -> extract latents of every frame -> train ALOE with the auxiliary
loss -> evaluate on the validation split. Sizes are chosen to finish in about
20 minutes on 2 CPU cores; `--config.<stage>.<field>=...` overrides any field.
"""

import ml_collections

from configs import clevrer
from configs import monet_small


def get_config() -> ml_collections.ConfigDict:
    """Demo sizes for every stage."""
    config = ml_collections.ConfigDict()

    config.generate = ml_collections.ConfigDict()
    config.generate.num_videos = 250   # 150 train / 50 validation / 50 test videos.
    config.generate.seed = 0
    config.generate.width = 192        # CLEVRER's 3:2 at 192x128; frames become 64x64.
    config.generate.height = 128
    config.generate.workers = 2

    monet = monet_small.get_config()   # A narrow MONet that trains on a CPU.
    monet.eval.num_videos = 50         # The whole validation split: 400 frames.
    config.monet = monet

    aloe = clevrer.get_config()
    aloe.model.num_heads = 4           # Width 4 * 18 = 72.
    aloe.model.num_layers = 4
    aloe.model.mlp_dim = 256
    aloe.model.head_hidden_dim = 64
    aloe.model.dropout_rate = 0.0
    aloe.data.num_frames = 8           # Of 128 (the paper: 25).
    aloe.optimizer.name = "adam"       # Small models learn far faster with Adam than LAMB.
    aloe.optimizer.learning_rate = 1e-3
    aloe.optimizer.warmup_steps = 100
    aloe.train.steps = 1500
    aloe.train.descriptive_batch = 16
    aloe.train.mc_batch = 8
    aloe.train.log_every = 100
    aloe.train.checkpoint_every = 500
    aloe.train.eval_every = 500        # Validation on all 50 videos, to TensorBoard.
    aloe.train.eval_batches = 0
    aloe.auxiliary.weight = 0.1        # λ; scheme (a), L2, as the paper's best.
    aloe.auxiliary.batch = 8
    aloe.eval.batch_size = 64
    config.aloe = aloe
    return config
