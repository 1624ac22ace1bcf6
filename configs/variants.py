"""The `model.variant` switch and its fields, shared by every ALOE config.

`add_variant_fields(config, size)` adds `model.variant` (transformer | mlp |
hierarchical | resnet, the rows of the paper's Table 1) and the fields each
ablation reads, at one of three sizes, so any task config can run any
ablation from the command line:

  python -m aloe.main --config=configs/cater.py --workdir=$W --config.model.variant=mlp \
      --config.auxiliary.weight=0 --config.data.root=$CATER_LATENTS

The ResNet row also needs a frame store (`python -m aloe.data.frame_store`) at
`data.frames_root`, `data.num_slots` = its entities per frame ((frame_size /
16)^2 with these strides: 16 at 64x64) and `train.permute_slots=False`.
"""

import ml_collections

# Per size: (MLP hidden units, MLP layers, within-frame blocks, across-frame blocks,
# ResNet blocks per stage, ResNet widths, ResNet stem width, GroupNorm groups, frame size).
SIZES = {
    "paper": (2048, 4, 13, 13, (2, 2, 2, 2), (32, 64, 128, 128), 32, 8, 64),
    "toy": (512, 2, 2, 2, (1, 1, 1, 1), (16, 16, 32, 32), 16, 8, 64),
    "test": (64, 2, 1, 1, (1, 1, 1, 1), (8, 8, 16, 16), 8, 4, 32),
}


def add_variant_fields(config: ml_collections.ConfigDict, size: str = "paper") -> None:
    """Sets `config.model.variant = "transformer"` and every ablation field at `size`."""
    if size not in SIZES:
        raise ValueError(f"configs/variants.py: unknown size {size!r}; sizes: {tuple(SIZES)}.")
    (mlp_hidden, mlp_layers, frame_layers, video_layers, stages, widths, stem, groups,
     frame_size) = SIZES[size]
    model, data = config.model, config.data
    model.variant = "transformer"        # Reasoner: transformer | mlp | hierarchical | resnet.
    model.mlp_hidden_dim = mlp_hidden    # mlp: units per hidden layer (paper: 2048).
    model.mlp_num_layers = mlp_layers    # mlp: hidden layers (paper: 4).
    model.frame_num_layers = frame_layers  # hierarchical: within-frame transformer blocks.
    model.video_num_layers = video_layers  # hierarchical: across-frame transformer blocks.
    model.frame_summary = "words_and_objects"  # hierarchical: stage-1 outputs per frame vector.
    model.resnet_stage_sizes = stages    # resnet: residual blocks per stage.
    model.resnet_widths = widths         # resnet: channels per stage.
    model.resnet_stage_strides = (1, 2, 2, 2)  # resnet: with the stem's 2, a total stride 16.
    model.resnet_stem_width = stem       # resnet: channels of the stem convolution.
    model.resnet_stem_stride = 2         # resnet: stride of the stem convolution.
    model.resnet_num_groups = groups     # resnet: GroupNorm groups (divide every width).
    data.frames_root = ""                # resnet: frame store root (aloe.data.frame_store).
    data.frame_size = frame_size         # resnet: frames are frame_size x frame_size x 3.
