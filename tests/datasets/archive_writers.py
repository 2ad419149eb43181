"""Tiny archives in the official CIFAR python layout, written by the tests that read them back."""
import hashlib
import io
import pickle
import tarfile

import numpy as np


def md5(path) -> str:
  with open(path, "rb") as f:
    return hashlib.md5(f.read()).hexdigest()


def cifar_images(n: int, seed: int) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def chw_rows(images_hwc: np.ndarray) -> np.ndarray:
  """The official row layout: the red plane, then green, then blue, each row-major."""
  return images_hwc.transpose(0, 3, 1, 2).reshape(len(images_hwc), -1)


def write_pickle_tar(path, members) -> None:
  """A .tar.gz of (member name, object) pairs, each pickled with protocol 2 as the official files."""
  with tarfile.open(path, "w:gz") as tar:
    for name, obj in members:
      data = pickle.dumps(obj, protocol=2)
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
