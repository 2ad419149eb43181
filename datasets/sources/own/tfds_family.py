"""tfds:<name>: a TFDS image classification dataset already prepared in --data_dir.

`--dataset=tfds:<name>` reads the builder's train and test splits (no test split: --test_fraction
of train) with the image and label features its `supervised_keys` name. Nothing is ever
downloaded: a dataset that is not prepared locally is one error that says how to prepare it.
Images go through the same channel and --image_size rules as image files, and a set too large
for memory (--image_cache) is read once into a file on disk, as folders are.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

from core.disk_images import DiskImages
from core.errors import UserError
from datasets.sources.own import decode
from datasets.sources.own import disk_cache
from datasets.sources.own import labelled_files
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
  with_test = splits is None or "test" in splits
  read = ["train", "test"] if with_test else ["train"]
  on_disk = labelled_files.use_disk(options, _memory_estimate(builder, read, image_key, options), where)
  x_train, y_train, x_test, y_test = (_splits_on_disk if on_disk else _splits_in_memory)(
      builder, member, read, keys, data_dir, options, where)
  num_classes = getattr(label_feature, "num_classes", None) or int(max(y_train.max(), y_test.max())) + 1
  class_names = list(getattr(label_feature, "names", None) or []) or None
  if class_names == [str(i) for i in range(num_classes)]:
    class_names = None
  return RawDataset(x_train=x_train, y_train=y_train, x_test=x_test,
                    y_test=y_test, num_classes=int(num_classes), class_names=class_names)


register_family(PREFIX, load_tfds)


def split_names(builder) -> list[str] | None:
  """The builder's split names; None when its metadata does not list them (mocked data)."""
  return list(builder.info.splits) or None


def _splits_in_memory(builder, member: str, read: list[str], keys: tuple[str, str], data_dir: str | None,
                      options: SourceOptions, where: str):
  """(x_train, y_train, x_test, y_test) read into memory; without a test split --test_fraction of
  train is held out."""
  del member
  x_train, y_train = _read_split(builder, "train", keys, data_dir, where)
  if "test" in read:
    x_test, y_test = _read_split(builder, "test", keys, data_dir, where)
  else:
    test, train = split_test(y_train, options.test_fraction, options.seed)
    x_test, y_test = [x_train[i] for i in test], y_train[test]
    x_train, y_train = [x_train[i] for i in train], y_train[train]
  names = [f"{keys[0]} {i} of {split}" for split, xs in (("train", x_train), ("test", x_test))
           for i in range(len(xs))]
  images = decode.common_shape(list(x_train) + list(x_test), names, image_size=options.image_size, where=where)
  return images[:len(x_train)], y_train, images[len(x_train):], y_test


def _splits_on_disk(builder, member: str, read: list[str], keys: tuple[str, str], data_dir: str | None,
                    options: SourceOptions, where: str):
  """(x_train, y_train, x_test, y_test) as rows of one file on disk (`_read_to_disk`)."""
  images, labels = _read_to_disk(builder, member, read, keys, data_dir, options, where)
  x_train, y_train = images[np.arange(len(labels["train"]))], labels["train"]
  if "test" in read:
    return x_train, y_train, images[len(y_train) + np.arange(len(labels["test"]))], labels["test"]
  test, train = split_test(y_train, options.test_fraction, options.seed)
  return x_train[train], y_train[train], x_train[test], y_train[test]


def _memory_estimate(builder, read: list[str], image_key: str, options: SourceOptions) -> decode.MemoryEstimate | None:
  """What reading `read` into memory takes (the images at their stored size, then resized), from
  the builder's metadata; None where it does not say (no split sizes, images of varying size)."""
  available = decode.available_memory_bytes()
  shape = builder.info.features[image_key].shape
  try:
    count = sum(int(builder.info.splits[split].num_examples) for split in read)
  except (KeyError, TypeError, ValueError):
    return None
  if available is None or not count or shape is None or any(d is None for d in shape):
    return None
  height, width, channels = (int(d) for d in shape)
  side = options.image_size
  stored = count * height * width * channels                        # the examples as read
  held = count * (side * side if side else height * width) * channels  # at the training size
  return decode.MemoryEstimate(count, height, width, channels, stored + (decode.COPIES - 1) * held, available)


