"""Checkpoint round trip of all method state, fallback past a corrupt file, refusal of a foreign one."""
import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from ieg import checkpoints
from ieg import optimizers
from ieg.errors import UserError
from methods.base import TrainingContext
from methods.supervised import Supervised


def make_model(width=3, seed=0):
  keras.utils.set_random_seed(seed)
  inputs = keras.Input((4,))
  hidden = keras.layers.Dropout(0.5)(keras.layers.Dense(width)(inputs))  # dropout brings a seed state
  network = keras.Model(inputs, keras.layers.Dense(2)(hidden))
  model = Supervised(network, TrainingContext(num_classes=2, steps_per_epoch=1, num_train_examples=8, use_ema=True))
  model.compile(optimizer=optimizers.TF1Momentum(0.1))
  model.optimizer.build(model.trainable_variables)
  return model


def train(model, steps):
  rng = np.random.default_rng(steps)
  for _ in range(steps):
    model.train_on_batch({"image": rng.normal(size=(8, 4)).astype("float32"), "label": rng.integers(0, 2, 8)})


def values(model):
  return [v.numpy().copy() for v in model.checkpoint_variables()["model"] + model.checkpoint_variables()["optimizer"]]


def test_restore_brings_back_weights_ema_seed_states_and_optimizer(tmp_path):
  model = make_model()
  train(model, 3)
  store = checkpoints.CheckpointStore(str(tmp_path), model.checkpoint_variables())
  store.save(3)
  saved = values(model)
  train(model, 2)
  assert any(not np.array_equal(a, b) for a, b in zip(saved, values(model)))
  assert store.restore() == 3
  for a, b in zip(saved, values(model)):
    np.testing.assert_array_equal(a, b)
  assert int(model.optimizer.iterations.numpy()) == 3
  assert len(model.ema_weights) == 4 and all(np.array_equal(a, b) for a, b in zip(saved[:4], values(model)[:4]))


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
  model = make_model()
  store = checkpoints.CheckpointStore(str(tmp_path), model.checkpoint_variables())
  train(model, 1)
  store.save(1)
  first = values(model)
  train(model, 1)
  store.save(2)
  for path in glob.glob(os.path.join(tmp_path, "ckpt-2.data-*")):
    with open(path, "r+b") as f:
      f.truncate(10)
  assert store.restore() == 1
  for a, b in zip(first, values(model)):
    np.testing.assert_array_equal(a, b)
  assert "ckpt-2" in caplog.text


def test_checkpoint_of_another_network_is_refused(tmp_path):
  store = checkpoints.CheckpointStore(str(tmp_path), make_model(width=3).checkpoint_variables())
  store.save(1)
  other = checkpoints.CheckpointStore(str(tmp_path), make_model(width=5).checkpoint_variables())
  with pytest.raises(UserError, match="does not fit"):
    other.restore()


def test_missing_and_unknown_steps(tmp_path):
  store = checkpoints.CheckpointStore(str(tmp_path), make_model().checkpoint_variables())
  assert store.restore() is None
  with pytest.raises(UserError, match="no checkpoint found") as error:
    store.restore(require=True)
  assert error.value.exit_code == 1
  store.save(5)
  with pytest.raises(UserError, match="--restore_step=7"):
    store.restore(step=7)
