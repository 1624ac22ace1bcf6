r"""MONet pretraining on CATER frames (both camera variants): K = 8, d = 36.

  python -m aloe.data.cater --manual_dir=$CATER --data_dir=$TFDS_DATA
  python -m aloe.main --config=configs/monet_cater.py --workdir=$MONET \
      --config.data.data_dir=$TFDS_DATA
  python -m aloe.main --config=configs/monet_cater.py --workdir=$MONET --mode=extract \
      --config.data.data_dir=$TFDS_DATA --config.extract.out=$LATENTS

Trains on the static-camera variant's frames (`data.dataset`); extraction
writes the latents and labels of both variants (`extract.datasets`) in the
layout of `aloe.data.cater_latents`, which `configs/cater.py` reads.
"""

import ml_collections

from configs import monet_clevrer


def get_config() -> ml_collections.ConfigDict:
    """The paper configuration for CATER."""
    config = monet_clevrer.get_config()
    config.data.dataset = "cater/all_actions"
    config.model.latent_dim = 36     # The paper's CATER latent size.
    config.eval.split = "valid"      # The tfds split 'validation'.
    config.extract.datasets = "cater/all_actions,cater/all_actions_cameramotion"
    config.extract.splits = "train:train,validation:valid"
    return config
