"""tf.data for streamed image-file datasets (WebVision, Clothing1M): decode each image when needed.

Train batches carry the in-memory pipeline's keys: `image` (the weak view, float32 [-1, 1],
size x size x 3), `label` (noisy), `index` (row in the training list), and on request
`image_strong` (IEG's ImageNet strong view) and `probe_image` / `probe_label` (the probe set cycled
in its fixed order). Every random draw is a stateless function of (seed, stream, example position)
and the example order of each pass is keyed by (seed, pass), so a resumed run sees the same
batches without an iterator checkpoint.

Train views, by name: 'inception_crop' is IEG's WebVision view (random resized crop + flip);
'resize_crop' is SLN's and ABSGD's Clothing1M view (shorter side to 256/224 of the output size,
random square crop, flip). Evaluation uses the centre crop of the ImageNet views.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from core.errors import UserError
from datasets.augment import policy as augment_policy
from datasets.augment import strong_view
from datasets.pipelines import images as pipeline
from datasets.sources.image_files import ImageFiles

AUTOTUNE = tf.data.AUTOTUNE
_UNBOUNDED = 2**62
# Random streams of the run seed; 1-4 mean what they mean in the in-memory pipeline.
_ORDER, _WEAK, _STRONG, _PROBE, _BALANCE, _ORDERED_PASS = 1, 2, 3, 4, 5, 6
RESIZE_CROP_RATIO = 256 / 224   # torchvision Resize(256) then RandomCrop(224)
_CROP, _FLIP = 1, 2


def decode(encoded: tf.Tensor) -> tf.Tensor:
  """JPEG / PNG / BMP / GIF bytes -> uint8 [H, W, 3] (grayscale and RGBA become RGB)."""
  image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
  image.set_shape([None, None, 3])
  return image


def resize_crop_view(image_uint8: tf.Tensor, seed: tf.Tensor, size: int = 224) -> tf.Tensor:
  """Shorter side to round(size * 256/224), random size x size crop, random flip; float32 [-1, 1]."""
  seed = augment_policy.as_seed(seed)
  hw = tf.cast(tf.shape(image_uint8)[:2], tf.float32)
  side = float(round(size * RESIZE_CROP_RATIO))
  new_hw = tf.maximum(tf.cast(tf.round(hw * side / tf.reduce_min(hw)), tf.int32), int(side))
  resized = tf.image.resize(image_uint8, new_hw, method="bilinear")
  crop = tf.image.stateless_random_crop(resized, [size, size, 3], augment_policy.sub_seed(seed, _CROP))
  crop = tf.image.stateless_random_flip_left_right(crop, augment_policy.sub_seed(seed, _FLIP))
  return tf.clip_by_value(crop, 0.0, 255.0) / 127.5 - 1.0


TRAIN_VIEWS = {"inception_crop": strong_view.imagenet_weak_view, "resize_crop": resize_crop_view}


def read_record_images(files: ImageFiles) -> np.ndarray:
  """Every record's encoded image, in order (object array of bytes); for small splits only."""
  spec = {files.image_key: tf.io.FixedLenFeature([], tf.string)}
  blobs = []
  for batch in tf.data.TFRecordDataset(list(files.record_files)).batch(256):
    blobs += list(tf.io.parse_example(batch, spec)[files.image_key].numpy())
  return np.asarray(blobs, dtype=object)


def _encoded_reader(files: ImageFiles):
  """index -> encoded image bytes: a file read, or a lookup in the records held in memory."""
  if files.is_records:
    blobs = tf.constant(read_record_images(files).tolist(), tf.string)
    return lambda index: tf.gather(blobs, index)
  paths = tf.constant(files.paths.tolist(), tf.string)
  return lambda index: tf.io.read_file(tf.gather(paths, index))


def balanced_order(labels: np.ndarray, examples_per_class: int, seed: int,
                   start_position: int = 0) -> tf.data.Dataset:
  """Indices of endless passes; each pass takes min(n_c, examples_per_class) random examples of
  every class c (a fresh draw per pass, as SLN's per-epoch re-sampling) in a random order."""
  labels = np.asarray(labels, np.int64)
  num_classes = int(labels.max()) + 1
  counts = np.bincount(labels, minlength=num_classes)
  quota = np.minimum(counts, examples_per_class)
  pass_length = int(quota.sum())
  class_start = tf.constant(np.concatenate([[0], np.cumsum(counts)[:-1]]), tf.int64)
  quota_t = tf.constant(quota, tf.int64)
  labels_t = tf.constant(labels)
  n = len(labels)

  def one_pass(epoch):
    keys = tf.random.stateless_uniform([2, n], pipeline.stream_seed(seed, _BALANCE, epoch),
                                       dtype=tf.float64)
    # Sorting by label + a uniform key in [0, 1) shuffles within each class, classes in order.
    by_class = tf.argsort(tf.cast(labels_t, tf.float64) * 2.0 + keys[0])
    sorted_labels = tf.gather(labels_t, by_class)
    rank = tf.range(n, dtype=tf.int64) - tf.gather(class_start, sorted_labels)
    chosen = tf.boolean_mask(by_class, rank < tf.gather(quota_t, sorted_labels))
    mixed = tf.gather(chosen, tf.argsort(keys[1][:pass_length]))
    return tf.data.Dataset.from_tensor_slices(tf.cast(mixed, tf.int64))

  start_epoch, offset = divmod(start_position, pass_length)
  return tf.data.Dataset.range(start_epoch, _UNBOUNDED).flat_map(one_pass).skip(offset)


