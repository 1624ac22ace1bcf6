"""The example that shows how to reuse the Flax modules keeps working."""

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_reuse_modules_example_runs():
    done = subprocess.run([sys.executable, "examples/reuse_modules.py"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "MONet: masks (2, 4, 32, 32, 1) sum to 1" in out
    assert "Transformer: (3, 10, 16)" in out
    assert "ALOE: descriptive loss" in out