def _examples(builder, split: str, keys: tuple[str, str], data_dir: str | None, where: str):
  """The split's examples as (image uint8 [H, W, C], label), in order, streamed."""
  image_key, label_key = keys
  try:
    dataset = builder.as_dataset(split=split, shuffle_files=False)
  except Exception as e:  # pylint: disable=broad-except
    raise _unreadable(builder, split, data_dir, where, e) from e
  if dataset.element_spec[image_key].dtype.name != "uint8":
    raise UserError(f"{where}: feature {image_key!r} holds {dataset.element_spec[image_key].dtype.name}, "
                    "not uint8 images")
  return dataset.map(lambda ex: (ex[image_key], ex[label_key]))


def _read_to_disk(builder, member: str, read: list[str], keys: tuple[str, str], data_dir: str | None,
                  options: SourceOptions, where: str):
  """Every split of `read` decoded once into one file under --image_cache_dir (train rows first):
  (DiskImages of all rows, {split: int64 labels}). A later run on the same prepared files reads
  the file and its index without reading the dataset."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  base = os.path.join(options.image_cache_dir, _cache_name(builder, member, read, options.image_size))
  index = disk_cache.read_index(base)
  if index is None:
    shapes, labels = [], {}
    for split in read:   # first pass: shapes and labels only
      found = []
      for shape, label in _examples(builder, split, keys, data_dir, where).map(
          lambda image, label: (tf.shape(image), label)).as_numpy_iterator():
        shapes.append(tuple(int(d) for d in shape))
        found.append(int(label))
      if not found:
        raise UserError(f"{where}: the {split} split is empty")
      labels[split] = found
    names = [f"{keys[0]} {i} of {split}" for split in read for i in range(len(labels[split]))]
    target = decode.target_shape(shapes, names, image_size=options.image_size, where=where)
    images = (image for split in read
              for image, _ in _examples(builder, split, keys, data_dir, where).as_numpy_iterator())
    disk_cache.write_images(images, len(shapes), target, base, where, {"labels": labels})
    index = disk_cache.read_index(base)
  labels = {split: np.asarray(index["labels"][split], np.int64) for split in read}
  return DiskImages(base + disk_cache.SUFFIX, index["shape"], index["count"]), labels


def _cache_name(builder, member: str, read: list[str], image_size: int) -> str:
  """Changes with the dataset, its version and prepared files, the splits read and --image_size."""
  digest = hashlib.sha256(f"{member}\0{builder.info.version}\0{read}\0{int(image_size)}\0{builder.data_dir}".encode())
  if os.path.isdir(builder.data_dir):
    for name in sorted(os.listdir(builder.data_dir)):
      stat = os.stat(os.path.join(builder.data_dir, name))
      digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
  return f"tfds_{member.replace('/', '-').replace(':', '-')}_{digest.hexdigest()[:20]}"


def _unreadable(builder, split: str, data_dir: str | None, where: str, e: Exception) -> UserError:
  if "could not find data" in str(e).lower() or not builder.is_prepared():
    where_data = data_dir or os.path.join("~", "tensorflow_datasets")
    return UserError(f"{where}: not prepared in {where_data} (nothing is downloaded here): prepare "
                     f"it once online, e.g. `tfds build {builder.name} --data_dir={where_data}`, "
                     "and pass that --data_dir")
  return UserError(f"{where}: cannot read the {split} split ({type(e).__name__}: {first_line(e)})")


def _read_split(builder, split: str, keys: tuple[str, str], data_dir: str | None,
                where: str) -> tuple[list[np.ndarray], np.ndarray]:
  """The split's images (uint8 [H, W, C] each) and int64 labels, read from the prepared files."""
  image_key, label_key = keys
  try:
    dataset = builder.as_dataset(split=split, shuffle_files=False)
  except Exception as e:  # pylint: disable=broad-except
    raise _unreadable(builder, split, data_dir, where, e) from e
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
