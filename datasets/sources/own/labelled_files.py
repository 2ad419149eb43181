"""Labelled image files per split -> a RawDataset: decode, drop skipped files, hold out the test set.

Shared by the folder and the CSV sources. When the data brings no test split, --test_fraction of
every class (the same share of each, drawn with --seed) becomes the test set; the rest stays
training data in its listed order, and `RawDataset.paths` keeps the file of every training row.
"""
from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np

from core.errors import UserError
from datasets.sources.own import decode
from datasets.sources.own import disk_cache
from datasets.sources.registry import RawDataset, SourceOptions

SPLITS = ("train", "test", "probe")
FRACTION_FLAG = "--test_fraction"
# Tag that makes the test holdout's stream independent of the probe and noise streams of one seed.
TEST_STREAM = 0x74657374  # "test"


@dataclasses.dataclass
class LabelledFiles:
  """The image files of one split and their class ids."""
  paths: list[str] = dataclasses.field(default_factory=list)
  labels: list[int] = dataclasses.field(default_factory=list)

  def add(self, path: str, label: int) -> None:
    self.paths.append(path)
    self.labels.append(int(label))


def split_test(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(test rows, train rows), both in their original order: round(n_c * fraction) rows of every
  class c with n_c >= 2 images go to test, at least one and never all of them."""
  if not (isinstance(fraction, (int, float)) and 0.0 < fraction <= 0.9):
    raise UserError(f"{FRACTION_FLAG}={fraction} is out of range: use a number in (0, 0.9]")
  labels = np.asarray(labels, dtype=np.int64)
  rng = np.random.default_rng(np.random.SeedSequence([int(seed), TEST_STREAM]))
  test = []
  for c in np.unique(labels):
    members = np.flatnonzero(labels == c)
    if len(members) < 2:
      continue   # a class of one image keeps it for training
    take = min(max(int(math.floor(len(members) * fraction + 0.5)), 1), len(members) - 1)
    test.append(rng.choice(members, size=take, replace=False))
  test = np.sort(np.concatenate(test)) if test else np.zeros(0, np.int64)
  train = np.setdiff1d(np.arange(len(labels)), test)
  return test.astype(np.int64), train.astype(np.int64)


def load_images(paths: list[str], options: SourceOptions, where: str) -> decode.Decoded:
  """The files decoded in memory, or once to disk when the set is too large (--image_cache)."""
  if not paths:
    raise UserError(f"{where}: no image files to read")
  estimate = None if options.image_cache == "disk" else decode.memory_estimate(paths, image_size=options.image_size)
  if not use_disk(options, estimate, where):
    return decode.decode_files(paths, image_size=options.image_size, skip_bad=options.skip_bad_images,
                               where=where)
  return disk_cache.decode_to_disk(paths, image_size=options.image_size, skip_bad=options.skip_bad_images,
                                   where=where, cache_dir=options.image_cache_dir)


def use_disk(options: SourceOptions, estimate: decode.MemoryEstimate | None, where: str) -> bool:
  """Whether decoded images go to disk: --image_cache=disk, or auto with a set too large for
  memory (said in one warning). --image_cache=memory with a set too large is one error."""
  if options.image_cache not in decode.STORES:
    raise UserError(f"{decode.STORE_FLAG}={options.image_cache} is not known: choose one of "
                    f"{', '.join(decode.STORES)}")
  too_large = estimate is not None and not estimate.fits
  if options.image_cache == "memory" and too_large:
    raise estimate.error(where)
  if options.image_cache == "memory" or (options.image_cache == "auto" and not too_large):
    return False
  if not options.image_cache_dir:
    raise UserError(f"{where}: decoded images go to disk here, but no folder is set for them: pass "
                    f"{decode.CACHE_DIR_FLAG}=DIR")
  if too_large:
    logging.getLogger("absl").warning(
        "%s: %d images need about %s of memory once decoded, more than the %s free: they are decoded "
        "once to %s and read from there (%s=memory to refuse)", where, estimate.count,
        decode.human_size(estimate.need), decode.human_size(estimate.available), options.image_cache_dir,
        decode.STORE_FLAG)
  return True


def build_raw(splits: dict[str, LabelledFiles], *, num_classes: int, class_names: list[str] | None,
              options: SourceOptions, where: str) -> RawDataset:
  """Decodes every split's files together (one shape for all) and assembles the RawDataset."""
  order = [s for s in SPLITS if s in splits and splits[s].paths]
  paths = [p for s in order for p in splits[s].paths]
  labels = np.array([y for s in order for y in splits[s].labels], dtype=np.int64)
  split_of = np.concatenate([np.full(len(splits[s].paths), i) for i, s in enumerate(order)])
  out = load_images(paths, options, where)
  kept_split, kept_labels = split_of[out.kept], labels[out.kept]
  kept_paths = [paths[i] for i in out.kept]
  rows = {s: np.flatnonzero(kept_split == i) for i, s in enumerate(order)}
  if "train" not in rows or not len(rows["train"]):
    raise UserError(f"{where}: no training image could be read")
  train = rows["train"]
  if "test" in rows and len(rows["test"]):
    test = rows["test"]
  else:
    test_part, train_part = split_test(kept_labels[train], options.test_fraction, options.seed)
    test, train = train[test_part], train[train_part]
    if not len(test):
      raise UserError(f"{where}: too few images to hold out a test set ({FRACTION_FLAG}); "
                      "give every class at least 2 images or a test split")
  counts = np.bincount(kept_labels[train], minlength=num_classes)
  if (counts == 0).any():
    c = int(np.flatnonzero(counts == 0)[0])
    name = class_names[c] if class_names else str(c)
    raise UserError(f"{where}: class {name!r} has no training image left (after the test "
                    "holdout and skipped files); add images of it")
  raw = RawDataset(x_train=out.images[train], y_train=kept_labels[train], x_test=out.images[test],
                   y_test=kept_labels[test], num_classes=int(num_classes),
                   class_names=list(class_names) if class_names else None,
                   paths=[kept_paths[i] for i in train],
                   skipped_paths=[paths[i] for i in np.setdiff1d(np.arange(len(paths)), out.kept)])
  if "probe" in rows and len(rows["probe"]):
    raw.x_probe, raw.y_probe = out.images[rows["probe"]], kept_labels[rows["probe"]]
  return raw
