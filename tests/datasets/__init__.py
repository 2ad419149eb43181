"""Tests of datasets/: sources, noise models, the probe holdout, augmentation and the pipelines."""
