"""Image datasets too large for memory, described by their files: paths or TFRecords, and labels.

A streamed source (`register_source(..., kind=KIND_IMAGE_FILES)`) returns a `FileSource`: for
every split an `ImageFiles` that lists the encoded images (one file per example, or the records
of TFRecord files) with their labels. Nothing is decoded here; `datasets.pipelines.files` reads
and decodes each image when a batch needs it. The readers below cover the layouts the loaders accept:
`path label` list files, key lists with a key -> label table, class folders and TFRecords.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from core.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# How many listed files are checked for existence up front (all of them would take minutes on 1M).
EXISTENCE_SAMPLE = 16


@dataclasses.dataclass(frozen=True)
class ImageFiles:
  """One split: N encoded images on disk and their labels."""
  labels: np.ndarray                    # int64 [N]
  paths: np.ndarray | None = None       # object [N] of str: one encoded image file (JPEG, PNG, ...) each
  record_files: tuple[str, ...] = ()    # or: TFRecord files of tf.train.Example, read in order
  image_key: str = "image/encoded"      # record features holding the encoded image and the label
  label_key: str = "image/label"

  def __post_init__(self):
    if (self.paths is None) == (not self.record_files):
      raise ValueError("give either paths or record_files")
    if self.paths is not None and len(self.paths) != len(self.labels):
      raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")

  def __len__(self) -> int:
    return len(self.labels)

  @property
  def is_records(self) -> bool:
    return self.paths is None

  def subset(self, indices: np.ndarray) -> "ImageFiles":
    """The examples at `indices` (file splits only: records have no random access)."""
    if self.is_records:
      raise ValueError("a TFRecord split cannot be subset")
    return ImageFiles(labels=self.labels[indices], paths=self.paths[indices])


@dataclasses.dataclass(frozen=True)
class FileSource:
  """What a streamed source's loader returns."""
  train: ImageFiles                      # labels as given (noisy)
  test: ImageFiles                       # clean labels
  num_classes: int
  class_names: list[str] | None = None
  val: ImageFiles | None = None          # a clean validation split, when the data has one
  probe: ImageFiles | None = None        # a clean probe set shipped with the data
  clean_train: ImageFiles | None = None  # clean-labelled training images a probe can be drawn from
  probe_hint: str = ""                   # where a missing probe set would go (for the error)
  image_size: int = 224                  # side of the square network input
  train_view: str = "inception_crop"     # name in pipeline_files.TRAIN_VIEWS
  examples_per_class_per_epoch: int | None = None   # class-balanced re-sampling of every epoch


def check_labels(labels: np.ndarray, num_classes: int, where: str) -> np.ndarray:
  labels = np.asarray(labels, np.int64).reshape(-1)
  if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
    raise UserError(f"{where}: labels must be in [0, {num_classes}), found "
                    f"{int(labels.min())}..{int(labels.max())}")
  return labels


def check_some_exist(paths: np.ndarray, where: str, hint: str) -> None:
  """UserError when any of a few evenly spaced listed files is missing (a wrong root, usually)."""
  if len(paths) == 0:
    raise UserError(f"{where}: lists no images. {hint}")
  picks = np.unique(np.linspace(0, len(paths) - 1, min(EXISTENCE_SAMPLE, len(paths))).astype(int))
  missing = [str(paths[i]) for i in picks if not os.path.isfile(paths[i])]
  if missing:
    raise UserError(f"{where}: listed images are missing, e.g. {missing[0]} ({len(missing)} of "
                    f"{len(picks)} checked). {hint}")


def read_path_label_list(path: str, root: str) -> tuple[np.ndarray, np.ndarray]:
  """A `relative/path.jpg label` list (whitespace separated) -> (absolute paths, int64 labels)."""
  paths, labels = [], []
  with open(path, encoding="utf-8") as f:
    for line_number, line in enumerate(f, start=1):
      parts = line.split()
      if not parts:
        continue
      if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
        raise UserError(f"{path}:{line_number}: expected '<image path> <label>', found {line.strip()!r}")
      paths.append(os.path.join(root, parts[0]))
      labels.append(int(parts[1]))
  return np.asarray(paths, dtype=object), np.asarray(labels, np.int64)


def read_key_list(path: str) -> list[str]:
  """One image key (a relative path) per line."""
  with open(path, encoding="utf-8") as f:
    return [line.split()[0] for line in f if line.strip()]


def read_key_label_table(path: str) -> dict[str, int]:
  """`key label` lines -> {key: label}."""
  keys, labels = read_path_label_list(path, "")
  return dict(zip(keys.tolist(), labels.tolist()))


def class_folder_images(folder: str, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
  """Images of `folder/<class>/...` for the given class folders; label = position in `classes`.

  Files are sorted by name inside each class, so the order never depends on the file system.
  """
  paths, labels = [], []
  for label, name in enumerate(classes):
    class_dir = os.path.join(folder, name)
    files = sorted(f for f in os.listdir(class_dir) if f.lower().endswith(IMAGE_EXTENSIONS))
    paths += [os.path.join(class_dir, f) for f in files]
    labels += [label] * len(files)
  return np.asarray(paths, dtype=object), np.asarray(labels, np.int64)


def sorted_subfolders(folder: str) -> list[str]:
  """Names of the sub-folders of `folder`, sorted; [] when `folder` does not exist."""
  if not os.path.isdir(folder):
    return []
  return sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))


def read_record_labels(record_files: tuple[str, ...], label_key: str, where: str) -> np.ndarray:
  """The label of every record, in file order (one pass; images are not decoded)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (slow: TF)

  spec = {label_key: tf.io.FixedLenFeature([], tf.int64)}
  labels = []
  try:
    for batch in tf.data.TFRecordDataset(list(record_files)).batch(1024):
      labels.append(tf.io.parse_example(batch, spec)[label_key].numpy())
  except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
    raise UserError(f"{where}: not a readable TFRecord file of tf.train.Examples with an int64 "
                    f"{label_key!r} ({type(e).__name__}: {e.message.splitlines()[0][:200]})") from e
  return np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64)
