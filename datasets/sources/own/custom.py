"""custom: the user's own .npz (`--dataset=custom --dataset_file=data.npz`), checked key by key.

The file holds x_train, y_train, x_test, y_test and optionally a clean probe set x_probe, y_probe
and class_names; every mistake gets one UserError that says how to fix the file.
"""
from __future__ import annotations

import os

import numpy as np

from core.errors import UserError
from datasets.sources.registry import RawDataset, first_line, register_source

CUSTOM_REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
CUSTOM_PROBE_KEYS = ("x_probe", "y_probe")


@register_source("custom", required_flag="dataset_file", labels_as_given=True)
def _load_custom(data_dir, dataset_file) -> RawDataset:
  del data_dir
  return load_custom_npz(dataset_file)


def load_custom_npz(path: str | os.PathLike | None) -> RawDataset:
  """Reads and validates a user's npz: x_train, y_train, x_test, y_test [, x_probe, y_probe]."""
  fmt = ("an .npz made with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...) "
         "[optional clean probe set: x_probe=..., y_probe=...]")
  if path is None:
    raise UserError(f"--dataset=custom needs --dataset_file: {fmt}")
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise UserError(f"--dataset_file: {path} does not exist (expected {fmt})")
  try:
    npz = np.load(path, allow_pickle=False)
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f"--dataset_file: {path} is not an npz archive ({type(e).__name__}); "
                    f"expected {fmt}") from e
  if not isinstance(npz, np.lib.npyio.NpzFile):
    raise UserError(f"--dataset_file: {path} is a single .npy array, not an npz; expected {fmt}")
  with npz:
    keys = set(npz.files)
    missing = [k for k in CUSTOM_REQUIRED_KEYS if k not in keys]
    if missing:
      raise UserError(f"--dataset_file: {path} lacks {', '.join(missing)} (it has "
                      f"{', '.join(sorted(keys)) or 'no arrays'}); expected {fmt}")
    has_probe = [k in keys for k in CUSTOM_PROBE_KEYS]
    if any(has_probe) and not all(has_probe):
      raise UserError(f"--dataset_file: {path} has only one of x_probe / y_probe; give both "
                      "(a clean probe set) or neither")
    names = CUSTOM_REQUIRED_KEYS + (CUSTOM_PROBE_KEYS if all(has_probe) else ())
    arrays = {}
    for k in names + (("class_names",) if "class_names" in keys else ()):
      try:
        arrays[k] = np.asarray(npz[k])
      except Exception as e:  # pylint: disable=broad-except  (object arrays, broken members)
        raise UserError(f"--dataset_file: {path}: cannot read array {k!r} "
                        f"({type(e).__name__}: {first_line(e)}); save plain numeric arrays") from e

  splits = ["train", "test"] + (["probe"] if all(has_probe) else [])
  images, labels = {}, {}
  for s in splits:
    x, y = arrays[f"x_{s}"], arrays[f"y_{s}"]
    if x.size == 0 or len(x) == 0 or y.size == 0:
      raise UserError(f"--dataset_file: {path}: x_{s}/y_{s} are empty")
    images[s] = _custom_images(x, f"x_{s}", path)
    labels[s] = _custom_labels(y, f"y_{s}", path)
    if len(images[s]) != len(labels[s]):
      raise UserError(f"--dataset_file: {path}: len(x_{s}) = {len(images[s])} but "
                      f"len(y_{s}) = {len(labels[s])}")
  for s in splits[1:]:
    if images[s].shape[1:] != images["train"].shape[1:]:
      raise UserError(f"--dataset_file: {path}: x_{s} images are {images[s].shape[1:]} but "
                      f"x_train images are {images['train'].shape[1:]} (H, W, C must match)")
  if len(np.unique(labels["train"])) < 2:
    raise UserError(f"--dataset_file: {path}: y_train has only one class "
                    f"({int(labels['train'][0])}); a classifier needs at least 2")
  num_classes = int(max(labels[s].max() for s in splits)) + 1
  missing = np.flatnonzero(np.bincount(labels["train"], minlength=num_classes) == 0)
  if len(missing):
    hint = " (labels start at 1? subtract 1 so they start at 0)" if missing.tolist() == [0] else ""
    raise UserError(f"--dataset_file: {path}: class{'es' if len(missing) > 1 else ''} "
                    f"{', '.join(map(str, missing[:10].tolist()))} of 0..{num_classes - 1} "
                    f"ha{'ve' if len(missing) > 1 else 's'} no training example{hint}; "
                    "give labels 0..K-1 with every class in y_train")
  class_names = None
  if "class_names" in arrays:
    class_names = [str(n) for n in arrays["class_names"].reshape(-1)]
    if len(class_names) != num_classes:
      raise UserError(f"--dataset_file: {path}: {len(class_names)} class_names but the labels "
                      f"give {num_classes} classes (max label + 1)")
  raw = RawDataset(images["train"], labels["train"], images["test"], labels["test"], num_classes,
                   class_names=class_names)
  if all(has_probe):
    raw.x_probe, raw.y_probe = images["probe"], labels["probe"]
  return raw


def _custom_images(x: np.ndarray, key: str, path: str) -> np.ndarray:
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4 or min(x.shape[1:]) < 1:
    raise UserError(f"--dataset_file: {path}: {key} has shape {x.shape}; expected images "
                    "[N, H, W] or [N, H, W, C]")
  if x.dtype == np.uint8:
    return x
  if np.issubdtype(x.dtype, np.floating):
    finite = np.isfinite(x)
    if not finite.all() or x.min() < 0.0 or x.max() > 1.0:
      found = (f"{int(np.sum(~finite))} NaN/inf values" if not finite.all()
               else f"min {x.min():g}, max {x.max():g}")
      raise UserError(f"--dataset_file: {path}: {key} is {x.dtype} with values outside [0, 1] "
                      f"({found}); give uint8 0..255 or floats in [0, 1]")
    return np.round(x.astype(np.float64) * 255.0).astype(np.uint8)
  raise UserError(f"--dataset_file: {path}: {key} has dtype {x.dtype}; give uint8 0..255 or "
                  "floats in [0, 1] (e.g. x.astype(np.uint8))")


MAX_CLASSES = 100_000  # ImageNet-21k has 21,841; a larger index is a mistake, not a class


def _custom_labels(y: np.ndarray, key: str, path: str) -> np.ndarray:
  if y.ndim == 2 and y.shape[1] == 1:   # Keras style [N, 1]
    y = y[:, 0]
  if y.ndim != 1:
    raise UserError(f"--dataset_file: {path}: {key} has shape {y.shape}; expected labels [N] "
                    "(class indices, not one-hot)")
  if np.issubdtype(y.dtype, np.integer):
    pass
  elif np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
    pass
  else:
    raise UserError(f"--dataset_file: {path}: {key} must hold integer class indices, got "
                    f"{y.dtype}" + (" with non-integer values" if y.dtype.kind == "f" else ""))
  if y.size == 0:
    raise UserError(f"--dataset_file: {path}: {key} is empty; give at least one label per class")
  if y.min() < 0:
    raise UserError(f"--dataset_file: {path}: {key} has negative labels (min {y.min()}); "
                    "labels are class indices 0..K-1")
  if y.max() >= MAX_CLASSES:   # checked before anything is sized by K = max + 1
    largest = f"{y.max():.0f}" if y.max() < 1e18 else f"{y.max():g}"
    raise UserError(f"--dataset_file: {path}: {key} has label {largest}, out of range: class indices "
                    f"must lie in [0, {MAX_CLASSES - 1}] (number the classes 0..K-1)")
  return y.astype(np.int64)
