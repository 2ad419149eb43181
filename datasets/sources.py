"""Dataset sources: a registry of loaders that turn a dataset name into numpy arrays.

Each loader is `loader(data_dir, dataset_file) -> RawDataset` with clean (or, for 'custom', as
given) labels in the source's original order. The standard datasets are looked for, in order:

1. the official archives in `<data_dir>/<name>/`, checked against their published checksums
   (no network);
2. TFDS data already prepared in `data_dir` (no network);
3. a TFDS download, only when the machine is online (offline, TFDS would retry for minutes);

and otherwise one UserError says which files to put where. Note that TFDS stores its own example
order, so `train_ids` refer to the TFDS order when the data came from TFDS.

Registering a source (`@register_source('name')`) also makes 'name' a valid `--dataset` name.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import threading
from typing import Callable

import numpy as np

from datasets import archives
from datasets import sources_meta
from core.errors import UserError


@dataclasses.dataclass
class RawDataset:
  x_train: np.ndarray   # uint8 [N, H, W, C] (C=1 for grayscale; always 4-D)
  y_train: np.ndarray   # int64 [N], clean (or as given) labels
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  x_probe: np.ndarray | None = None   # only a 'custom' file may bring a clean probe set
  y_probe: np.ndarray | None = None
  class_names: list[str] | None = None
  # Real (human or web) noisy training labels, when the source brings them next to the clean
  # ones (CIFAR-N); None for sources whose noise is synthetic.
  y_train_noisy: np.ndarray | None = None
  # Text sources: the token of every id. The x arrays then hold int32 token ids [N, L].
  vocabulary: list[str] | None = None


Loader = Callable[[str | None, str | None], RawDataset]
_SOURCES: dict[str, Loader] = {}

# What a source's loader returns: in-memory images (RawDataset), in-memory token ids
# (RawDataset with a vocabulary), or image files streamed from disk
# (`datasets.image_files.FileSource`, loaded with `load_file_source`).
KIND_IMAGES, KIND_TEXT, KIND_IMAGE_FILES = "images", "text", "image_files"
SOURCE_KINDS = (KIND_IMAGES, KIND_TEXT, KIND_IMAGE_FILES)
_KINDS: dict[str, str] = {}
# Sources whose labels already carry real noise: they take no synthetic noise model.
_REAL_NOISE: set[str] = set()


def register_source(name: str, *, kind: str = KIND_IMAGES, real_noise: bool = False):
  """Decorator: registers `loader(data_dir, dataset_file) -> RawDataset` under `name`.

  `kind=KIND_IMAGE_FILES` loaders are `loader(data_dir, **options) -> FileSource` instead.
  `real_noise=True` marks labels that are noisy as given (web or human labels).
  """
  if not name or not name.replace("_", "").isalnum() or name != name.lower():
    raise ValueError(f"bad source name {name!r}: use lower-case letters, digits and '_'")
  if kind not in SOURCE_KINDS:
    raise ValueError(f"bad source kind {kind!r}: one of {SOURCE_KINDS}")

  def decorator(loader: Loader) -> Loader:
    if name in _SOURCES:
      raise ValueError(f"source {name!r} is already registered")
    _SOURCES[name] = loader
    _KINDS[name] = kind
    if real_noise:
      _REAL_NOISE.add(name)
    return loader

  return decorator


def source_kind(name: str) -> str:
  """KIND_IMAGES, KIND_TEXT or KIND_IMAGE_FILES for a registered source."""
  return _KINDS.get(name, KIND_IMAGES)


def has_real_noise(name: str) -> bool:
  """True when the source's training labels are already noisy (no synthetic noise on top)."""
  return name in _REAL_NOISE


def load_file_source(name: str, data_dir: str | os.PathLike | None, **options):
  """Loads a KIND_IMAGE_FILES source: file lists and labels, no pixels yet."""
  if source_kind(name) != KIND_IMAGE_FILES:
    raise ValueError(f"source {name!r} is not a streamed image-file source")
  return _SOURCES[name](os.fspath(data_dir) if data_dir is not None else None, **options)


def source_names() -> list[str]:
  """Registered source names, in registration order."""
  return list(_SOURCES)


