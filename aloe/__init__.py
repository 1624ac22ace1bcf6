"""ALOE: attention over learned object embeddings, in JAX/Flax."""
