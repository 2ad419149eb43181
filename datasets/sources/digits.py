"""scikit-learn's bundled 8x8 digits (1437/360 split): the offline demo, no download."""
from __future__ import annotations

import numpy as np

from datasets.sources import meta
from datasets.sources.registry import RawDataset, raw_dataset, register_source

DIGITS_NUM_TEST = 360
DIGITS_SPLIT_SEED = 0


def stratified_split(labels: np.ndarray, num_test: int, seed: int):
  """(train_idx, test_idx), both sorted: a fixed, stratified split (largest-remainder quotas)."""
  labels = np.asarray(labels)
  classes, counts = np.unique(labels, return_counts=True)
  exact = counts * num_test / len(labels)
  quota = np.floor(exact).astype(int)
  order = np.argsort(-(exact - quota), kind="stable")
  quota[order[:num_test - quota.sum()]] += 1
  rng = np.random.default_rng(seed)
  test = np.concatenate([
      rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)])
  is_test = np.zeros(len(labels), bool)
  is_test[test] = True
  return np.flatnonzero(~is_test), np.flatnonzero(is_test)


@register_source("digits")
def _load_digits(data_dir, dataset_file) -> RawDataset:
  del data_dir, dataset_file
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top

  d = load_digits()
  images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)   # values 0..16 -> 0..255
  labels = d.target.astype(np.int64)
  train, test = stratified_split(labels, DIGITS_NUM_TEST, DIGITS_SPLIT_SEED)
  return raw_dataset(images[train], labels[train], images[test], labels[test], 10,
                     meta.DIGITS_CLASS_NAMES)
