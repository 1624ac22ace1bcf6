"""Analyses of the data and of trained models (counterfactual difficulty split: `counterfactual`)."""