def load_raw(name: str, data_dir: str | os.PathLike | None,
             dataset_file: str | os.PathLike | None = None) -> RawDataset:
  if name not in _SOURCES:
    raise UserError(
        f"--dataset: unknown dataset name {name!r}; valid names: {', '.join(source_names())}")
  data_dir = os.fspath(data_dir) if data_dir is not None else None
  dataset_file = os.fspath(dataset_file) if dataset_file is not None else None
  if source_kind(name) == KIND_IMAGE_FILES:
    raise ValueError(f"source {name!r} streams image files: use load_file_source")
  raw = _SOURCES[name](data_dir, dataset_file)
  check_raw(raw, name)
  return raw


def check_raw(raw: RawDataset, where: str) -> None:
  """Checks the RawDataset contract (dtypes, ranks, lengths, label range); UserError if broken."""
  splits = [("train", raw.x_train, raw.y_train), ("test", raw.x_test, raw.y_test)]
  if (raw.x_probe is None) != (raw.y_probe is None):
    raise UserError(f"{where}: x_probe and y_probe must be given together")
  if raw.x_probe is not None:
    splits.append(("probe", raw.x_probe, raw.y_probe))
  k = raw.num_classes
  if not isinstance(k, (int, np.integer)) or k < 2:
    raise UserError(f"{where}: needs at least 2 classes, got num_classes={k!r}")
  shape = None
  for split, x, y in splits:
    if raw.vocabulary is not None:
      _check_token_ids(x, f"x_{split}", len(raw.vocabulary), where)
    elif not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4:
      raise UserError(f"{where}: x_{split} must be a uint8 array [N, H, W, C], got "
                      f"{getattr(x, 'dtype', type(x))} {getattr(x, 'shape', '')}")
    if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.ndim != 1:
      raise UserError(f"{where}: y_{split} must be an int64 array [N], got "
                      f"{getattr(y, 'dtype', type(y))} {getattr(y, 'shape', '')}")
    if len(x) != len(y):
      raise UserError(f"{where}: {len(x)} images but {len(y)} labels in the {split} split")
    if shape is None:
      shape = x.shape[1:]
    elif x.shape[1:] != shape:
      raise UserError(f"{where}: {split} images are {x.shape[1:]} but train images are {shape}")
    if len(y) and (y.min() < 0 or y.max() >= k):
      raise UserError(f"{where}: {split} labels must be in [0, {k}), found "
                      f"{int(y.min())}..{int(y.max())}")
  if raw.class_names is not None and len(raw.class_names) != k:
    raise UserError(f"{where}: {len(raw.class_names)} class names for {k} classes")
  noisy = raw.y_train_noisy
  if noisy is not None:
    if not isinstance(noisy, np.ndarray) or noisy.dtype != np.int64 or noisy.shape != raw.y_train.shape:
      raise UserError(f"{where}: y_train_noisy must be an int64 array like y_train "
                      f"{raw.y_train.shape}, got {getattr(noisy, 'dtype', type(noisy))} "
                      f"{getattr(noisy, 'shape', '')}")
    if len(noisy) and (noisy.min() < 0 or noisy.max() >= k):
      raise UserError(f"{where}: noisy training labels must be in [0, {k}), found "
                      f"{int(noisy.min())}..{int(noisy.max())}")


def _check_token_ids(x, key: str, vocabulary_size: int, where: str) -> None:
  if not isinstance(x, np.ndarray) or x.dtype != np.int32 or x.ndim != 2:
    raise UserError(f"{where}: {key} must be an int32 array of token ids [N, L], got "
                    f"{getattr(x, 'dtype', type(x))} {getattr(x, 'shape', '')}")
  if x.size and (x.min() < 0 or x.max() >= vocabulary_size):
    raise UserError(f"{where}: {key} token ids must be in [0, {vocabulary_size}), found "
                    f"{int(x.min())}..{int(x.max())}")


def _raw(x_train, y_train, x_test, y_test, num_classes, class_names=None) -> RawDataset:
  def images(x):
    x = np.asarray(x, dtype=np.uint8)
    return x[..., None] if x.ndim == 3 else x

  return RawDataset(
      x_train=images(x_train), y_train=np.asarray(y_train, dtype=np.int64).reshape(-1),
      x_test=images(x_test), y_test=np.asarray(y_test, dtype=np.int64).reshape(-1),
      num_classes=num_classes, class_names=list(class_names) if class_names else None)


# ---------------------------------------------------------------------------------------------
# Standard datasets: local official archives, then TFDS.

@dataclasses.dataclass(frozen=True)
class _LocalCandidate:
  files: tuple[str, ...]
  read: Callable[[str, str], tuple]   # (folder, dataset) -> (x_train, y_train, x_test, y_test)
  note: str = ""                      # appended to checksum errors


