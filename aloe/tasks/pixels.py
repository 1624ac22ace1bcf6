"""Settings of the "resnet" variant, which reads frames instead of object latents.

Shared by the CLEVRER and CATER tasks: frames come from a frame store
(`aloe.data.frame_store`) at `data.frames_root`, `[frames, S, S, 3]` uint8 with
`S = data.frame_size`, and the ResNet's entities per frame take the place of the
object slots.
"""

import ml_collections


def check_config(config: ml_collections.ConfigDict, model) -> None:
    """Raises a ValueError naming the fix when `config` cannot feed frames to `model`.

    Args:
      config: the experiment config (`data.frame_size`, `data.num_slots`,
        `train.permute_slots` are read).
      model: an ALOE module with `entities_per_frame(height, width)`.
    """
    d = config.data
    if config.train.permute_slots:
        raise ValueError("config.model.variant = 'resnet' reads frames, whose slot axis is "
                         "an image axis: set --config.train.permute_slots=False.")
    if not d.get("frame_size"):
        raise ValueError("config.model.variant = 'resnet' needs config.data.frame_size "
                         "(frames are frame_size x frame_size).")
    entities = model.entities_per_frame(d.frame_size, d.frame_size)
    if d.num_slots != entities:
        raise ValueError(f"config.data.num_slots = {d.num_slots}, but the ResNet gives "
                         f"{entities} entities per {d.frame_size}x{d.frame_size} frame: set "
                         f"--config.data.num_slots={entities}.")
