"""Installs `aloe`: ALOE video reasoning (MONet object latents + transformer) in JAX/Flax."""

import setuptools

# The stock `tfds build` command imports these at start-up; the builders do not.
TFDS_CLI = ["apache-beam>=2.60", "mlcroissant>=1.0"]

setuptools.setup(
    name="aloe",
    version="0.1.0",
    description=(
        "Attention over learned object embeddings (ALOE) for video reasoning on "
        "CLEVRER and CATER, in JAX/Flax."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["aloe", "aloe.*", "configs"]),
    python_requires=">=3.11",
    install_requires=[
        "absl-py>=2.1",
        "av>=14.0",
        "chex>=0.1.89",
        "clu>=0.0.12",
        "flax>=0.12.0",
        "jax>=0.9.0",
        "matplotlib>=3.8",
        "ml-collections>=1.1.0",
        "numpy>=2.0",
        "optax>=0.2.6",
        "orbax-checkpoint>=0.11.0",
        "pillow>=10.0",
        "tensorflow-cpu>=2.20",
        "tensorboard>=2.20",
        "tensorflow-datasets>=4.9.9",
        "tqdm>=4.66",
    ],
    extras_require={
        "tfds-cli": TFDS_CLI,
        "test": ["pytest>=8.0", "pytest-xdist>=3.6"] + TFDS_CLI,
        "bench": ["torch>=2.5"],
    },
)
