"""The source registry: `RawDataset`, `register_source` and the loaders behind `--dataset` names.

Each loader is `loader(data_dir, dataset_file) -> RawDataset` with clean (or, for the user's own
data, as given) labels in the source's original order; streamed image-file sources return a
`datasets.sources.image_files.FileSource` instead. Registering a source
(`@register_source('name')`) also makes 'name' a valid `--dataset` name. A loader registered with
`takes_options=True` also gets the `SourceOptions` of the run (folder, image size, test fraction).
A family (`register_family('tfds', loader)`) owns every name `tfds:<member>`: the member is handed
to `loader(member, data_dir, dataset_file, options)`.

This module holds only the types and the table; it imports none of the loaders, so every loader
module can import it. `datasets/sources/__init__.py` imports the loaders, which fills the table.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Callable

import numpy as np

from core.errors import UserError
from core.disk_images import DiskImages


@dataclasses.dataclass
class RawDataset:
  x_train: np.ndarray   # uint8 [N, H, W, C] (C=1 for grayscale; always 4-D); DiskImages when on disk
  y_train: np.ndarray   # int64 [N], clean (or as given) labels
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  x_probe: np.ndarray | None = None   # only the user's own data may bring a clean probe set
  y_probe: np.ndarray | None = None
  class_names: list[str] | None = None
  # Real (human or web) noisy training labels, when the source brings them next to the clean
  # ones (CIFAR-N); None for sources whose noise is synthetic.
  y_train_noisy: np.ndarray | None = None
  # Text sources: the token of every id. The x arrays then hold int32 token ids [N, L].
  vocabulary: list[str] | None = None
  # Image files read from disk: the file of every training row, in train order (for reports).
  paths: list[str] | None = None
  # Files of the listing that were skipped as unreadable (--skip_bad_images), for the run directory.
  skipped_paths: list[str] | None = None


@dataclasses.dataclass(frozen=True)
class SourceOptions:
  """Run settings that sources of the user's own images read (RunConfig fields of the same name)."""
  dataset_dir: str | None = None    # folder of class folders (--dataset=folder)
  image_size: int = 0               # resize every image to N x N; 0: keep the common size
  test_fraction: float = 0.2        # share of each class held out as test when no test split exists
  skip_bad_images: bool = False     # skip unreadable images instead of stopping
  seed: int = 0                     # seeds the test_fraction split
  image_cache: str = "auto"         # decoded images in 'memory', on 'disk', or 'auto' (disk when too large)
  image_cache_dir: str | None = None  # where decoded images go on disk


Loader = Callable[[str | None, str | None], RawDataset]
_SOURCES: dict[str, Loader] = {}
_TAKES_OPTIONS: set[str] = set()
# The flag a source cannot do without (RunConfig.validate names it when it is unset).
_REQUIRED_FLAG: dict[str, str] = {}
# Sources whose labels are the user's, as given: with noise 'none' their clean labels are unknown.
_LABELS_AS_GIVEN: set[str] = set()
# name prefix -> loader(member, data_dir, dataset_file, options), for names `<prefix>:<member>`.
_FAMILIES: dict[str, Callable] = {}
FAMILY_SEPARATOR = ":"
# A member as TFDS names one: `name`, `name/config`, `name:1.2.0`, `name/config:1.*.*`.
_MEMBER = re.compile(r"[a-z0-9_]+(/[A-Za-z0-9_.\-]+)?(:[0-9*]+\.[0-9*]+\.[0-9*]+)?")

# What a source's loader returns: in-memory images (RawDataset), in-memory token ids
# (RawDataset with a vocabulary), or image files streamed from disk
# (`datasets.sources.image_files.FileSource`, loaded with `load_file_source`).
KIND_IMAGES, KIND_TEXT, KIND_IMAGE_FILES = "images", "text", "image_files"
SOURCE_KINDS = (KIND_IMAGES, KIND_TEXT, KIND_IMAGE_FILES)
_KINDS: dict[str, str] = {}
# Sources whose labels already carry real noise: they take no synthetic noise model.
_REAL_NOISE: set[str] = set()


