"""Test set-up: four CPU devices so the data-parallel path runs without accelerators."""

import atexit
import os
import shutil
import tempfile

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
# One compilation cache for the whole session, subprocesses included: many tests
# compile the same programs (the same tiny configs, trained and evaluated from
# Python and from the command line), and compiling is most of their time. A new
# directory each session, so no result depends on an earlier run.
_CACHE = tempfile.mkdtemp(prefix="aloe-test-jax-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

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


def pytest_collection_finish(session: pytest.Session) -> None:
    """Lets test modules start long runs early: each selected test's module may
    define `start_early(item)`, called once per selected test after collection."""
    if session.config.option.collectonly:
        return
    for item in session.items:
        start = getattr(getattr(item, "module", None), "start_early", None)
        if start is not None:
            start(item)
