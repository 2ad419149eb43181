"""tf.data for token-id datasets (TREC): the image pipeline's batches without augmentation.

Batches are dicts like the image pipeline's, so every method reads them the same way: `image`
holds the int32 token ids [B, L] (the network input), `label` the noisy label, `index` the row.
The example order is the image pipeline's stateless order, so a resumed run sees the same batches.
"""
import numpy as np
import tensorflow as tf

from core.errors import UserError
from datasets.pipelines import images as pipeline

_UNBOUNDED = 2**62


def train_dataset(tokens: np.ndarray, labels: np.ndarray, *, batch_size: int, seed: int,
                  start_step: int = 0, probe_tokens: np.ndarray | None = None,
                  probe_labels: np.ndarray | None = None,
                  probe_batch_size: int | None = None) -> tf.data.Dataset:
  """Endless global batches: `image` (token ids), `label`, `index` [+ `probe_image`, `probe_label`].

  The probe set is cycled in its fixed order, as the image pipeline (and IEG) does.
  """
  if len(tokens) < batch_size:
    raise UserError(f"the training set has {len(tokens)} examples, fewer than one global batch of "
                    f"{batch_size}: lower --batch_size")
  all_tokens = tf.constant(tokens.astype(np.int32))
  all_labels = tf.constant(labels.astype(np.int32))
  with_probe = probe_tokens is not None and len(probe_tokens) > 0
  if with_probe:
    probe_batch_size = probe_batch_size or batch_size
    all_probe_tokens = tf.constant(probe_tokens.astype(np.int32))
    all_probe_labels = tf.constant(probe_labels.astype(np.int32))
    num_probe = len(probe_tokens)

  def make_batch(step, index):
    batch = {"image": tf.gather(all_tokens, index), "label": tf.gather(all_labels, index),
             "index": index}
    if with_probe:
      position = step * probe_batch_size + tf.range(probe_batch_size, dtype=tf.int64)
      probe_index = position % num_probe
      batch["probe_image"] = tf.gather(all_probe_tokens, probe_index)
      batch["probe_label"] = tf.gather(all_probe_labels, probe_index)
    return batch

  order = pipeline.example_order(len(tokens), seed, start_step * batch_size)
  steps = tf.data.Dataset.range(start_step, _UNBOUNDED)
  dataset = tf.data.Dataset.zip(steps, order.batch(batch_size, drop_remainder=True))
  return dataset.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True).prefetch(tf.data.AUTOTUNE)


def eval_dataset(tokens: np.ndarray, labels: np.ndarray, *, batch_size: int) -> tf.data.Dataset:
  """Test batches in order (the last one may be smaller)."""
  dataset = tf.data.Dataset.from_tensor_slices(
      {"image": tokens.astype(np.int32), "label": labels.astype(np.int32)})
  return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
