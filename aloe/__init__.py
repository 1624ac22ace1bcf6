"""ALOE: attention over learned object embeddings, in JAX/Flax.

Importing the package sets one XLA:CPU flag, before JAX starts, so that XLA runs
convolutions itself instead of YNNPACK (several times faster for MONet on CPU;
`aloe.xla_cpu` says when and why, and how to keep XLA's default).
"""

from aloe import xla_cpu

xla_cpu.prefer_eigen_convolutions()
