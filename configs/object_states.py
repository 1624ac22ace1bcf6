r"""ALOE on ground-truth object states (CLEVRER): a small model, about 10-15 minutes on 2 CPU cores.

  python -m aloe.synthetic.clevrer --out data/object_states/clevrer --num_videos 2000 \
      --seed 0 --render false
  python -m aloe.data.object_states --annotations data/object_states/clevrer/annotations \
      --questions data/object_states/clevrer/questions --out data/object_states/identity
  python -m aloe.main --config=configs/object_states.py:full --workdir=workdirs/os_full

The latents are true object states (`aloe.data.object_states`: position,
velocity, in-view flag and one-hot colour / material / shape, 18 wide), so
what the model gets wrong is reasoning, not perception. The argument is a
row of the paper's Table 1 (`configs/ablations.py`: full, no_auxiliary, mlp,
hierarchical) at this file's sizes: 4 blocks of width 4 x 20 = 80, 12 evenly
spaced frames of 128 in evaluation (12 sorted random ones in training), 1,500
steps of 16 descriptive + 16 multiple-choice questions with Adam at 1e-3. The
study of all rows is `studies/object_states/run.sh`; its results, with the
answer prior beside them, are in `studies/object_states/*/results.md`.
"""

import ml_collections

from configs import ablations

ROWS = ("full", "no_auxiliary", "mlp", "hierarchical")


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
    """The config of one Table 1 row on CLEVRER object states."""
    if arg not in ROWS:
        raise ValueError(f"configs/object_states.py: unknown row {arg!r}; rows: {ROWS}.")
    config = ablations.get_config(f"{arg},toy")  # Toy sizes, the row's parts and λ.
    config.data.root = "data/object_states/identity"  # aloe.data.object_states output.
    config.data.num_frames = 12        # Sorted random frames of 128 (evenly spaced in eval).
    config.data.num_slots = 8          # Slots per frame of the object-state store.
    config.model.latent_dim = 18       # The object-state size (CLEVRER_LAYOUT); tokens 20.
    config.model.num_heads = 4         # Width 4 * 20 = 80.
    config.model.num_layers = 4
    config.model.mlp_dim = 256
    config.model.head_hidden_dim = 64
    config.train.eval_every = 0        # Evaluated once, after training (eval.after_training).
    return config
