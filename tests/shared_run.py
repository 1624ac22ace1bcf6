"""Long runs that tests share, started once per test session across pytest-xdist workers.

Each xdist worker collects every test, so each calls a module's `start_early`; the
first process to create the run's lock file (in the session directory conftest.py
makes, `ALOE_TEST_SESSION_DIR`) runs it on a thread and writes its JSON result, or
the error it raised, into the run's directory; a test in any worker waits for that
file. Without xdist the one process does both.
"""

import json
import os
import threading
import time
import traceback
from typing import Any, Callable

_STARTED: dict[str, threading.Thread] = {}


class SharedRun:
    """A run `fn(directory) -> JSON-able value`, done once per test session.

    `directory` is the run's own empty folder in the session directory; it lives
    until the session ends, so tests may read what the run left there.
    """

    def __init__(self, name: str, fn: Callable[[str], Any]):
        self.name, self._fn = name, fn
        self.directory = os.path.join(os.environ["ALOE_TEST_SESSION_DIR"], "runs", name)
        self._result = os.path.join(self.directory, "result.json")
        self._error = os.path.join(self.directory, "error.txt")

    def start(self) -> None:
        """Starts the run on a thread here, unless some process already has."""
        if self.name in _STARTED:
            return
        os.makedirs(os.path.dirname(self.directory), exist_ok=True)
        try:
            os.close(os.open(self.directory + ".lock", os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            _STARTED[self.name] = None   # Another process runs it.
            return
        os.makedirs(self.directory)
        _STARTED[self.name] = threading.Thread(target=self._run, daemon=True)
        _STARTED[self.name].start()

    def _run(self) -> None:
        try:
            value = self._fn(self.directory)
            path, text = self._result, json.dumps(value)
        except BaseException:  # pylint: disable=broad-except
            path, text = self._error, traceback.format_exc()
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)

    def result(self, timeout_s: float = 3600) -> Any:
        """Waits for the run (starting it if no process has) and returns its value."""
        self.start()
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if os.path.exists(self._result):
                with open(self._result) as f:
                    return json.load(f)
            if os.path.exists(self._error):
                with open(self._error) as f:
                    raise RuntimeError(f"the shared run {self.name!r} failed:\n{f.read()}")
            time.sleep(0.5)
        raise TimeoutError(f"the shared run {self.name!r} gave no result in {timeout_s:.0f} s")
