r"""A narrow MONet for CLEVRER-like frames that trains on a CPU: the demo's MONet.

  python -m aloe.main --config=configs/monet_small.py --workdir=$MONET \
      --config.data.data_dir=$TFDS_DATA [--config.data.masks_dir=$MINI_CLEVRER/masks]

`configs/monet_clevrer.py` with its attention U-Net at half the paper's width, the
component VAE's encoder at a quarter and its decoder three 3x3 layers of 16 (the paper:
four of 32), the latent KL weight β = 0.1 and the mask-KL weight γ = 0.1 (the paper's
0.5 and 0.5 segment later at this scale) and Adam at 1e-3, for 1,500 steps of 16 frames
(about 12 minutes on 2 CPU cores). studies/monet_segmentation/NOTES.md has the study
behind these choices; `aloe.demo` pretrains this MONet. Extraction works as with
the paper configuration (`--mode=extract --config.extract.out=...`).
"""

import ml_collections

from configs import monet_clevrer


def get_config() -> ml_collections.ConfigDict:
    """The demo-scale MONet."""
    config = monet_clevrer.get_config()
    config.model.unet_channels = (16, 16, 32, 32, 32)
    config.model.unet_mlp_hidden = (64,)
    config.model.encoder_channels = (8, 8, 16, 16)
    config.model.encoder_hidden = 64
    config.model.decoder_channels = (16, 16, 16)
    config.model.beta = 0.1
    config.model.gamma = 0.1
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-3
    config.train.steps = 1500
    config.train.batch_size = 16
    config.train.log_every = 50
    config.train.checkpoint_every = 200
    config.train.eval_every = 500    # Losses, ARI and pictures on eval.* frames, to TensorBoard.
    config.extract.batch_size = 128
    return config
