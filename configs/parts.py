"""Sub-configs of the model's parts: `config.model.reasoner` and `config.model.entities`.

`aloe.models.factory` builds the parts from them; each holds only its own
part's fields. Three sizes: "paper" (the paper's Table 1 rows), "toy" (minutes
on a CPU) and "test" (seconds). Switching a config to another reasoner or to
the ResNet encoder replaces the sub-config, so a config never carries the fields
of a part it does not use:

  python -m aloe.main --config=configs/ablations.py:hierarchical,toy --workdir=$W
  python -m aloe.main --config=configs/cater.py:mlp --workdir=$W \
      --config.data.root=$CATER_LATENTS
"""

import ml_collections
from ml_collections import config_dict

REASONERS = ("transformer", "mlp", "hierarchical")
ENTITIES = ("latents", "resnet")
# Per size: (MLP hidden units, MLP hidden layers).
MLP_SIZES = {"paper": (2048, 4), "toy": (512, 2), "test": (64, 2)}
# Per size: (ResNet blocks per stage, widths, stem width, GroupNorm groups).
RESNET_SIZES = {
    "paper": ((2, 2, 2, 2), (32, 64, 128, 128), 32, 8),
    "toy": ((1, 1, 1, 1), (16, 16, 32, 32), 16, 8),
    "test": ((1, 1, 1, 1), (8, 8, 16, 16), 8, 4),
}
RESNET_STRIDE = 16  # The stem's 2 and the stages' (1, 2, 2, 2).


def _check(kind: str, name: str, names: tuple[str, ...], size: str) -> None:
    if name not in names:
        raise ValueError(f"configs/parts.py: unknown {kind} {name!r}; {kind}s: {names}.")
    if size not in MLP_SIZES:
        raise ValueError(f"configs/parts.py: unknown size {size!r}; sizes: {tuple(MLP_SIZES)}.")


def reasoner(name: str = "transformer", size: str = "paper",
             release: bool = True) -> ml_collections.ConfigDict:
    """`config.model.reasoner` of reasoner `name` (one of `REASONERS`) at `size`.

    Args:
      name: the reasoner.
      size: "paper", "toy" or "test" (the MLP's hidden sizes).
      release: the released CLEVRER model's options (the CLEVRER configs); False:
        the modules' defaults (the CATER configs).
    """
    _check("reasoner", name, REASONERS, size)
    spec = ml_collections.ConfigDict({"name": name})
    if not release:
        if name == "mlp":
            spec.hidden_dim, spec.hidden_layers = MLP_SIZES[size]
        return spec
    if name == "transformer":
        # The released model's choices (aloe/models/reasoners.py, aloe/models/transformer.py).
        # The release's three further dropouts; None: model.dropout_rate (the release uses
        # one rate for all, so dropout_rate = 0 turns every dropout off).
        spec.attention_dropout_rate = config_dict.placeholder(float)  # Attention weights.
        spec.position_dropout_rate = config_dict.placeholder(float)   # Position encodings.
        spec.input_dropout_rate = config_dict.placeholder(float)  # Token projection, pre-ReLU.
        spec.attention_output_bias = True  # Sonnet Linear with bias after attention.
        spec.layer_norm_epsilon = 1e-5     # Sonnet's LayerNorm.
    elif name == "hierarchical":
        # model.num_layers blocks, num_layers // 2 within frames and the rest across them.
        spec.frame_summary = "words_and_objects"  # Stage-1 outputs per frame vector.
        spec.input_dropout_rate = config_dict.placeholder(float)  # None: model.dropout_rate.
    else:
        spec.hidden_dim, spec.hidden_layers = MLP_SIZES[size]  # Paper: 4 x 2048.
    return spec


def use_reasoner(config: ml_collections.ConfigDict, name: str, size: str,
                 release: bool = True) -> None:
    """Gives `config` the reasoner `name` (`reasoner`'s arguments); the same one is kept.

    The MLP has no object outputs, so it turns the auxiliary loss off
    (`auxiliary.weight = 0`).
    """
    if name != config.model.reasoner.name:
        config.model.reasoner = reasoner(name, size, release)
    if name == "mlp":
        config.auxiliary.weight = 0.0


def use_resnet(config: ml_collections.ConfigDict, size: str) -> None:
    """Makes `config`'s model read frames through the ResNet hyperpixel encoder.

    Sets `model.entities` and `data.num_slots` (the ResNet's entities per
    `data.frame_size` frame), and turns slot permutation off (entities come in
    spatial order with their coordinates appended). The frames come from the
    frame store at `data.frames_root` (`python -m aloe.data.frame_store` writes
    one), which must be given.
    """
    _check("entity encoder", "resnet", ENTITIES, size)
    stages, widths, stem, groups = RESNET_SIZES[size]
    config.model.entities = ml_collections.ConfigDict({
        "name": "resnet",
        "stage_sizes": stages,          # Residual blocks per stage.
        "widths": widths,               # Channels per stage.
        "stage_strides": (1, 2, 2, 2),  # With the stem's 2, a total stride of 16.
        "stem_width": stem,             # Channels of the stem convolution.
        "stem_stride": 2,
        "num_groups": groups,           # GroupNorm groups (divide every width).
    })
    config.data.num_slots = (config.data.frame_size // RESNET_STRIDE) ** 2  # Per frame.
    config.train.permute_slots = False


def latents() -> ml_collections.ConfigDict:
    """`config.model.entities` of a model on cached object latents (`data.root`)."""
    return ml_collections.ConfigDict({"name": "latents"})
