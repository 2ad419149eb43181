"""Readers for the official dataset archives, each checked against its published checksum first.

No network: these functions only read files the user put into `<data_dir>/<name>/`.
`CHECKSUMS` is the one table of expected digests (tests monkeypatch it for tiny archives they
write).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import zlib

import numpy as np

from core.errors import UserError

MNIST_IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
KERAS_MNIST_NPZ = "mnist.npz"
CIFAR10_TAR = "cifar-10-python.tar.gz"
CIFAR100_TAR = "cifar-100-python.tar.gz"
CIFAR10_SUBSET_NPZ = "cifar10_subset.npz"

# dataset folder -> file name -> (hash algorithm, published hex digest).
CHECKSUMS: dict[str, dict[str, tuple[str, str]]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": ("md5", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        "train-labels-idx1-ubyte.gz": ("md5", "d53e105ee54ea40749a09fcbcd1e9432"),
        "t10k-images-idx3-ubyte.gz": ("md5", "9fb629c4189551a2d022fa330f9573f3"),
        "t10k-labels-idx1-ubyte.gz": ("md5", "ec29112dd5afa0611ce80d1b7f02629c"),
        # Keras' published file_hash for its mnist.npz.
        KERAS_MNIST_NPZ: (
            "sha256", "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"),
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": ("md5", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        "train-labels-idx1-ubyte.gz": ("md5", "25c81989df183df01b3e8a0aad5dffbe"),
        "t10k-images-idx3-ubyte.gz": ("md5", "bef4ecab320f06d8554ea6380940ec79"),
        "t10k-labels-idx1-ubyte.gz": ("md5", "bb300cfdad3c16e7a12a480ee83cd310"),
    },
    "cifar10": {CIFAR10_TAR: ("md5", "c58f30108f718f92721af3b95e74349a")},
    "cifar100": {CIFAR100_TAR: ("md5", "eb9058c3a382ffc7106e4002c42a8d85")},
    "cifar10_subset": {
        CIFAR10_SUBSET_NPZ: (
            "sha256", "4bf2989f6499b8cd5d99be513bec5130c4444bbe36331ba15a1776bc20cda4c1"),
    },
}

# Where each file can be downloaded again (shown in error messages only; nothing is fetched here).
DOWNLOAD_FROM: dict[str, dict[str, str]] = {
    "mnist": {
        **{f: "https://storage.googleapis.com/cvdf-datasets/mnist/" + f for f in MNIST_IDX_FILES},
        KERAS_MNIST_NPZ: "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
    },
    "fashion_mnist": {
        f: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/" + f
        for f in MNIST_IDX_FILES
    },
    "cifar10": {CIFAR10_TAR: "https://www.cs.toronto.edu/~kriz/" + CIFAR10_TAR},
    "cifar100": {CIFAR100_TAR: "https://www.cs.toronto.edu/~kriz/" + CIFAR100_TAR},
    "cifar10_subset": {
        CIFAR10_SUBSET_NPZ: "the project's shared data folder (shared/data/cifar10_subset/)",
    },
}


def download_hint(dataset: str, filename: str) -> str:
  where = DOWNLOAD_FROM.get(dataset, {}).get(filename)
  return f"from {where}" if where else "from the official source"


def file_digest(path: str | os.PathLike, algorithm: str) -> str:
  h = hashlib.new(algorithm)
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def verify_checksum(path: str | os.PathLike, dataset: str, extra_hint: str = "") -> None:
  """Raises UserError unless `path` has the published digest for (`dataset`, its file name)."""
  name = os.path.basename(path)
  algorithm, expected = CHECKSUMS[dataset][name]
  actual = file_digest(path, algorithm)
  if actual != expected.lower():
    raise UserError(
        f"{path}: {algorithm} checksum mismatch (got {actual}, the published {name} has "
        f"{expected}). The file is damaged, truncated or not the official one: delete it and "
        f"download it again {download_hint(dataset, name)}.{extra_hint}")


def corrupt_archive_error(path, dataset: str, detail: str) -> UserError:
  name = os.path.basename(path)
  return UserError(
      f"{path}: cannot read the archive ({detail}). It is truncated or corrupt: delete it and "
      f"download it again {download_hint(dataset, name)}.")


# ---------------------------------------------------------------------------------------------
# MNIST-style idx files.

def read_idx_gz(path, dataset: str) -> np.ndarray:
  """Reads a gzip'ed idx file of unsigned bytes (MNIST, Fashion-MNIST) into an array."""
  try:
    with gzip.open(path, "rb") as f:
      data = f.read()
  except (OSError, EOFError, zlib.error) as e:
    raise corrupt_archive_error(path, dataset, f"{type(e).__name__}: {e}") from e
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
    raise corrupt_archive_error(path, dataset, "not an idx file of unsigned bytes")
  ndim = data[3]
  header = 4 + 4 * ndim
  if len(data) < header:
    raise corrupt_archive_error(path, dataset, "idx header cut short")
  dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
  if len(data) - header != int(np.prod(dims)):
    raise corrupt_archive_error(
        path, dataset, f"idx body has {len(data) - header} bytes, header says {dims}")
  return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def read_mnist_idx(folder, dataset: str):
  """Returns (x_train, y_train, x_test, y_test) from the 4 idx .gz files in `folder`."""
  arrays = [read_idx_gz(os.path.join(folder, f), dataset) for f in MNIST_IDX_FILES]
  x_train, y_train, x_test, y_test = arrays
  if (x_train.ndim != 3 or x_test.ndim != 3 or y_train.ndim != 1 or y_test.ndim != 1
      or len(x_train) != len(y_train) or len(x_test) != len(y_test)):
    raise UserError(
        f"{folder}: the idx files do not fit together (images {x_train.shape}/{x_test.shape}, "
        f"labels {y_train.shape}/{y_test.shape}); download them again "
        f"{download_hint(dataset, MNIST_IDX_FILES[0])}.")
  return x_train, y_train, x_test, y_test


