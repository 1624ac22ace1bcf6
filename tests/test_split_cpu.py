"""`aloe.parallel.split_cpu` and the `--cpu_devices` flags that use it."""

import os
import subprocess
import sys

import pytest

from aloe import parallel
from tests import subprocess_env

ENV = subprocess_env.cpu_devices()  # No device-count flag: JAX's default, one CPU device.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True,
                            text=True, timeout=120, check=True)
    return result.stdout.strip()


def test_the_cpu_becomes_the_given_number_of_devices():
    assert _python("import jax; print(jax.device_count())") == "1"
    assert _python("from aloe import parallel; parallel.split_cpu(3); import jax; "
                   "print(jax.device_count(), jax.default_backend())") == "3 cpu"
    # 0 keeps the default.
    assert _python("from aloe import parallel; parallel.split_cpu(0); import jax; "
                   "print(jax.device_count())") == "1"


def test_a_negative_count_and_a_late_split_are_errors():
    with pytest.raises(ValueError, match="0 .* or more, got -1"):
        parallel.split_cpu(-1)
    late = ("import jax, jax.numpy as jnp; jnp.zeros(1).block_until_ready()\n"
            "from aloe import parallel\n"
            "try:\n    parallel.split_cpu(2)\nexcept RuntimeError as e:\n    print('refused')")
    assert _python(late) == "refused"


def test_main_runs_on_the_devices_its_flag_names(tmp_path):
    # The run stops at the config check after JAX has started and logged its devices.
    result = subprocess.run(
        [sys.executable, "-m", "aloe.main", "--cpu_devices=2", f"--config={REPO}/configs/test.py",
         f"--workdir={tmp_path}", "--mode=eval"],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert "2 local devices" in result.stderr, result.stderr[-2000:]
    assert "config.data.root is empty" in result.stderr
