"""The tf.data training and test pipelines: order, augmentation, probe batches, determinism, resume."""
import numpy as np
import pytest
import tensorflow as tf

from datasets.pipelines import images as pipeline

N, H, W = 40, 6, 5


@pytest.fixture(scope="module")
def toy():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(N, H, W, 3), dtype=np.uint8)
  labels = np.arange(N) % 4
  return images, labels


def take(dataset, n):
  return [{k: v.numpy() for k, v in b.items()} for b in dataset.take(n)]


def test_each_pass_visits_every_example_once(toy):
  images, labels = toy
  ds = pipeline.train_dataset(images, labels, batch_size=8, seed=3, weak_augmentation="none")
  batches = take(ds, 10)  # 80 examples = exactly two passes
  first, second = np.concatenate([b["index"] for b in batches[:5]]), np.concatenate([b["index"] for b in batches[5:]])
  assert sorted(first) == list(range(N)) and sorted(second) == list(range(N))
  assert not np.array_equal(first, second), "each pass must be a fresh permutation"
  for b in batches:
    np.testing.assert_array_equal(b["label"], labels[b["index"]])
    np.testing.assert_allclose(b["image"], images[b["index"]] / 127.5 - 1.0, atol=1e-6)


def test_same_seed_same_stream_other_seed_other_stream(toy):
  images, labels = toy
  a = take(pipeline.train_dataset(images, labels, batch_size=8, seed=1), 3)
  b = take(pipeline.train_dataset(images, labels, batch_size=8, seed=1), 3)
  c = take(pipeline.train_dataset(images, labels, batch_size=8, seed=2), 3)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["image"], y["image"])
  assert not all(np.array_equal(x["index"], z["index"]) for x, z in zip(a, c))


def test_resumed_stream_equals_uninterrupted_stream(toy):
  images, labels = toy
  full = take(pipeline.train_dataset(images, labels, batch_size=8, seed=5), 9)
  resumed = take(pipeline.train_dataset(images, labels, batch_size=8, seed=5, start_step=6), 3)
  for x, y in zip(full[6:], resumed):
    np.testing.assert_array_equal(x["index"], y["index"])
    np.testing.assert_array_equal(x["image"], y["image"])


def crop_flip_reference(image, dy, dx, flip, pad):
  padded = np.pad(image, [(pad, pad), (pad, pad), (0, 0)])
  out = padded[dy:dy + image.shape[0], dx:dx + image.shape[1]]
  return out[:, ::-1] if flip else out


def test_crop_flip_is_a_shifted_window_of_the_zero_padded_image(toy):
  images, _ = toy
  out = pipeline.crop_flip(tf.constant(images), tf.constant([7, 9], tf.int64), pad=2).numpy()
  seen_flip = set()
  for image, result in zip(images, out):
    matches = [(dy, dx, f) for dy in range(5) for dx in range(5) for f in (False, True)
               if np.array_equal(crop_flip_reference(image, dy, dx, f, 2), result)]
    assert matches, "every output must be one crop (and maybe flip) of the padded input"
    seen_flip.update(f for _, _, f in matches)
  assert seen_flip == {False, True}


def test_crop_flip_eager_and_in_tf_data_agree(toy):
  images, _ = toy
  seed = tf.constant([1, 2], tf.int64)
  eager = pipeline.crop_flip(tf.constant(images), seed).numpy()
  ds = tf.data.Dataset.from_tensors(images).map(lambda x: pipeline.crop_flip(x, seed))
  np.testing.assert_array_equal(eager, next(iter(ds)).numpy())


def test_probe_batches_follow_the_fixed_order_and_wrap_around(toy):
  images, labels = toy
  probe_images, probe_labels = images[:6], np.array([0, 1, 2, 0, 1, 2])
  ds = pipeline.train_dataset(images, labels, batch_size=4, seed=0, weak_augmentation="none",
                              probe_images=probe_images, probe_labels=probe_labels, probe_batch_size=4)
  batches = take(ds, 3)
  expected_index = (np.arange(12) % 6).reshape(3, 4)
  for b, idx in zip(batches, expected_index):
    np.testing.assert_array_equal(b["probe_label"], probe_labels[idx])
    np.testing.assert_allclose(b["probe_image"], probe_images[idx] / 127.5 - 1.0, atol=1e-6)


def test_eval_dataset_keeps_order_and_the_last_partial_batch(toy):
  images, labels = toy
  batches = take(pipeline.eval_dataset(images[:10], labels[:10], batch_size=4), 10)
  assert [len(b["label"]) for b in batches] == [4, 4, 2]
  np.testing.assert_array_equal(np.concatenate([b["label"] for b in batches]), labels[:10])


def test_too_small_training_set_is_a_clear_error(toy):
  from core.errors import UserError
  images, labels = toy
  with pytest.raises(UserError, match="batch_size"):
    pipeline.train_dataset(images[:3], labels[:3], batch_size=8, seed=0)
