"""uint8 images [N, H, W, C] kept in a file on disk, for image sets larger than memory.

`DiskImages` stands where an in-memory image array stands in a dataset. Selecting rows with an
index array (a split, a fold, the probe holdout) gives another `DiskImages` over the same file and
copies nothing; a slice or a single row reads those rows into memory. The pipelines read batches
with `read(rows)`; `np.asarray` reads every row (meant for small selections such as a probe set).
The file is raw row-major uint8, mapped read-only, so the operating system keeps in memory only
the pages recently read.
"""
from __future__ import annotations

import os

import numpy as np


class DiskImages:
  """Rows `rows` of the uint8 images [total, H, W, C] stored in `path`."""

  dtype = np.dtype(np.uint8)
  ndim = 4

  def __init__(self, path: str, image_shape: tuple[int, int, int], total: int,
               rows: np.ndarray | None = None):
    self.path = os.fspath(path)
    self.image_shape = tuple(int(s) for s in image_shape)
    self.total = int(total)
    self.rows = np.arange(self.total, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
    self._mapped = None

  @property
  def shape(self) -> tuple[int, int, int, int]:
    return (len(self.rows), *self.image_shape)

  @property
  def nbytes(self) -> int:
    return len(self.rows) * int(np.prod(self.image_shape))

  def __len__(self) -> int:
    return len(self.rows)

  def _file(self) -> np.memmap:
    if self._mapped is None:
      self._mapped = np.memmap(self.path, dtype=np.uint8, mode="r", shape=(self.total, *self.image_shape))
    return self._mapped

  def __getstate__(self):   # a mapping does not pickle; the file and the rows do
    return {**self.__dict__, "_mapped": None}

  def read(self, positions) -> np.ndarray:
    """The images at `positions` (indices into this selection), as a new in-memory array."""
    return np.asarray(self._file()[self.rows[np.asarray(positions, np.int64)]])

  def __getitem__(self, key):
    if isinstance(key, (int, np.integer)):
      return np.asarray(self._file()[self.rows[key]])
    if isinstance(key, slice):
      return self.read(np.arange(len(self.rows))[key])
    key = np.asarray(key)
    if key.dtype == bool:
      key = np.flatnonzero(key)
    return DiskImages(self.path, self.image_shape, self.total, self.rows[key])

  def __array__(self, dtype=None, copy=None):
    del copy
    images = self.read(np.arange(len(self.rows)))
    return images if dtype is None else images.astype(dtype)

  def __repr__(self) -> str:
    return f"DiskImages({self.path!r}, shape={self.shape})"


def is_on_disk(images) -> bool:
  return isinstance(images, DiskImages)
