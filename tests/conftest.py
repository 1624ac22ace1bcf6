"""Test set-up: four CPU devices so the data-parallel path runs without accelerators."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The 4 CPU devices are threads of one process; on a loaded 2-core machine a
# thread can reach a collective much later than the others, and XLA's default
# 40 s rendezvous timeout would abort the process ("only 3 of them arrived").
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    " --xla_cpu_collective_call_terminate_timeout_seconds=1200"
    " --xla_cpu_collective_call_warn_stuck_timeout_seconds=300"
).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pathlib  # noqa: E402

import pytest  # noqa: E402

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def clevrer_samples_dir() -> pathlib.Path:
    """The directory of real CLEVRER question samples shipped beside the checkout."""
    path = SHARED / "data" / "clevrer_samples"
    if not path.is_dir():
        pytest.fail(f"{path} is missing: the tests need ../shared beside the checkout.")
    return path