def _read_keras_npz(folder, dataset):
  d = archives.read_npz_arrays(os.path.join(folder, archives.KERAS_MNIST_NPZ), dataset,
                               ("x_train", "y_train", "x_test", "y_test"))
  return d["x_train"], d["y_train"], d["x_test"], d["y_test"]


def _read_cifar(tar_name):
  return lambda folder, dataset: archives.read_cifar_tar(os.path.join(folder, tar_name), dataset)


@dataclasses.dataclass(frozen=True)
class _Standard:
  num_classes: int
  class_names: list[str]
  local: tuple[_LocalCandidate, ...]   # tried in this order; the first complete one is used
  tfds_name: str


_IDX = _LocalCandidate(archives.MNIST_IDX_FILES, archives.read_mnist_idx)
_STANDARD: dict[str, _Standard] = {
    "cifar10": _Standard(10, sources_meta.CIFAR10_CLASS_NAMES,
                         (_LocalCandidate((archives.CIFAR10_TAR,),
                                          _read_cifar(archives.CIFAR10_TAR)),),
                         "cifar10"),
    "cifar100": _Standard(100, sources_meta.CIFAR100_FINE_NAMES,
                          (_LocalCandidate((archives.CIFAR100_TAR,),
                                           _read_cifar(archives.CIFAR100_TAR)),),
                          "cifar100"),
    "mnist": _Standard(10, sources_meta.MNIST_CLASS_NAMES,
                       (_IDX, _LocalCandidate(
                           (archives.KERAS_MNIST_NPZ,), _read_keras_npz,
                           " (Only Keras' own mnist.npz is accepted; or put the 4 idx .gz files "
                           f"{', '.join(archives.MNIST_IDX_FILES)} next to it: they are "
                           "preferred.)")),
                       "mnist"),
    "fashion_mnist": _Standard(10, sources_meta.FASHION_MNIST_CLASS_NAMES, (_IDX,),
                               "fashion_mnist"),
}

# The host TFDS downloads its data from (and the online check connects to).
TFDS_STORAGE_HOST = ("storage.googleapis.com", 443)
ONLINE_CHECK_TIMEOUT_S = 2.0


def is_online(timeout: float = ONLINE_CHECK_TIMEOUT_S) -> bool:
  """True when a TCP connection to the TFDS storage host succeeds within `timeout` seconds.

  Name resolution ignores socket timeouts, so the whole check runs in a daemon thread.
  """
  result = []

  def probe():
    try:
      with socket.create_connection(TFDS_STORAGE_HOST, timeout=timeout):
        result.append(True)
    except OSError:
      pass

  thread = threading.Thread(target=probe, daemon=True)
  thread.start()
  thread.join(timeout)
  return bool(result)


