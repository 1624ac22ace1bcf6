"""DeepMind's released ALOE CLEVRER model: its TF1 checkpoint converted into a workdir.

`python -m aloe.release` is the command (`aloe/release/__main__.py`);
`aloe.release.convert` the library.
"""

from aloe.release.convert import ReleaseCheckpointError
from aloe.release.convert import convert
from aloe.release.convert import read_release
from aloe.release.convert import release_params
from aloe.release.convert import release_shapes

__all__ = ["ReleaseCheckpointError", "convert", "read_release", "release_params",
           "release_shapes"]
