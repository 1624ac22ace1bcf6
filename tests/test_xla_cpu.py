"""`aloe.xla_cpu`: XLA:CPU keeps convolutions for itself once `aloe` is imported."""

import os
import subprocess
import sys

import pytest

from aloe import xla_cpu
from tests import subprocess_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Prints whether XLA handed the convolution of a compiled program to YNNPACK.
CONV_PROGRAM = (
    "import jax, jax.numpy as jnp\n"
    "x, k = jnp.ones((4, 32, 32, 32)), jnp.ones((3, 3, 32, 32))\n"
    "conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), 'SAME', "
    "dimension_numbers=('NHWC', 'HWIO', 'NHWC'))\n"
    "print('__ynn_fusion' in jax.jit(conv).lower(x, k).compile().as_text())\n")


def _ynn_convolution(preamble: str, xla_flags: str) -> bool:
    env = subprocess_env.cpu_devices()
    env["XLA_FLAGS"] = f"{env['XLA_FLAGS']} {xla_flags}".strip()
    result = subprocess.run([sys.executable, "-c", preamble + CONV_PROGRAM], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120, check=True)
    return {"True": True, "False": False}[result.stdout.strip().splitlines()[-1]]


def test_the_flag_is_appended_once_and_a_users_setting_is_kept():
    known = xla_cpu.KNOWN_JAXLIB[0]
    assert (xla_cpu.flags_with_eigen_convolutions("", known)
            == "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution")
    assert (xla_cpu.flags_with_eigen_convolutions("--xla_foo=1", known)
            == "--xla_foo=1 --xla_cpu_experimental_ynn_fusion_type=-individual_convolution")
    once = xla_cpu.flags_with_eigen_convolutions("", known)
    assert xla_cpu.flags_with_eigen_convolutions(once, known) == once
    users = "--xla_cpu_experimental_ynn_fusion_type= --xla_foo=1"
    assert xla_cpu.flags_with_eigen_convolutions(users, known) == users
    # A jaxlib whose XLA was not checked to have the flag, or none: nothing is added.
    for version in ((0, 8), xla_cpu.KNOWN_JAXLIB[1], None):
        assert xla_cpu.flags_with_eigen_convolutions("--xla_foo=1", version) == "--xla_foo=1"


def test_importing_aloe_keeps_convolutions_out_of_ynnpack():
    if xla_cpu.flags_with_eigen_convolutions("", xla_cpu._jaxlib_version()) == "":
        pytest.skip("this jaxlib's XLA is not known to have the flag")
    # A user's explicit setting wins over aloe's.
    if not _ynn_convolution("import aloe\n", f"{xla_cpu.FLAG}=individual_convolution"):
        pytest.skip("this XLA gives no convolution to YNNPACK (jaxlib 0.9)")
    # The same program: YNNPACK's by default (jaxlib 0.10), XLA's own once aloe is imported.
    assert _ynn_convolution("", "")
    assert not _ynn_convolution("import aloe\n", "")
