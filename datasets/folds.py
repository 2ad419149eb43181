"""Cross-validation folds of the training set: every example is scored by a model that never saw it.

Stratified by the given (noisy) label, as cleanlab's cross-validated probabilities are: each class's
rows are shuffled from the seed and dealt round-robin to the folds, so every fold holds about 1/K of
every class.
"""
from __future__ import annotations

import numpy as np

from core.errors import UserError
from datasets import noise as noise_lib

FOLDS_STREAM = 0x666F6C6473  # "folds"


def assign_folds(labels: np.ndarray, num_folds: int, seed: int) -> np.ndarray:
  """int64 [N]: the fold (0 .. num_folds-1) that holds out each row."""
  labels = np.asarray(labels)
  if num_folds < 2:
    raise UserError(f"--cross_val_folds={num_folds} is too few: use 2 or more")
  if len(labels) < 2 * num_folds:
    raise UserError(f"--cross_val_folds={num_folds} needs at least {2 * num_folds} training examples "
                    f"(the data has {len(labels)}): lower --cross_val_folds")
  rng = np.random.default_rng(noise_lib.stream_seed(seed, FOLDS_STREAM))
  folds = np.empty(len(labels), np.int64)
  offset = 0
  for c in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == c))
    folds[members] = (offset + np.arange(len(members))) % num_folds
    offset += len(members)  # the next class starts where this one stopped: folds stay the same size
  return folds
