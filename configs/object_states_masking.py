r"""The masking schemes x auxiliary losses (the paper's Figure 4) on CLEVRER object states.

  python -m aloe.main --config=configs/object_states_masking.py:e/contrastive \
      --workdir=workdirs/os_e_contrastive

The argument is `SCHEME/LOSS` (SCHEME a..f of `aloe.masking`, LOSS l2 or
contrastive): the `full` row of `configs/object_states.py` trained on 50% of
the labels, as Figure 4's models are (`configs/auxiliary_study.py`), with λ = 0.1
(`configs/auxiliary_study.py`'s toy λ). Scheme parameters keep their defaults;
override them with `--config.auxiliary.scheme_params.buffer=...`.
"""

import ml_collections

from configs import auxiliary_study
from configs import object_states


def get_config(arg: str = "a/l2") -> ml_collections.ConfigDict:
    """The full row on object states with one masking scheme and loss."""
    scheme, _, loss = arg.partition("/")
    if scheme not in auxiliary_study.SCHEMES or loss not in auxiliary_study.LOSSES:
        raise ValueError(f"configs/object_states_masking.py: {arg!r} is not SCHEME/LOSS with "
                         f"SCHEME in {auxiliary_study.SCHEMES!r}, LOSS in "
                         f"{auxiliary_study.LOSSES}.")
    config = object_states.get_config("full")
    config.data.labeled_fraction = auxiliary_study.FIGURE4_FRACTION
    config.auxiliary.weight = 0.1
    config.auxiliary.scheme = scheme
    config.auxiliary.loss = loss
    return config