def register_source(name: str, *, kind: str = KIND_IMAGES, real_noise: bool = False,
                    takes_options: bool = False, required_flag: str | None = None,
                    labels_as_given: bool = False):
  """Decorator: registers `loader(data_dir, dataset_file) -> RawDataset` under `name`.

  `kind=KIND_IMAGE_FILES` loaders are `loader(data_dir, **options) -> FileSource` instead.
  `real_noise=True` marks labels that are noisy as given (web or human labels).
  `takes_options=True`: the loader is `loader(data_dir, dataset_file, options: SourceOptions)`.
  `required_flag`: the flag (e.g. 'dataset_file') the source needs. `labels_as_given`: the user's
  own labels, whose cleanliness nobody knows.
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
    if takes_options:
      _TAKES_OPTIONS.add(name)
    if required_flag:
      _REQUIRED_FLAG[name] = required_flag
    if labels_as_given:
      _LABELS_AS_GIVEN.add(name)
    return loader

  return decorator


def register_family(prefix: str, loader: Callable) -> None:
  """Registers `loader(member, data_dir, dataset_file, options) -> RawDataset` for `prefix:<member>`."""
  if not prefix.isalnum() or prefix != prefix.lower() or prefix in _FAMILIES:
    raise ValueError(f"bad or repeated source family {prefix!r}")
  _FAMILIES[prefix] = loader


def family_names() -> list[str]:
  """Registered family prefixes, e.g. ['tfds']."""
  return list(_FAMILIES)


def split_family(name: str) -> tuple[str, str] | None:
  """('tfds', 'mnist/config:1.0.0') for 'tfds:mnist/config:1.0.0' when 'tfds' is a family and the
  member a well-formed name (optional /config and :version); else None."""
  prefix, sep, member = name.partition(FAMILY_SEPARATOR)
  if not sep or prefix not in _FAMILIES or not _MEMBER.fullmatch(member):
    return None
  return prefix, member


def is_source_name(name: str) -> bool:
  """True for a registered source name and for a well-formed family name (`tfds:<member>`)."""
  return name in _SOURCES or split_family(name) is not None


def required_flag(name: str) -> str | None:
  """The flag the source cannot do without ('dataset_file', 'dataset_dir'), or None."""
  return _REQUIRED_FLAG.get(name)


def labels_as_given(name: str) -> bool:
  """True for the user's own labels (no clean reference when no synthetic noise is added)."""
  return name in _LABELS_AS_GIVEN


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
             dataset_file: str | os.PathLike | None = None,
             options: SourceOptions | None = None) -> RawDataset:
  if not is_source_name(name):
    raise UserError(
        f"--dataset: unknown dataset name {name!r}; valid names: {', '.join(source_names())}"
        + "".join(f", {prefix}:<name>" for prefix in _FAMILIES))
  data_dir = os.fspath(data_dir) if data_dir is not None else None
  dataset_file = os.fspath(dataset_file) if dataset_file is not None else None
  options = options if options is not None else SourceOptions()
  family = split_family(name)
  if family is not None:
    raw = _FAMILIES[family[0]](family[1], data_dir, dataset_file, options)
  elif source_kind(name) == KIND_IMAGE_FILES:
    raise ValueError(f"source {name!r} streams image files: use load_file_source")
  elif name in _TAKES_OPTIONS:
    raw = _SOURCES[name](data_dir, dataset_file, options)
  else:
    raw = _SOURCES[name](data_dir, dataset_file)
  check_raw(raw, name)
  if raw.paths is not None and len(raw.paths) != len(raw.y_train):
    raise UserError(f"{name}: {len(raw.paths)} paths for {len(raw.y_train)} training images")
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
    elif not isinstance(x, (np.ndarray, DiskImages)) or x.dtype != np.uint8 or x.ndim != 4:
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


def raw_dataset(x_train, y_train, x_test, y_test, num_classes, class_names=None) -> RawDataset:
  """A RawDataset from image and label arrays: uint8 [N, H, W, C] (C=1 added) and int64 [N]."""
  def images(x):
    x = np.asarray(x, dtype=np.uint8)
    return x[..., None] if x.ndim == 3 else x

  return RawDataset(
      x_train=images(x_train), y_train=np.asarray(y_train, dtype=np.int64).reshape(-1),
      x_test=images(x_test), y_test=np.asarray(y_test, dtype=np.int64).reshape(-1),
      num_classes=num_classes, class_names=list(class_names) if class_names else None)


def first_line(e: Exception) -> str:
  """The first line of an exception's message, short enough for a one-line UserError."""
  text = str(e).strip()
  return text.splitlines()[0][:300] if text else ""
