"""A held-out validation part of the noisy training set, for choosing the epoch without the test set.

The field reports the test accuracy at the epoch chosen on data the model never trains on; picking
the best epoch on the test set itself is a leak. With no clean labels at hand, the validation rows
carry their noisy labels (accuracy on them ranks epochs like clean accuracy does under
class-conditional noise). The split is class-balanced by the noisy label, drawn from its own seed
stream after the noise, so the remaining rows keep exactly the labels of a run without it.
"""
from __future__ import annotations

import numpy as np

from core.errors import UserError
from datasets import noise as noise_lib

FLAG = "--validation_fraction"
VALIDATION_STREAM = 0x76616C6964  # "valid"


def split_validation(noisy_labels: np.ndarray, num_classes: int, fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(validation indices, remaining train indices), both sorted; round(fraction * n_c) of each class c."""
  labels = np.asarray(noisy_labels)
  n = len(labels)
  if fraction == 0.0:
    return np.zeros(0, np.int64), np.arange(n, dtype=np.int64)
  rng = np.random.default_rng(noise_lib.stream_seed(seed, VALIDATION_STREAM))
  picks = []
  for c in range(num_classes):
    members = np.flatnonzero(labels == c)
    take = int(round(fraction * len(members)))
    if len(members) and take >= len(members):
      raise UserError(f"{FLAG}={fraction:g} would leave class {c} with no training example ({len(members)} "
                      f"in all): lower {FLAG}")
    picks.append(rng.choice(members, size=take, replace=False))
  validation = np.sort(np.concatenate(picks)).astype(np.int64) if picks else np.zeros(0, np.int64)
  if fraction > 0 and len(validation) == 0:
    raise UserError(f"{FLAG}={fraction:g} holds out no example of {n}: raise it or set 0")
  keep = np.setdiff1d(np.arange(n, dtype=np.int64), validation)
  return validation, keep
