"""tf.data for in-memory images: training batches (optionally with strong views and probe batches), test batches.

Every random draw is a stateless function of (seed, step): the example order of each pass over the
data, the weak augmentation and the strong view. A run resumed at step s therefore sees exactly the
batches an uninterrupted run would, without checkpointing an iterator.

Images stay uint8 until the end, where they are mapped to [-1, 1] as the original code does.
"""
import numpy as np
import tensorflow as tf

from core import disk_images
from core.errors import UserError
from datasets import sources
from datasets.sources import registry as source_registry

AUTOTUNE = tf.data.AUTOTUNE
_UNBOUNDED = 2**62

# Independent random streams derived from the one run seed.
_ORDER, _WEAK, _STRONG, _PROBE = 1, 2, 3, 4


def to_unit_range(images: tf.Tensor) -> tf.Tensor:
  """uint8 [0, 255] -> float32 [-1, 1]: (x / 255 - 0.5) * 2, as IEG's `cifar_process`."""
  return tf.cast(images, tf.float32) / 127.5 - 1.0


def stream_seed(seed: int, stream: int, counter) -> tf.Tensor:
  """A stateless-op seed for `stream` at position `counter` (a step or an epoch)."""
  base = tf.constant([seed, stream], tf.int64)
  return tf.random.experimental.stateless_fold_in(base, tf.cast(counter, tf.int64))


def crop_flip(images: tf.Tensor, seed: tf.Tensor, pad: int = 2, flip: bool = True) -> tf.Tensor:
  """IEG's weak view: zero-pad by `pad`, random crop back to the input size, random horizontal flip.

  Vectorised over the batch: one offset pair and one coin per image, from `seed`.
  """
  batch, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
  padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
  seeds = tf.random.experimental.stateless_split(seed, 3)
  dy = tf.random.stateless_uniform([batch], seeds[0], 0, 2 * pad + 1, tf.int32)
  dx = tf.random.stateless_uniform([batch], seeds[1], 0, 2 * pad + 1, tf.int32)
  rows = dy[:, None] + tf.range(height)[None, :]
  cols = dx[:, None] + tf.range(width)[None, :]
  out = tf.gather(padded, rows, axis=1, batch_dims=1)
  out = tf.gather(out, cols, axis=2, batch_dims=1)
  if flip:
    coin = tf.random.stateless_uniform([batch], seeds[2]) < 0.5
    out = tf.where(coin[:, None, None, None], tf.reverse(out, axis=[2]), out)
  return out


def no_augmentation(images: tf.Tensor, seed: tf.Tensor, pad: int = 0, flip: bool = False) -> tf.Tensor:
  del seed, pad, flip
  return images


WEAK_AUGMENTATIONS = {"crop_flip": crop_flip, "none": no_augmentation}


def example_order(num_examples: int, seed: int, start_position: int = 0) -> tf.data.Dataset:
  """Indices of an endless sequence of passes, each a fresh permutation keyed by (seed, pass)."""
  start_epoch, offset = divmod(start_position, num_examples)

  def permutation(epoch):
    keys = tf.random.stateless_uniform([num_examples], stream_seed(seed, _ORDER, epoch))
    return tf.data.Dataset.from_tensor_slices(tf.argsort(keys))

  return (tf.data.Dataset.range(start_epoch, _UNBOUNDED)
          .flat_map(permutation)
          .skip(offset))


def train_dataset(images: np.ndarray, labels: np.ndarray, *, batch_size: int, seed: int, start_step: int = 0,
                  weak_augmentation: str = "crop_flip", pad: int = 2, flip: bool = True,
                  strong_aug_type: str | None = None, cutout_size: int = 16,
                  probe_images: np.ndarray | None = None, probe_labels: np.ndarray | None = None,
                  probe_batch_size: int | None = None) -> tf.data.Dataset:
  """Endless global batches of dicts: `image` float [-1,1], `label` (noisy), `index` (row in `images`).

  With `strong_aug_type`, `image_strong` is the strong view made from the same weakly augmented
  pixels. With probe arrays, `probe_image`/`probe_label` hold the next `probe_batch_size` probe
  examples in their fixed class-interleaved order (IEG never shuffles the probe set).
  """
  if weak_augmentation not in WEAK_AUGMENTATIONS:
    raise UserError(f"weak augmentation {weak_augmentation!r} is not known: choose one of {', '.join(WEAK_AUGMENTATIONS)}")
  if len(images) < batch_size:
    raise UserError(f"the training set has {len(images)} examples, fewer than one global batch of {batch_size}: "
                    "lower --batch_size")
  weak = WEAK_AUGMENTATIONS[weak_augmentation]
  read_images = row_reader(images)
  all_labels = tf.constant(labels.astype(np.int32))
  with_probe = probe_images is not None and len(probe_images) > 0
  if with_probe:
    probe_batch_size = probe_batch_size or batch_size
    read_probe_images = row_reader(probe_images)
    all_probe_labels = tf.constant(probe_labels.astype(np.int32))
    num_probe = len(probe_images)
  if strong_aug_type is not None:
    from datasets.augment.strong_view import strong_view  # pylint: disable=g-import-not-at-top

  def make_batch(step, index):
    weak_images = weak(read_images(index), stream_seed(seed, _WEAK, step), pad=pad, flip=flip)
    batch = {"image": to_unit_range(weak_images), "label": tf.gather(all_labels, index), "index": index}
    if strong_aug_type is not None:
      batch["image_strong"] = strong_view(weak_images, stream_seed(seed, _STRONG, step), strong_aug_type,
                                          flip=flip, cutout_size=cutout_size)
    if with_probe:
      position = step * probe_batch_size + tf.range(probe_batch_size, dtype=tf.int64)
      probe_index = position % num_probe
      probe_weak = weak(read_probe_images(probe_index), stream_seed(seed, _PROBE, step), pad=pad, flip=flip)
      batch["probe_image"] = to_unit_range(probe_weak)
      batch["probe_label"] = tf.gather(all_probe_labels, probe_index)
    return batch

  order = example_order(len(images), seed, start_step * batch_size).batch(batch_size, drop_remainder=True)
  steps = tf.data.Dataset.range(start_step, _UNBOUNDED)
  dataset = tf.data.Dataset.zip(steps, order).map(make_batch, num_parallel_calls=AUTOTUNE, deterministic=True)
  return dataset.prefetch(AUTOTUNE)


