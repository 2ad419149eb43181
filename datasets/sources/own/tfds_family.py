"""tfds:<name>: a TFDS image classification dataset already prepared in --data_dir.

`--dataset=tfds:<name>` reads the builder's train and test splits (no test split: --test_fraction
of train) with the image and label features its `supervised_keys` name. Nothing is ever
downloaded: a dataset that is not prepared locally is one error that says how to prepare it.
Images go through the same channel and --image_size rules as image files.
"""
from __future__ import annotations

import os

import numpy as np

from core.errors import UserError
from datasets.sources.own import decode
from datasets.sources.own.labelled_files import split_test
from datasets.sources.registry import RawDataset, SourceOptions, first_line, register_family

PREFIX = "tfds"
BATCH = 4096


def load_tfds(member: str, data_dir: str | None, dataset_file: str | None,
              options: SourceOptions) -> RawDataset:
  del dataset_file
  where = f"--dataset={PREFIX}:{member}"
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (slow)
  try:
    builder = tfds.builder(member, data_dir=data_dir)
  except Exception as e:  # pylint: disable=broad-except  (DatasetNotFoundError and friends)
    raise UserError(f"{where}: TFDS has no dataset {member!r} ({type(e).__name__}: "
                    f"{first_line(e)})") from e
  keys = builder.info.supervised_keys
  if not (isinstance(keys, tuple) and len(keys) == 2 and all(isinstance(k, str) for k in keys)):
    raise UserError(f"{where}: the dataset has no (image, label) supervised_keys ({keys!r}); "
                    "only image classification datasets can be read")
  image_key, label_key = keys
  label_feature = builder.info.features[label_key]
  splits = split_names(builder)
  x_train, y_train = _read_split(builder, "train", keys, data_dir, where)
  if splits is None or "test" in splits:
    x_test, y_test = _read_split(builder, "test", keys, data_dir, where)
  else:   # no test split: hold out --test_fraction of train
    test, train = split_test(y_train, options.test_fraction, options.seed)
    x_test, y_test = [x_train[i] for i in test], y_train[test]
    x_train, y_train = [x_train[i] for i in train], y_train[train]
  names = [f"{image_key} {i} of {split}" for split, xs in (("train", x_train), ("test", x_test))
           for i in range(len(xs))]
  images = decode.common_shape(list(x_train) + list(x_test), names,
                               image_size=options.image_size, where=where)
  num_classes = getattr(label_feature, "num_classes", None) or int(max(y_train.max(), y_test.max())) + 1
  class_names = list(getattr(label_feature, "names", None) or []) or None
  if class_names == [str(i) for i in range(num_classes)]:
    class_names = None
  return RawDataset(x_train=images[:len(x_train)], y_train=y_train, x_test=images[len(x_train):],
                    y_test=y_test, num_classes=int(num_classes), class_names=class_names)


register_family(PREFIX, load_tfds)


def split_names(builder) -> list[str] | None:
  """The builder's split names; None when its metadata does not list them (mocked data)."""
  return list(builder.info.splits) or None


def _read_split(builder, split: str, keys: tuple[str, str], data_dir: str | None,
                where: str) -> tuple[list[np.ndarray], np.ndarray]:
  """The split's images (uint8 [H, W, C] each) and int64 labels, read from the prepared files."""
  image_key, label_key = keys
  try:
    dataset = builder.as_dataset(split=split, shuffle_files=False)
  except Exception as e:  # pylint: disable=broad-except
    if "could not find data" in str(e).lower() or not builder.is_prepared():
      where_data = data_dir or os.path.join("~", "tensorflow_datasets")
      raise UserError(f"{where}: not prepared in {where_data} (nothing is downloaded here): prepare "
                      f"it once online, e.g. `tfds build {builder.name} --data_dir={where_data}`, "
                      "and pass that --data_dir") from e
    raise UserError(f"{where}: cannot read the {split} split ({type(e).__name__}: "
                    f"{first_line(e)})") from e
  fixed = builder.info.features[image_key].shape
  fixed = fixed is not None and all(d is not None for d in fixed)
  dataset = dataset.map(lambda ex: (ex[image_key], ex[label_key]))
  images, labels = [], []
  for x, y in (dataset.batch(BATCH) if fixed else dataset).as_numpy_iterator():
    if x.dtype != np.uint8:
      raise UserError(f"{where}: feature {image_key!r} holds {x.dtype}, not uint8 images")
    images.extend(list(x) if fixed else [x])
    labels.append(np.reshape(y, -1))
  if not images:
    raise UserError(f"{where}: the {split} split is empty")
  return images, np.concatenate(labels).astype(np.int64)