def _tfds_to_numpy(name: str, data_dir: str | None, download: bool):
  """tfds.load both splits and converts them to numpy; (arrays, class names)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (slow: TF)

  splits, info = tfds.load(name, data_dir=data_dir, split=["train", "test"], download=download,
                           with_info=True, shuffle_files=False)
  out = []
  for ds in splits:
    # Finite batches: batch_size=-1 crashes on tfds.testing.mock_data datasets.
    images, labels = [], []
    for batch in tfds.as_numpy(ds.batch(4096)):
      images.append(batch["image"])
      labels.append(batch["label"])
    out += [np.concatenate(images), np.concatenate(labels)]
  names = None
  try:
    names = list(info.features["label"].names)
  except Exception:  # pylint: disable=broad-except  (names are optional)
    pass
  return out, names


def _tfds_where(data_dir):
  return data_dir or os.path.join("~", "tensorflow_datasets")


def _load_standard(name: str, data_dir: str | None) -> RawDataset:
  std = _STANDARD[name]
  tried = []
  folder = os.path.join(data_dir, name) if data_dir else None
  if folder is None:
    tried.append("local archives: skipped, no data directory given (--data_dir)")
  else:
    for cand in std.local:
      paths = [os.path.join(folder, f) for f in cand.files]
      missing = [os.path.basename(p) for p in paths if not os.path.isfile(p)]
      if missing:
        tried.append(f"{folder}/: {', '.join(missing)} not found")
        continue
      for p in paths:
        archives.verify_checksum(p, name, cand.note)
      x_train, y_train, x_test, y_test = cand.read(folder, name)
      return _raw(x_train, y_train, x_test, y_test, std.num_classes, std.class_names)

  def from_tfds(download):
    (x_train, y_train, x_test, y_test), names = _tfds_to_numpy(std.tfds_name, data_dir, download)
    if names is None or len(names) != std.num_classes:
      names = std.class_names
    return _raw(x_train, y_train, x_test, y_test, std.num_classes, names)

  try:
    with _quiet_absl():   # "Variant folder ... has no dataset_info.json" when nothing is there
      return from_tfds(download=False)
  except Exception as e:  # pylint: disable=broad-except  (not prepared, or tfds missing)
    detail = ("not prepared there" if "could not find data" in str(e)
              else f"{type(e).__name__}: {_first_line(e)}")
    tried.append(f"TFDS prepared data in {_tfds_where(data_dir)}: {detail}")
  if is_online():
    try:
      return from_tfds(download=True)
    except Exception as e:  # pylint: disable=broad-except
      tried.append(f"TFDS download: failed ({type(e).__name__}: {_first_line(e)})")
  else:
    tried.append(f"TFDS download: skipped, the machine is offline ({TFDS_STORAGE_HOST[0]} "
                 f"not reachable within {ONLINE_CHECK_TIMEOUT_S:g} s)")

  options = " or ".join(_files_with_source(name, cand.files) for cand in std.local)
  where = folder or os.path.join("<data_dir>", name)
  raise UserError(
      f"--dataset: no data found for {name!r}. Put {options} into {where}/"
      + ("" if folder else " and pass --data_dir")
      + ", or run once online so TFDS can download it. Tried: " + "; ".join(tried) + ".")


def _files_with_source(name: str, files) -> str:
  urls = [archives.DOWNLOAD_FROM.get(name, {}).get(f, "") for f in files]
  if len(files) > 1 and all(urls):
    base = os.path.commonprefix(urls)
    base = base[:base.rfind("/") + 1]
    return f"the {len(files)} files {', '.join(files)} (from {base})"
  return ", ".join(f"{f} (from {u})" if u else f for f, u in zip(files, urls))


@contextlib.contextmanager
def _quiet_absl():
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)


def _first_line(e: Exception) -> str:
  text = str(e).strip()
  return text.splitlines()[0][:300] if text else ""


for _name in _STANDARD:
  register_source(_name)(lambda data_dir, dataset_file, _n=_name: _load_standard(_n, data_dir))


# ---------------------------------------------------------------------------------------------
# scikit-learn digits (bundled, no download).

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
  return _raw(images[train], labels[train], images[test], labels[test], 10,
              sources_meta.DIGITS_CLASS_NAMES)


# ---------------------------------------------------------------------------------------------
# cifar10_subset: real CIFAR-10 pixels (first 4000 train / 1000 test), one verified npz.

@register_source("cifar10_subset")
def _load_cifar10_subset(data_dir, dataset_file) -> RawDataset:
  del dataset_file
  name, fname = "cifar10_subset", archives.CIFAR10_SUBSET_NPZ
  folder = os.path.join(data_dir or "<data_dir>", name)
  where = os.path.join(folder, fname)
  if not data_dir or not os.path.isfile(where):
    raise UserError(
        f"--dataset: {where} not found. Put {fname} (from "
        f"{archives.DOWNLOAD_FROM[name][fname]}) into {folder}/"
        + ("" if data_dir else " and pass that <data_dir> (--data_dir)") + ".")
  archives.verify_checksum(where, name)
  d = archives.read_npz_arrays(where, name, ("x_train", "y_train", "x_test", "y_test"))
  return _raw(d["x_train"], d["y_train"], d["x_test"], d["y_test"], 10,
              sources_meta.CIFAR10_CLASS_NAMES)


# ---------------------------------------------------------------------------------------------
# custom: the user's own .npz.

CUSTOM_REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
CUSTOM_PROBE_KEYS = ("x_probe", "y_probe")


@register_source("custom")
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
                        f"({type(e).__name__}: {_first_line(e)}); save plain numeric arrays") from e

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
  if y.min() < 0:
    raise UserError(f"--dataset_file: {path}: {key} has negative labels (min {y.min()}); "
                    "labels are class indices 0..K-1")
  return y.astype(np.int64)


# Sources defined in their own modules register themselves on import (they import this module).
from datasets import sources_cifar_n  # noqa: E402,F401  pylint: disable=wrong-import-position
from datasets import sources_clothing1m  # noqa: E402,F401  pylint: disable=wrong-import-position
from datasets import sources_trec  # noqa: E402,F401  pylint: disable=wrong-import-position
from datasets import sources_webvision  # noqa: E402,F401  pylint: disable=wrong-import-position
