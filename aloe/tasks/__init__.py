"""Tasks: what a model computes from a batch (losses, predictions, metrics)."""
