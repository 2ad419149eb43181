"""TextCNN: pinned parameter count (computed by hand), forward pass, padding handling, dense
embedding gradients, and a short TREC run through the experiment (text pipeline dispatch)."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import networks
from core.errors import UserError
from datasets import text as text_lib
from ieg import experiment
from ieg.config import RunConfig
from networks import textcnn

V, K, L = 50, 6, 300


def hand_count(vocabulary_size, num_classes):
  embedding = vocabulary_size * 300
  convs = sum(width * 300 * 100 + 100 for width in (3, 4, 5))   # kernel + bias per width
  fc1 = 300 * 300 + 300
  logits = 300 * num_classes + num_classes
  return embedding + convs + fc1 + logits


def questions(rng, batch, vocabulary_size=V):
  """Token ids padded to L: random lengths 1..40, ids never PAD inside a question."""
  ids = np.zeros((batch, L), np.int32)
  for row in range(batch):
    n = rng.integers(1, 41)
    ids[row, :n] = rng.integers(1, vocabulary_size, n)
  return ids


@pytest.fixture(scope="module")
def model():
  keras.utils.set_random_seed(0)
  return networks.build_network("textcnn", K, (L,), vocabulary_size=V)


def test_parameter_count_is_pinned_and_matches_the_hand_count(model):
  assert model.count_params() == hand_count(V, K) == 467406
  # The real TREC vocabulary (8679 ids): 8679*300 + 360300 + 90300 + 1806.
  assert hand_count(8679, 6) == 3056106
  assert networks.default_weight_decay("textcnn") == 0.0


def test_forward_pass_shape_and_inference_is_deterministic(model):
  x = questions(np.random.default_rng(1), 5)
  logits = model(x, training=False).numpy()
  assert logits.shape == (5, K) and np.isfinite(logits).all()
  np.testing.assert_array_equal(logits, model(x, training=False).numpy())
  assert not np.array_equal(model(x, training=True).numpy(), logits)   # dropout in training


def test_trimmed_padding_gives_exactly_the_full_length_output(model):
  keras.utils.set_random_seed(0)
  full = networks.build_network("textcnn", K, (L,), vocabulary_size=V, trim_padding=False)
  full.set_weights(model.get_weights())
  x = questions(np.random.default_rng(2), 16)
  x[3] = np.arange(L) % (V - 1) + 1   # one question with no padding at all
  np.testing.assert_array_equal(model(x, training=False).numpy(), full(x, training=False).numpy())


def test_the_padding_vector_is_held_at_zero(model):
  x = questions(np.random.default_rng(3), 4)
  before = model(x, training=False).numpy()
  table = model.get_layer("embedding").embeddings
  saved = table.numpy()
  table.assign(np.concatenate([np.full((1, 300), 7.0, np.float32), saved[1:]]))
  try:
    np.testing.assert_allclose(model(x, training=False).numpy(), before, rtol=1e-6, atol=1e-6)
  finally:
    table.assign(saved)


def test_embedding_gradient_is_dense_and_equals_the_gather_gradient(model):
  x = questions(np.random.default_rng(4), 3)
  layer = model.get_layer("embedding")
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(layer(x) * tf.range(300, dtype=tf.float32))
  dense = tape.gradient(loss, layer.embeddings)
  with tf.GradientTape() as tape:
    reference = tf.reduce_sum(tf.gather(layer.embeddings, x) * tf.range(300, dtype=tf.float32))
  sparse = tape.gradient(reference, layer.embeddings)
  assert isinstance(dense, tf.Tensor) and isinstance(sparse, tf.IndexedSlices)
  np.testing.assert_allclose(dense.numpy(), tf.convert_to_tensor(sparse).numpy(), rtol=1e-6)


def test_networks_and_data_must_fit():
  with pytest.raises(UserError, match="textcnn reads token sequences"):
    networks.build_network("textcnn", K, (32, 32, 3), vocabulary_size=V)
  assert textcnn.TEXT_NETWORKS == ("textcnn",)
  assert text_lib.PAD_ID == 0


@pytest.mark.slow
@pytest.mark.realdata
def test_a_short_trec_run_through_the_experiment(real_data_dir, tmp_path):
  config = RunConfig(dataset="trec_symmetric_0.2", method="supervised", network_name="textcnn",
                     data_dir=str(real_data_dir), batch_size=32, val_batch_size=250, max_iteration=3,
                     eval_freq=3, learning_rate=1e-3, optimizer="adam", lr_schedule="constant",
                     probe_dataset_hold_ratio=0.0, checkpoint_path=str(tmp_path), seed=1, use_ema=False,
                     distribution_strategy="one_device")
  results = experiment.run(config)
  assert results["step"] == 3 and 0.0 <= results["top1"] <= 1.0
  flags = json.load(open(os.path.join(config.run_dir, "flags.json")))
  assert flags["num_train"] == 5452 and flags["num_test"] == 500 and flags["num_classes"] == 6
  with pytest.raises(UserError, match="does not fit"):
    experiment.run(RunConfig(**{**config.__dict__, "network_name": "resnet29", "checkpoint_path": str(tmp_path / "x")}))
