"""Checkpoint round trip of all method state, fallback past a corrupt file, refusal of a foreign one,
a full disk, a damaged checkpoint list and the leftovers of killed writes."""
import glob
import os
import resource
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

from core.errors import UserError
from ieg import optimizers
from ieg.run import checkpoints
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


def listed(directory) -> list[int]:
  state = tf.train.get_checkpoint_state(str(directory))
  return [int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths] if state else []


def test_full_disk_while_saving_keeps_the_previous_checkpoint(tmp_path):
  """A real failing write: the file-size limit makes every write past 4 kB fail, as a full disk does."""
  model = make_model(width=64)  # a data file of about 10 kB
  store = checkpoints.CheckpointStore(str(tmp_path), model.checkpoint_variables())
  train(model, 1)
  store.save(1)
  first = values(model)
  train(model, 1)
  soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
  previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing us
  resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
  try:
    with pytest.raises(UserError) as error:
      store.save(2)
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, previous_handler)
  message = str(error.value)
  assert "could not write checkpoint" in message and "ckpt-2" in message and "File too large" in message
  assert os.path.join(str(tmp_path), "ckpt-1") + ", which is intact" in message
  assert "\n" not in message and "function_node" not in message
  assert sorted(os.listdir(tmp_path)) == ["checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index"]
  fresh = checkpoints.CheckpointStore(str(tmp_path), model.checkpoint_variables())
  assert fresh.restore() == 1
  for a, b in zip(first, values(model)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("damage", [b'model_checkpoint_path: "ckpt-3"\nall_model_ch', b"\x00\xff\xfe binary"])
def test_damaged_checkpoint_list_is_rebuilt_from_the_files(tmp_path, caplog, damage):
  model = make_model()
  store = checkpoints.CheckpointStore(str(tmp_path), model.checkpoint_variables())
  for step in range(1, 7):
    train(model, 1)
    store.save(step)
  last = values(model)
  (tmp_path / checkpoints.STATE_FILE).write_bytes(damage)
  other = make_model(seed=5)
  fresh = checkpoints.CheckpointStore(str(tmp_path), other.checkpoint_variables())
  assert "unreadable" in caplog.text and str(tmp_path / checkpoints.STATE_FILE) in caplog.text
  assert fresh.available_steps() == [3, 4, 5, 6]  # the newest KEEP, oldest first
  assert (tmp_path / (checkpoints.STATE_FILE + ".bad")).read_bytes() == damage
  assert fresh.restore() == 6
  for a, b in zip(last, values(other)):
    np.testing.assert_array_equal(a, b)
  fresh.save(7)  # the rebuilt list is managed as before: the oldest goes
  assert listed(tmp_path) == [4, 5, 6, 7]
  assert not glob.glob(os.path.join(tmp_path, "ckpt-3.*"))


def test_damaged_list_without_checkpoint_files_means_a_fresh_start(tmp_path):
  (tmp_path / checkpoints.STATE_FILE).write_bytes(b"\x00\xff")
  store = checkpoints.CheckpointStore(str(tmp_path), make_model().checkpoint_variables())
  assert store.restore() is None


def test_remove_unfinished_keeps_only_listed_checkpoints(tmp_path):
  model = make_model()
  store = checkpoints.CheckpointStore(str(tmp_path), model.checkpoint_variables())
  store.save(1)
  store.checkpoint.write(os.path.join(tmp_path, "ckpt-2"))  # written, never listed: a run killed before the list
  os.makedirs(tmp_path / "ckpt-3_temp")  # a run killed inside the write
  (tmp_path / "ckpt-3_temp" / "part-00000").write_bytes(b"partial")
  store.remove_unfinished()
  assert sorted(os.listdir(tmp_path)) == ["checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index"]
  assert store.latest_path() == os.path.join(str(tmp_path), "ckpt-1")


def test_misfit_message_carries_the_hint(tmp_path):
  checkpoints.CheckpointStore(str(tmp_path), make_model(width=3).checkpoint_variables()).save(1)
  other = checkpoints.CheckpointStore(str(tmp_path), make_model(width=5).checkpoint_variables())
  with pytest.raises(UserError, match=r"does not fit this model .*: the run that wrote it used --x=1 \(now 2\)"):
    other.restore(mismatch_hint="the run that wrote it used --x=1 (now 2)")
