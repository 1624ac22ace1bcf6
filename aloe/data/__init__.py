"""Input data: vocabularies, latent stores, dataset builders and batch pipelines."""
