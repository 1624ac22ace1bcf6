r"""ALOE on ground-truth CATER object states: snitch localization, minutes on 2 CPU cores.

  python -m aloe.synthetic.cater --out data/object_states/cater --num_videos 500 --seed 0 \
      --render false
  python -m aloe.data.object_states --dataset=cater --scenes data/object_states/cater \
      --out data/object_states/cater_identity
  python -m aloe.main --config=configs/object_states_cater.py:full --workdir=workdirs/os_cater

The latents (`aloe.data.cater_object_states`) hold every object's world
position, velocity, in-view flag and one-hot shape / size / material / colour
(26 wide, 10 slots); an object under a cone is all zeros, so finding a covered
snitch still takes following the cone that hides it. The argument is a row of
`configs/ablations.py` (full, no_auxiliary, mlp, hierarchical) at the sizes of
`configs/toy_cater.py` with 16 frames of 301. `studies/object_states/run.sh`
trains it and splits top-1 / top-5 / L1 by whether the snitch is contained at
the end (`aloe.study --split_by snitch_contained_at_end`).
"""

import ml_collections

from configs import parts
from configs import toy_cater

ROWS = ("full", "no_auxiliary", "mlp", "hierarchical")


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
    """The config of one Table 1 row on CATER object states."""
    if arg not in ROWS:
        raise ValueError(f"configs/object_states_cater.py: unknown row {arg!r}; rows: {ROWS}.")
    config = toy_cater.get_config()
    config.data.root = "data/object_states/cater_identity"  # aloe.data.object_states output.
    config.data.num_frames = 16        # Of 301 (spread over the video, ends included, in eval).
    config.data.num_slots = 10         # Slots per frame of the object-state store.
    config.model.latent_dim = 26       # The object-state size (CATER_LAYOUT); tokens 28.
    config.auxiliary.weight = 0.01 if arg in ("full", "hierarchical") else 0.0
    reasoner = "transformer" if arg in ("full", "no_auxiliary") else arg
    parts.use_reasoner(config, reasoner, "toy", release=False)
    config.train.eval_every = 0        # Evaluated once, after training (eval.after_training).
    return config
