"""The environment of a subprocess a test starts on CPU devices."""

import os


def cpu_devices(count: int = 1, *, compile_flags: bool = True, **extra: str) -> dict[str, str]:
    """This process's environment for a subprocess on `count` CPU devices.

    Args:
      count: CPU devices the subprocess sees (the tests themselves see four).
      compile_flags: with the tests' XLA compile flags (`conftest.py`: fast to
        compile, slow to run); False for a run that trains for long (XLA's full
        optimisation).
      **extra: more variables.
    """
    flags = [f"--xla_force_host_platform_device_count={count}"] if count > 1 else []
    if compile_flags:
        flags.append(os.environ["ALOE_TEST_XLA_COMPILE_FLAGS"])
    return {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": " ".join(flags), **extra}
