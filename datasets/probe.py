"""The clean, class-balanced probe (meta) set held out of the training data, as IEG does it.

n_probe = floor(N * ratio); each class gives n_probe // K examples, drawn without replacement on
the CLEAN labels, removed from training. The probe order interleaves the classes:
each class's picks are shuffled, stacked to [K, n] and transposed -> c0, c1, ..., c_{K-1}, c0, ...
"""
from __future__ import annotations

import math

import numpy as np

from core.errors import UserError
from datasets import noise as noise_lib

FLAG = "--probe_dataset_hold_ratio"
# Tag that makes the probe stream independent of the noise stream of the same --seed.
PROBE_STREAM = 0x70726F6265  # "probe"


def probe_size(num_examples: int, ratio: float) -> int:
  """floor(N * ratio), robust to float rounding (0.29 * 100 is 28.999...)."""
  exact = num_examples * ratio
  nearest = round(exact)
  return int(nearest) if abs(exact - nearest) < 1e-9 * max(1.0, exact) else math.floor(exact)


def split_probe(clean_labels: np.ndarray, num_classes: int, ratio: float,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(probe indices in class-interleaved order, remaining train indices in original order)."""
  labels = np.asarray(clean_labels)
  if labels.ndim != 1:
    raise UserError(f"labels must be 1-D, got shape {labels.shape}")
  n = len(labels)
  try:
    ratio = float(ratio)
  except (TypeError, ValueError):
    raise UserError(f"{FLAG}={ratio!r} is not a number in [0, 1)") from None
  if not math.isfinite(ratio) or not 0.0 <= ratio < 1.0:
    raise UserError(f"{FLAG}={ratio!r} must be in [0, 1) (the fraction of the training set held "
                    "out as the clean probe set)")
  if ratio == 0.0 or n == 0:
    return np.zeros(0, np.int64), np.arange(n, dtype=np.int64)
  per_class = probe_size(n, ratio) // num_classes
  if per_class == 0:
    smallest = num_classes / n
    raise UserError(
        f"{FLAG}={ratio:g} holds out floor({n} * {ratio:g}) = {probe_size(n, ratio)} examples, "
        f"fewer than one per class for {num_classes} classes; use at least {smallest:.6g} "
        f"(one example per class), or 0 for no probe set")
  rng = np.random.default_rng(noise_lib.stream_seed(seed, PROBE_STREAM))
  picks = []
  for c in range(num_classes):
    members = np.flatnonzero(labels == c)
    if len(members) < per_class:
      raise UserError(
          f"{FLAG}={ratio:g}: class {c} has only {len(members)} training examples but the "
          f"probe set needs {per_class} per class; lower {FLAG}")
    chosen = rng.choice(members, size=per_class, replace=False)
    rng.shuffle(chosen)
    picks.append(chosen)
  probe = np.stack(picks).T.reshape(-1).astype(np.int64)   # [K, n] -> [n, K] -> interleaved
  keep = np.ones(n, bool)
  keep[probe] = False
  return probe, np.flatnonzero(keep).astype(np.int64)
