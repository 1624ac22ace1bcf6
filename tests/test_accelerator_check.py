"""The one-command machine check (benchmarks/accelerator.py) runs end to end at tiny sizes."""

import pathlib
import subprocess
import sys

import pytest

import subprocess_env

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_accelerator_check_tiny_run(tmp_path):
    env = subprocess_env.cpu_devices(compile_flags=False)
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "accelerator.py"), "--tiny",
         "--workdir", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for start in ("device: cpu", "matmul peak float32", "matmul peak bfloat16", "aloe float32:",
                  "aloe bfloat16:", "monet float32:", "monet extraction:", "end-to-end:"):
        assert any(line.startswith(start) for line in lines), (start, result.stdout)
    assert "learning check passed" in result.stdout, result.stdout
