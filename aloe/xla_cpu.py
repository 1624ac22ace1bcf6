"""XLA:CPU settings the project applies before JAX starts (imports neither JAX nor TensorFlow).

Convolutions. jaxlib 0.10's XLA:CPU hands convolutions to YNNPACK by default
(`--xla_cpu_experimental_ynn_fusion_type`, the "individual_convolution" fusion
type). At MONet's shapes on a 2-core AMD EPYC (AVX-512) those run at about 30
GFLOP/s, where XLA's own (Eigen) convolutions run several times faster: the
paper-size MONet training step of 64 frames (2 CPU devices, 4 microbatches) takes
9.77 s with YNNPACK's convolutions and 4.81 s without (`benchmarks/monet.py`,
BUILD_NOTES.md). Dots stay with YNNPACK, which runs the transformer's matmuls well.

`prefer_eigen_convolutions` removes that one fusion type from XLA_FLAGS; `import
aloe` calls it, so that the models run at that speed wherever they are
imported. XLA reads the flags when JAX first starts a backend, so it takes effect
only in a process that imports `aloe` (any of its modules) before its first JAX
computation. It changes nothing:
- where XLA_FLAGS already sets `--xla_cpu_experimental_ynn_fusion_type` (the
  user's choice wins: `=-invalid` removes nothing, i.e. keeps XLA's defaults,
  `=` turns every YNNPACK fusion off);
- for jaxlib versions outside `KNOWN_JAXLIB`, where the flag was not checked to
  exist (XLA aborts the process on an unknown flag); jaxlib 0.9 has it, and
  keeps convolutions out of YNNPACK by default anyway;
- on GPU and TPU backends, which do not read XLA:CPU flags.
"""

from importlib import metadata
import os

FLAG = "--xla_cpu_experimental_ynn_fusion_type"
NO_YNN_CONVOLUTIONS = f"{FLAG}=-individual_convolution"
# [first, last) jaxlib (major, minor) versions whose XLA has the flag.
KNOWN_JAXLIB = ((0, 9), (0, 12))


def _jaxlib_version() -> tuple[int, int] | None:
    """(major, minor) of the installed jaxlib, or None when it is not installed."""
    try:
        major, minor = metadata.version("jaxlib").split(".")[:2]
        return int(major), int(minor)
    except (metadata.PackageNotFoundError, ValueError):
        return None


def flags_with_eigen_convolutions(xla_flags: str, jaxlib: tuple[int, int] | None) -> str:
    """`xla_flags` with `NO_YNN_CONVOLUTIONS` appended, unless the flag is set or unknown.

    Args:
      xla_flags: the current XLA_FLAGS value ("" when unset).
      jaxlib: (major, minor) of jaxlib, or None.

    Returns:
      The XLA_FLAGS value to use.
    """
    if jaxlib is None or not KNOWN_JAXLIB[0] <= jaxlib < KNOWN_JAXLIB[1]:
        return xla_flags
    if any(flag.split("=")[0] == FLAG for flag in xla_flags.split()):
        return xla_flags
    return f"{xla_flags} {NO_YNN_CONVOLUTIONS}".strip()


def prefer_eigen_convolutions() -> None:
    """Sets XLA_FLAGS so that XLA:CPU keeps convolutions for itself (see the module docstring)."""
    flags = flags_with_eigen_convolutions(os.environ.get("XLA_FLAGS", ""), _jaxlib_version())
    if flags:
        os.environ["XLA_FLAGS"] = flags