def eval_dataset(images: np.ndarray, labels: np.ndarray, *, batch_size: int) -> tf.data.Dataset:
  """Test batches in order (the last one may be smaller), normalised like the training images."""
  dataset = ordered_batches(images, {"label": labels.astype(np.int32)}, batch_size=batch_size)
  return dataset.map(lambda b: {**b, "image": to_unit_range(b["image"])}, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def row_reader(images):
  """A function rows (int64 [B]) -> uint8 images [B, H, W, C]: a gather from the array in memory,
  or a read from the file when the images are on disk (`core.disk_images`)."""
  if not disk_images.is_on_disk(images):
    constant = tf.constant(images)
    return lambda rows: tf.gather(constant, rows)
  image_shape = images.image_shape

  def read(rows):
    out = tf.numpy_function(images.read, [rows], tf.uint8, stateful=False)
    return tf.ensure_shape(out, rows.shape.concatenate(image_shape))
  return read


def ordered_batches(images, columns: dict[str, np.ndarray], *, batch_size: int) -> tf.data.Dataset:
  """Batches of rows 0..N-1 in order (the last one may be smaller): `image` (uint8) and each of
  `columns` (arrays of N rows). Images on disk are read a batch at a time."""
  if not disk_images.is_on_disk(images):
    return tf.data.Dataset.from_tensor_slices({"image": images, **columns}).batch(batch_size)
  read = row_reader(images)
  tensors = {name: tf.constant(column) for name, column in columns.items()}
  count = len(images)

  def batch(start):
    rows = tf.range(start, tf.minimum(start + batch_size, count))
    return {"image": read(rows), **{name: tf.gather(t, rows) for name, t in tensors.items()}}

  return tf.data.Dataset.range(0, count, batch_size).map(batch, num_parallel_calls=AUTOTUNE, deterministic=True)


def augmentation_for(dataset_name: str, image_shape: tuple[int, int, int]) -> dict:
  """Per-dataset augmentation defaults.

  CIFAR-like colour images (CIFAR, and the user's own or tfds:<name> colour images) get IEG's weak view (pad 2, crop, flip). Digit and clothing images get
  none, as the SIGUA/co-teaching MNIST protocol uses, and are never flipped (a flipped digit is
  another glyph). The strong view's cutout covers half the image side (16 px on 32 px images).
  """
  colour = image_shape[-1] == 3
  own = sources.labels_as_given(dataset_name) or source_registry.split_family(dataset_name) is not None
  if dataset_name.startswith("cifar") or (own and colour):
    return {"weak_augmentation": "crop_flip", "pad": 2, "flip": True, "cutout_size": image_shape[0] // 2}
  return {"weak_augmentation": "none", "pad": 0, "flip": False, "cutout_size": image_shape[0] // 2}


def replica_slices(dataset: tf.data.Dataset, *, num_replicas: int, first_replica: int,
                   local_replicas: int) -> tf.data.Dataset:
  """Global batches -> this worker's per-replica batches, in replica order.

  Every worker builds the same global batches (they depend on (seed, step) only) and keeps the
  slices of its own replicas: global replica r of R gets rows [r * n / R, (r + 1) * n / R) of
  every tensor of n rows, the split a one-process MirroredStrategy makes. The slices of one global
  batch come out as `local_replicas` consecutive elements, which `tf.distribute` hands to the
  worker's local replicas in turn.
  """
  def own_slices(batch):
    def split(tensor):
      rows = tf.shape(tensor)[0]
      tf.debugging.assert_equal(rows % num_replicas, 0, message="a global batch does not split evenly across replicas")
      per_replica = rows // num_replicas
      start = first_replica * per_replica
      mine = tensor[start:start + local_replicas * per_replica]
      return tf.reshape(mine, tf.concat([[local_replicas, per_replica], tf.shape(tensor)[1:]], axis=0))
    return tf.nest.map_structure(split, batch)

  return dataset.map(own_slices, num_parallel_calls=AUTOTUNE, deterministic=True).unbatch()
