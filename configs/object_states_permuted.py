r"""ALOE on CLEVRER object states whose slots are permuted in every frame, as MONet's are.

  python -m aloe.data.object_states --annotations data/object_states/clevrer/annotations \
      --questions data/object_states/clevrer/questions --out data/object_states/per_frame \
      --slot_order per_frame
  python -m aloe.main --config=configs/object_states_permuted.py:full --workdir=workdirs/os_perm

A row of `configs/object_states.py` on the store written with
`--slot_order per_frame`: an object's slot changes from frame to frame, so the
model must match objects across frames by their properties instead of their
slot, as with MONet latents.
"""

import ml_collections

from configs import object_states


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
    """The row `arg` of configs/object_states.py on per-frame-permuted slots."""
    config = object_states.get_config(arg)
    config.data.root = "data/object_states/per_frame"  # --slot_order per_frame output.
    return config
