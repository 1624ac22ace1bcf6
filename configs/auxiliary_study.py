r"""The auxiliary-loss comparisons of the paper's Figures 3 and 4, one config per point.

Figure 4 (masking scheme x loss, trained on 50% of the labels):

  python -m aloe.study --out=studies/figure4 $(python -m configs.auxiliary_study figure4) \
      --override data.root=/path/to/clevrer_latents

Figure 3 (label fraction x with / without the auxiliary loss):

  python -m aloe.study --out=studies/figure3 $(python -m configs.auxiliary_study figure3) \
      --override data.root=/path/to/clevrer_latents

The config argument is `figure4/SCHEME/LOSS[/BASE]` (SCHEME a..f, LOSS l2 or
contrastive) or `figure3/FRACTION/AUX[/BASE]` (AUX on or off); BASE is
`clevrer` (default, the paper's sizes) or `toy`. `python -m configs.auxiliary_study
figure3|figure4` prints the `--run` arguments of the whole figure.
"""

import sys

import ml_collections

from configs import clevrer
from configs import toy

BASES = {"clevrer": clevrer.get_config, "toy": toy.get_config}
SCHEMES = "abcdef"
LOSSES = ("l2", "contrastive")
FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0)
FIGURE4_FRACTION = 0.5  # Figure 4's models train on half of the labels.


def get_config(arg: str = "figure4/a/l2") -> ml_collections.ConfigDict:
    """The config of one point of Figure 3 or Figure 4 (see the module docstring)."""
    parts = arg.split("/")
    if len(parts) not in (3, 4) or parts[0] not in ("figure3", "figure4"):
        raise ValueError(f"configs/auxiliary_study.py: {arg!r} is not 'figure4/SCHEME/LOSS[/BASE]'"
                         f" or 'figure3/FRACTION/AUX[/BASE]'.")
    base = parts[3] if len(parts) == 4 else "clevrer"
    if base not in BASES:
        raise ValueError(f"configs/auxiliary_study.py: unknown base {base!r}; {tuple(BASES)}.")
    config = BASES[base]()
    weight = 0.01 if base == "clevrer" else 0.1  # λ: the paper's, or the toy's.
    if parts[0] == "figure4":
        scheme, loss = parts[1], parts[2]
        if scheme not in SCHEMES or loss not in LOSSES:
            raise ValueError(f"configs/auxiliary_study.py: scheme must be one of {SCHEMES!r} and "
                             f"loss one of {LOSSES}, got {scheme!r}, {loss!r}.")
        config.data.labeled_fraction = FIGURE4_FRACTION
        config.auxiliary.weight = weight
        config.auxiliary.scheme = scheme
        config.auxiliary.loss = loss
    else:
        fraction, aux = float(parts[1]), parts[2]
        if aux not in ("on", "off"):
            raise ValueError(f"configs/auxiliary_study.py: AUX must be 'on' or 'off', got {aux!r}.")
        config.data.labeled_fraction = fraction
        config.auxiliary.weight = weight if aux == "on" else 0.0
    return config


def runs(figure: str, base: str = "clevrer") -> list[tuple[str, str]]:
    """`(name, config argument)` of every point of `figure` ('figure3' or 'figure4')."""
    suffix = "" if base == "clevrer" else f"/{base}"
    if figure == "figure4":
        return [(f"{s}_{l}", f"figure4/{s}/{l}{suffix}") for s in SCHEMES for l in LOSSES]
    if figure == "figure3":
        return [(f"fraction{f}_{a}", f"figure3/{f}/{a}{suffix}")
                for f in FRACTIONS for a in ("on", "off")]
    raise ValueError(f"Unknown figure {figure!r}; 'figure3' or 'figure4'.")


if __name__ == "__main__":
    print(" ".join(f"--run {name}=configs/auxiliary_study.py:{arg}"
                   for name, arg in runs(*sys.argv[1:])))