def train_dataset(files: ImageFiles, labels: np.ndarray, *, batch_size: int, seed: int,
                  start_step: int = 0, image_size: int = 224, view: str = "inception_crop",
                  strong: bool = False, probe: ImageFiles | None = None,
                  probe_batch_size: int | None = None,
                  examples_per_class_per_epoch: int | None = None) -> tf.data.Dataset:
  """Endless global batches of decoded, augmented images (see the module docstring)."""
  if view not in TRAIN_VIEWS:
    raise UserError(f"image view {view!r} is not known: choose one of {', '.join(TRAIN_VIEWS)}")
  if len(labels) < batch_size:
    raise UserError(f"the training set has {len(labels)} examples, fewer than one global batch of "
                    f"{batch_size}: lower --batch_size")
  weak_view = TRAIN_VIEWS[view]
  read = _encoded_reader(files)
  all_labels = tf.constant(np.asarray(labels).astype(np.int32))
  start = start_step * batch_size
  if examples_per_class_per_epoch:
    order = balanced_order(labels, examples_per_class_per_epoch, seed, start)
  else:
    order = pipeline.example_order(len(labels), seed, start)

  def load(position, index):
    image = decode(read(index))
    example = {"image": weak_view(image, pipeline.stream_seed(seed, _WEAK, position), image_size),
               "label": tf.gather(all_labels, index), "index": index}
    if strong:
      example["image_strong"] = strong_view.imagenet_strong_view(
          image, pipeline.stream_seed(seed, _STRONG, position), image_size)
    return example

  positions = tf.data.Dataset.range(start, _UNBOUNDED)
  dataset = (tf.data.Dataset.zip(positions, order)
             .map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
             .batch(batch_size, drop_remainder=True))
  if probe is not None and len(probe) > 0:
    probe_batch_size = probe_batch_size or batch_size
    read_probe = _encoded_reader(probe)
    probe_labels = tf.constant(probe.labels.astype(np.int32))
    num_probe = len(probe)

    def load_probe(position):
      index = position % num_probe
      image = decode(read_probe(index))
      return {"probe_image": weak_view(image, pipeline.stream_seed(seed, _PROBE, position), image_size),
              "probe_label": tf.gather(probe_labels, index)}

    probes = (tf.data.Dataset.range(start_step * probe_batch_size, _UNBOUNDED)
              .map(load_probe, num_parallel_calls=AUTOTUNE, deterministic=True)
              .batch(probe_batch_size, drop_remainder=True))
    dataset = tf.data.Dataset.zip(dataset, probes).map(lambda batch, more: {**batch, **more})
  return dataset.prefetch(AUTOTUNE)


def _encoded_in_order(files: ImageFiles) -> tf.data.Dataset:
  """(encoded image, label) of every example, in order, streamed."""
  if files.is_records:
    spec = {files.image_key: tf.io.FixedLenFeature([], tf.string),
            files.label_key: tf.io.FixedLenFeature([], tf.int64)}

    def parse(record):
      example = tf.io.parse_single_example(record, spec)
      return example[files.image_key], example[files.label_key]

    return tf.data.TFRecordDataset(list(files.record_files)).map(parse, num_parallel_calls=AUTOTUNE)
  return tf.data.Dataset.from_tensor_slices((files.paths, files.labels)).map(
      lambda path, label: (tf.io.read_file(path), label), num_parallel_calls=AUTOTUNE)


def eval_dataset(files: ImageFiles, *, batch_size: int, image_size: int = 224) -> tf.data.Dataset:
  """Batches of centre-cropped images in order (the last one may be smaller)."""
  def view(encoded, label):
    return {"image": strong_view.imagenet_eval_view(decode(encoded), image_size),
            "label": tf.cast(label, tf.int32)}

  return (_encoded_in_order(files).map(view, num_parallel_calls=AUTOTUNE, deterministic=True)
          .batch(batch_size).prefetch(AUTOTUNE))


def ordered_train_dataset(files: ImageFiles, *, batch_size: int, seed: int, pass_number: int,
                          image_size: int = 224, view: str = "inception_crop") -> tf.data.Dataset:
  """One pass over the training images in index order with weak views keyed by (seed, pass):
  `image`, `index` (for methods that score every training example, e.g. label correction)."""
  weak_view = TRAIN_VIEWS[view]
  base = pipeline.stream_seed(seed, _ORDERED_PASS, pass_number)

  def load(index, encoded_and_label):
    encoded, _ = encoded_and_label
    key = tf.random.experimental.stateless_fold_in(base, index)
    return {"image": weak_view(decode(encoded), key, image_size), "index": index}

  indexed = tf.data.Dataset.zip(tf.data.Dataset.range(len(files)), _encoded_in_order(files))
  return (indexed.map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
          .batch(batch_size).prefetch(AUTOTUNE))
