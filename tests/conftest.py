"""Test set-up: four CPU devices so the data-parallel path runs without accelerators."""

import atexit
import os
import shutil
import tempfile

from aloe import reporting  # Imports neither JAX nor TensorFlow.

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The 4 CPU devices are threads of one process; on a loaded 2-core machine a
# thread can reach a collective much later than the others, and XLA's default
# 40 s rendezvous timeout would abort the process ("only 3 of them arrived").
# Most test time is compiling small programs: at XLA's backend optimisation level 0
# they compile faster and run slower (test_conv.py's MONet test 64 s -> 31 s, the
# auxiliary learning test 39 s -> 55 s; those two files 208 s -> 179 s in all).
# Subprocesses inherit XLA_FLAGS; a test that gives its subprocess other XLA flags
# (e.g. one device) adds ALOE_TEST_XLA_COMPILE_FLAGS to them.
COMPILE_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
os.environ["ALOE_TEST_XLA_COMPILE_FLAGS"] = COMPILE_FLAGS
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    " --xla_cpu_collective_call_terminate_timeout_seconds=1200"
    " --xla_cpu_collective_call_warn_stuck_timeout_seconds=300 " + COMPILE_FLAGS
).strip()
reporting.set_tensorflow_environment()  # Before any test imports TensorFlow.
# One directory for the whole test session, shared by pytest-xdist's workers (they
# inherit this environment from the process that loads this file first) and by
# every subprocess: it holds one JAX compilation cache (many tests compile the same
# programs, from Python and from the command line, and compiling is most of their
# time) and the runs that tests share across workers. A new directory each session,
# so no result depends on an earlier run; the process that made it removes it.
if "ALOE_TEST_SESSION_DIR" not in os.environ:
    os.environ["ALOE_TEST_SESSION_DIR"] = tempfile.mkdtemp(prefix="aloe-test-session-")
    atexit.register(shutil.rmtree, os.environ["ALOE_TEST_SESSION_DIR"], ignore_errors=True)
SESSION_DIR = os.environ["ALOE_TEST_SESSION_DIR"]
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(SESSION_DIR, "jax-cache")
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


def _module_rank(module_items: list[pytest.Item]) -> int:
    """0: a module with a `slow` test; 1: the others; 2: a module that starts a run
    early (`start_early`), so the run has the whole session to finish."""
    if hasattr(getattr(module_items[0], "module", None), "start_early"):
        return 2
    return 0 if any(item.get_closest_marker("slow") for item in module_items) else 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Orders modules by `_module_rank` (otherwise in collection order): with
    pytest-xdist's `--dist loadfile` each module runs on one worker, and starting the
    long ones first keeps the workers' loads even at the end."""
    by_module: dict[str, list[pytest.Item]] = {}
    for item in items:
        by_module.setdefault(item.nodeid.split("::")[0], []).append(item)
    modules = sorted(by_module.values(), key=_module_rank)
    items[:] = [item for module in modules for item in module]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Lets test modules start long runs early: each selected test's module may
    define `start_early(item)`, called once per selected test after collection (in
    every xdist worker: a run shared across workers starts once, see
    `shared_run.py`)."""
    if session.config.option.collectonly:
        return
    for item in session.items:
        start = getattr(getattr(item, "module", None), "start_early", None)
        if start is not None:
            start(item)
