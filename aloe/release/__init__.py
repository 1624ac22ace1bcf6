"""DeepMind's released ALOE CLEVRER model: its TF1 checkpoint converted into a workdir.

`python -m aloe.release` is the command (`aloe/release/__main__.py`);
`aloe.release.converter` the library.
"""

from aloe.release.converter import ReleaseCheckpointError
from aloe.release.converter import convert
from aloe.release.converter import read_release
from aloe.release.converter import release_params
from aloe.release.converter import release_shapes

__all__ = ["ReleaseCheckpointError", "convert", "read_release", "release_params",
           "release_shapes"]
