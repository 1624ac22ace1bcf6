"""Reading JSON files with errors that name the file.

The one home for parsing JSON from disk: annotations, questions, labels,
configs, results. Nothing here evaluates or unpickles anything.
"""

import json
import os
from typing import Any


def read_json(path: str | os.PathLike) -> Any:
    """Parses the JSON file at `path`.

    Raises:
      FileNotFoundError: naming `path`, when there is no such file.
      ValueError: naming `path`, when it is not valid UTF-8 JSON.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file.")
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not valid JSON ({err}).") from None
