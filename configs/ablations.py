r"""The rows of the paper's Table 1 (CLEVRER ablations), one config each.

  python -m aloe.main --config=configs/ablations.py:mlp --workdir=$WORKDIR \
      --config.data.root=/path/to/clevrer_latents

The argument is `ROW` or `ROW,BASE`. Rows, with the paper's per-question
validation accuracy (descriptive / explanatory / predictive / counterfactual):

  full          ALOE with the auxiliary loss (λ = 0.01)         94.0 / 96.0 / 87.5 / 75.6
  no_auxiliary  the same with λ = 0                             91.0 / 92.8 / 82.8 / 68.7
  mlp           4 x 2048 MLP over the flattened raw tokens,     45.4 / 16.0 / 27.7 /  9.9
                λ = 0 (the MLP has no object outputs)
  resnet        ResNet hyperpixels of 64x64 frames in place     62.3 / 54.1 / 46.2 / 23.7
                of MONet latents, trained from scratch (λ = 0.01
                on the ResNet's own entities); needs
                --config.data.frames_root=/path/to/frame_store
  hierarchical  13 within-frame + 13 across-frame blocks        80.6 / 87.4 / 73.5 / 55.1
                (model.num_layers = 26; λ = 0.01 on the stage-1
                object outputs)

Bases: `clevrer` (default; the paper's sizes, configs/clevrer.py, 200k steps of
well under a second each on one accelerator), `toy` (configs/toy.py, minutes on
a CPU) and `test` (configs/test.py, seconds; for tests). A row carries only
the fields of its parts (configs/parts.py); the frame store fields are data
fields every row has, so one override serves all rows. All five rows, three
seeds each:

  python -m aloe.study --out=studies/table1 \
      --run full=configs/ablations.py:full \
      --run no_auxiliary=configs/ablations.py:no_auxiliary \
      --run mlp=configs/ablations.py:mlp \
      --run resnet=configs/ablations.py:resnet \
      --run hierarchical=configs/ablations.py:hierarchical \
      --override data.root=/path/to/clevrer_latents \
      --override data.frames_root=/path/to/clevrer_frames --seeds 0,1,2
"""

import ml_collections

from configs import clevrer
from configs import parts
from configs import test
from configs import toy

ROWS = ("full", "no_auxiliary", "mlp", "resnet", "hierarchical")
BASES = {"clevrer": clevrer.get_config, "toy": toy.get_config, "test": test.get_config}


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
    """The config of Table 1 row `ROW` at size `BASE`, from the argument `"ROW[,BASE]"`."""
    row, _, base = arg.partition(",")
    base = base or "clevrer"
    if row not in ROWS:
        raise ValueError(f"configs/ablations.py: unknown row {row!r}; rows: {ROWS}.")
    if base not in BASES:
        raise ValueError(f"configs/ablations.py: unknown base {base!r}; bases: {tuple(BASES)}.")
    config = BASES[base]()
    size = "paper" if base == "clevrer" else base
    config.auxiliary.weight = 0.01       # λ of "Ours" (the paper's best, L2, scheme a).

    if row == "no_auxiliary":
        config.auxiliary.weight = 0.0
    elif row == "mlp":
        parts.use_reasoner(config, "mlp", size)  # λ = 0: the MLP has no object outputs.
    elif row == "hierarchical":
        parts.use_reasoner(config, "hierarchical", size)
        if base == "clevrer":
            # 13 + 13 blocks: with the frame projection, the flat 28 blocks' budget.
            config.model.num_layers = 26
    elif row == "resnet":
        parts.use_resnet(config, size)
    return config
