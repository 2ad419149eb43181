"""The standard datasets: MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100.

They are looked for, in order:

1. the official archives in `<data_dir>/<name>/`, checked against their published checksums
   (no network, `datasets.sources.archives`);
2. TFDS data already prepared in `data_dir` (no network);
3. a TFDS download, only when the machine is online (offline, TFDS would retry for minutes);

and otherwise one UserError says which files to put where. Note that TFDS stores its own example
order, so `train_ids` refer to the TFDS order when the data came from TFDS.
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

from core.errors import UserError
from datasets.sources import archives
from datasets.sources import meta
from datasets.sources.registry import RawDataset, first_line, raw_dataset, register_source


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
    "cifar10": _Standard(10, meta.CIFAR10_CLASS_NAMES,
                         (_LocalCandidate((archives.CIFAR10_TAR,),
                                          _read_cifar(archives.CIFAR10_TAR)),),
                         "cifar10"),
    "cifar100": _Standard(100, meta.CIFAR100_FINE_NAMES,
                          (_LocalCandidate((archives.CIFAR100_TAR,),
                                           _read_cifar(archives.CIFAR100_TAR)),),
                          "cifar100"),
    "mnist": _Standard(10, meta.MNIST_CLASS_NAMES,
                       (_IDX, _LocalCandidate(
                           (archives.KERAS_MNIST_NPZ,), _read_keras_npz,
                           " (Only Keras' own mnist.npz is accepted; or put the 4 idx .gz files "
                           f"{', '.join(archives.MNIST_IDX_FILES)} next to it: they are "
                           "preferred.)")),
                       "mnist"),
    "fashion_mnist": _Standard(10, meta.FASHION_MNIST_CLASS_NAMES, (_IDX,),
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
      return raw_dataset(x_train, y_train, x_test, y_test, std.num_classes, std.class_names)

  def from_tfds(download):
    (x_train, y_train, x_test, y_test), names = _tfds_to_numpy(std.tfds_name, data_dir, download)
    if names is None or len(names) != std.num_classes:
      names = std.class_names
    return raw_dataset(x_train, y_train, x_test, y_test, std.num_classes, names)

  try:
    with quiet_absl():   # "Variant folder ... has no dataset_info.json" when nothing is there
      return from_tfds(download=False)
  except Exception as e:  # pylint: disable=broad-except  (not prepared, or tfds missing)
    detail = ("not prepared there" if "could not find data" in str(e)
              else f"{type(e).__name__}: {first_line(e)}")
    tried.append(f"TFDS prepared data in {_tfds_where(data_dir)}: {detail}")
  if is_online():
    try:
      return from_tfds(download=True)
    except Exception as e:  # pylint: disable=broad-except
      tried.append(f"TFDS download: failed ({type(e).__name__}: {first_line(e)})")
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
def quiet_absl():
  """Silences absl's INFO and WARNING lines (TFDS logs them when nothing is prepared)."""
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)


for _name in _STANDARD:
  register_source(_name)(lambda data_dir, dataset_file, _n=_name: _load_standard(_n, data_dir))