def read_npz_arrays(path, dataset: str, keys) -> dict[str, np.ndarray]:
  """Reads `keys` from an npz (no pickles); a broken or incomplete file is a UserError."""
  try:
    with np.load(path, allow_pickle=False) as f:
      missing = [k for k in keys if k not in f.files]
      if missing:
        raise corrupt_archive_error(path, dataset, f"missing arrays {missing}")
      return {k: np.asarray(f[k]) for k in keys}
  except UserError:
    raise
  except Exception as e:  # zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error...
    raise corrupt_archive_error(path, dataset, f"{type(e).__name__}: {e}") from e


# ---------------------------------------------------------------------------------------------
# CIFAR python archives (pickled batches inside a .tar.gz).

_NUMPY_RECONSTRUCT = np.zeros(1).__reduce__()[0]
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _NUMPY_RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _NUMPY_RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): __import__("codecs").encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
  """Only plain containers and numpy arrays: a batch file can never run code on load."""

  def find_class(self, module, name):
    try:
      return _PICKLE_GLOBALS[(module, name)]
    except KeyError:
      raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR batch") from None


def _unpickle(data: bytes) -> dict:
  # latin1: the official batches are Python 2 pickles; their byte strings become str keys.
  obj = _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
  if not isinstance(obj, dict):
    raise pickle.UnpicklingError("a batch is not a dict")
  return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _batch_arrays(batch: dict, label_key: str, member: str):
  data = np.asarray(batch["data"], dtype=np.uint8)
  labels = np.asarray(batch[label_key], dtype=np.int64).reshape(-1)
  if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
    raise ValueError(f"{member}: data {data.shape}, labels {labels.shape}")
  # Each row is 1024 red, 1024 green, 1024 blue values, each plane row-major 32x32 -> HWC.
  images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), labels


def read_cifar_tar(path, dataset: str):
  """Returns (x_train, y_train, x_test, y_test) from cifar-10/100-python.tar.gz, official order."""
  if dataset == "cifar10":
    prefix, label_key = "cifar-10-batches-py/", "labels"
    train_members = [f"{prefix}data_batch_{i}" for i in range(1, 6)]
    test_members = [f"{prefix}test_batch"]
  elif dataset == "cifar100":
    prefix, label_key = "cifar-100-python/", "fine_labels"
    train_members, test_members = [f"{prefix}train"], [f"{prefix}test"]
  else:
    raise ValueError(dataset)
  wanted = set(train_members + test_members)
  found: dict[str, bytes] = {}
  try:
    # One sequential pass: seeking backwards in a gzip stream would decompress it again.
    with tarfile.open(path, "r:gz") as tar:
      for member in tar:
        if member.name in wanted and member.isfile():
          found[member.name] = tar.extractfile(member).read()
    missing = sorted(wanted - set(found))
    if missing:
      raise ValueError(f"members {missing} not found")
    parts = [_batch_arrays(_unpickle(found[m]), label_key, m) for m in train_members]
    test = [_batch_arrays(_unpickle(found[m]), label_key, m) for m in test_members]
  except (tarfile.TarError, OSError, EOFError, zlib.error, pickle.UnpicklingError, KeyError,
          ValueError, TypeError, AttributeError, IndexError) as e:
    raise corrupt_archive_error(path, dataset, f"{type(e).__name__}: {e}") from e
  x_train = np.concatenate([p[0] for p in parts])
  y_train = np.concatenate([p[1] for p in parts])
  x_test = np.concatenate([p[0] for p in test])
  y_test = np.concatenate([p[1] for p in test])
  return x_train, y_train, x_test, y_test
