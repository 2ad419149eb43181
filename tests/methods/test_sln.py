"""SLN, SLN-MO and SLN-MO-LC against numpy references of the official formulas."""
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from core.errors import UserError
from datasets.pipelines import images as pipeline
from datasets.sources.image_files import ImageFiles
from ieg import experiment
from ieg import optimizers
from ieg.config import RunConfig
from ieg.run import checkpoints
from methods import sln
from methods.base import TrainingContext
from methods.sln import SLN, LabelCorrection, in_memory_image_batches
from tests.methods.toy_models import D, K, linear_network, softmax, random_batch

B = 6
SEED = 7
NOISE_STREAM = 101  # the documented key of the label noise: fold_in([seed, 101], int64 step)


def batch_norm_network(seed=0):
  keras.utils.set_random_seed(seed)
  inputs = keras.Input((D,))
  x = keras.layers.Dense(5)(inputs)
  x = keras.layers.BatchNormalization(momentum=0.5)(x)
  return keras.Model(inputs, keras.layers.Dense(K)(x))


def batch(seed=1, n=B):
  return random_batch(n, seed)


def make_sln(network, *, sigma=1.0, correction=-1, use_ema=False, steps_per_epoch=10, num_train=B, lr=0.1,
             corrupted=None, **options):
  context = TrainingContext(num_classes=K, steps_per_epoch=steps_per_epoch, num_train_examples=num_train,
                            use_ema=use_ema, seed=SEED, corrupted=corrupted)
  config = SLN.Config(sigma=sigma, correction=correction, correction_on_augmented=False, **options)
  model = SLN(network, context, config)
  model.compile(optimizer=optimizers.TF1Momentum(lr, momentum=0.0))
  return model


def reference_noise(step, rows):
  key = tf.random.experimental.stateless_fold_in(tf.constant([SEED, NOISE_STREAM], tf.int64),
                                                 tf.constant(step, tf.int64))
  return tf.random.stateless_normal([rows, K], key).numpy().astype(np.float64)


def soft_target_gradients(w, b, x, targets):
  """d/dW, d/db of -mean_i sum_k t_ik log softmax(xW + b)_ik: (p * sum_k t_k - t) per example."""
  p = softmax(x @ w + b)
  g = (p * targets.sum(axis=1, keepdims=True) - targets) / len(x)
  return x.T @ g, g.sum(axis=0)


def weights_of(network):
  return [v.numpy().astype(np.float64) for v in network.trainable_variables]


def fake_data(images, labels):
  """The parts of a NoisyDataset the label-correction callback reads."""
  return types.SimpleNamespace(x_train=images, y_train=labels, spec=types.SimpleNamespace(name="digits"),
                               image_shape=images.shape[1:], kind="images")


def uint8_images(seed, n):
  return np.random.default_rng(seed).integers(0, 256, (n, D)).astype(np.uint8)


def test_step_matches_numpy_with_unnormalised_noisy_targets():
  network = linear_network()
  model = make_sln(network, sigma=1.0)
  for step in range(2):
    w, b = weights_of(network)
    data = batch(seed=step)
    targets = np.eye(K)[data["label"]] + 1.0 * reference_noise(step, B)
    assert np.abs(targets.sum(axis=1) - 1.0).max() > 0.1  # the rows are not distributions
    logs = model.train_on_batch(data, return_dict=True)
    gw, gb = soft_target_gradients(w, b, data["image"], targets)
    np.testing.assert_allclose(network.trainable_variables[0].numpy(), w - 0.1 * gw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(network.trainable_variables[1].numpy(), b - 0.1 * gb, rtol=1e-5, atol=1e-6)
    loss = -(targets * np.log(softmax(data["image"] @ w + b))).sum(axis=1).mean()
    assert logs["loss"] == pytest.approx(loss, rel=1e-5)
    # The fused op's gradient (p - t) would be a different update.
    p = softmax(data["image"] @ w + b)
    assert not np.allclose(gb, (p - targets).mean(axis=0), atol=1e-3)


def corrected_reference(z, current, labels, soft):
  log_p = z - z.max(axis=1, keepdims=True)
  log_p = log_p - np.log(np.exp(log_p).sum(axis=1, keepdims=True))
  losses = -(current * log_p).sum(axis=1)
  w = ((losses - losses.min()) / (losses.max() - losses.min()))[:, None]
  q = np.exp(log_p) if soft else np.eye(K)[z.argmax(axis=1)]
  return w * np.eye(K)[labels] + (1 - w) * q


@pytest.mark.parametrize("soft", [False, True])
def test_label_correction_targets_equal_numpy_reference(soft):
  n = 10
  network = linear_network()
  model = make_sln(network, correction=1, use_ema=True, num_train=n, sln_ema_decay=0.5, soft_correction=soft)
  images, labels = uint8_images(3, n), np.random.default_rng(4).integers(0, K, n)
  # Three chunks, the last one short.
  callback = LabelCorrection(model, in_memory_image_batches(images, None, SEED, chunk=4), labels)
  x = images / 127.5 - 1.0
  expected = np.eye(K)[labels]
  for epoch, step_seed in [(1, 0), (2, 1)]:
    model.train_on_batch(batch(seed=step_seed))  # moves the momentum model
    callback.refresh(epoch)
    w_mo, b_mo = [v.numpy().astype(np.float64) for v in model.mo_weights]
    assert not np.allclose(w_mo, network.trainable_variables[0].numpy())
    expected = corrected_reference(x @ w_mo + b_mo, expected, labels, soft)  # 2nd pass: losses vs the 1st targets
    np.testing.assert_allclose(model.soft_targets.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert int(model.targets_epoch.numpy()) == epoch


def test_label_correction_predicts_on_a_reproducible_weak_view(monkeypatch):
  """The default, as the original: predictions on weakly augmented images, keyed by (seed, epoch, chunk)."""
  n, shape = 5, (4, 4, 3)
  keras.utils.set_random_seed(0)
  inputs = keras.Input(shape)
  network = keras.Model(inputs, keras.layers.Dense(K)(keras.layers.Flatten()(inputs)))
  context = TrainingContext(num_classes=K, steps_per_epoch=2, num_train_examples=n, use_ema=True, seed=SEED)
  model = SLN(network, context, SLN.Config(correction=1))
  images = np.random.default_rng(1).integers(0, 256, (n,) + shape).astype(np.uint8)
  labels = np.arange(n) % K
  train = types.SimpleNamespace(x_train=images, y_train=labels, spec=types.SimpleNamespace(name="cifar10"),
                                image_shape=shape, kind="images")
  monkeypatch.setattr(sln, "CORRECTION_CHUNK", 3)
  [callback] = model.training_callbacks(train)
  w, b = [v.numpy().astype(np.float64) for v in model.mo_weights]
  views = []
  for number, start in enumerate((0, 3)):  # CIFAR's weak view: pad 2, crop, flip
    key = tf.random.experimental.stateless_fold_in(
        tf.random.experimental.stateless_fold_in(tf.constant([SEED, 102], tf.int64), tf.constant(1, tf.int64)), number)
    views.append(pipeline.crop_flip(tf.constant(images[start:start + 3]), key, pad=2, flip=True).numpy())
  view = np.concatenate(views).reshape(n, -1) / 127.5 - 1.0
  assert not np.array_equal(view, images.reshape(n, -1) / 127.5 - 1.0)
  callback.refresh(1)
  expected = corrected_reference(view @ w + b, np.eye(K)[labels], labels, soft=False)
  np.testing.assert_allclose(model.soft_targets.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_text_and_image_file_passes_walk_the_training_set_in_order(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  tokens = np.arange(14, dtype=np.int32).reshape(7, 2)
  text = types.SimpleNamespace(x_train=tokens, kind="text")
  chunks = list(sln.CORRECTION_INPUTS["text"](text, True, SEED, 3)(epoch=1))
  assert [len(c) for c in chunks] == [3, 3, 1]
  np.testing.assert_array_equal(np.concatenate(chunks), tokens)
  # Streamed files: one image per example, each a flat colour of its index, so the order is visible.
  paths = []
  for i in range(5):
    paths.append(str(tmp_path / f"{i}.png"))
    Image.new("RGB", (8, 8), (40 * i, 40 * i, 40 * i)).save(paths[-1])
  files = types.SimpleNamespace(train=ImageFiles(labels=np.zeros(5, np.int64), paths=np.array(paths)),
                                image_shape=(8, 8, 3), train_view="resize_crop", kind="image_files")
  for augmented in (True, False):
    walk = sln.CORRECTION_INPUTS["image_files"](files, augmented, SEED, 2)
    images = np.concatenate([b.numpy() for b in walk(epoch=3)])
    assert images.shape == (5, 8, 8, 3)
    np.testing.assert_allclose(images.mean(axis=(1, 2, 3)), np.arange(5) * 40 / 127.5 - 1.0, atol=0.02)
    np.testing.assert_array_equal(images, np.concatenate([b.numpy() for b in walk(epoch=3)]))


def test_correction_epochs_train_on_stored_targets_without_noise():
  network = linear_network()
  model = make_sln(network, sigma=1.0, correction=1, use_ema=True, steps_per_epoch=2)
  callback = LabelCorrection(model, in_memory_image_batches(uint8_images(5, B), None, SEED, chunk=256),
                             batch()["label"])
  callback.set_model(model)
  callback.on_epoch_begin(0)  # as fit does: the period's first step is read once, then batches counted
  for step in range(4):
    callback.on_train_batch_begin(step)
    assert int(model.targets_epoch.numpy()) == (-1 if step < 2 else 1)  # refreshed once, at the epoch start
    data = batch(seed=step)
    w, b = weights_of(network)
    if step < 2:
      targets = np.eye(K)[data["label"]] + reference_noise(step, B)
    else:
      targets = model.soft_targets.numpy().astype(np.float64)[data["index"]]
    logs = model.train_on_batch(data, return_dict=True)
    assert logs["sigma"] == (1.0 if step < 2 else 0.0)
    gw, gb = soft_target_gradients(w, b, data["image"], targets)
    np.testing.assert_allclose(network.trainable_variables[0].numpy(), w - 0.1 * gw, rtol=1e-5, atol=1e-6)


def test_momentum_model_averages_all_weights_including_batchnorm_statistics():
  network = batch_norm_network()
  model = make_sln(network, sigma=0.5, use_ema=True, sln_ema_decay=0.9)
  statistics = [v for v in network.non_trainable_variables if "moving" in v.path]
  assert len(statistics) == 2 and len(model.mo_statistics) == 2
  live = network.trainable_variables + statistics
  shadows = model.mo_weights + model.mo_statistics
  for shadow, variable in zip(shadows, live):  # an exact copy at the start
    np.testing.assert_array_equal(shadow.numpy(), variable.numpy())
  expected = [v.numpy().astype(np.float64) for v in live]
  initial_mean = statistics[0].numpy().copy()
  for step in range(3):
    model.train_on_batch(batch(seed=step))
    expected = [0.9 * e + 0.1 * v.numpy() for e, v in zip(expected, live)]
  assert not np.allclose(statistics[0].numpy(), initial_mean)
  for shadow, value in zip(shadows, expected):
    np.testing.assert_allclose(shadow.numpy(), value, rtol=1e-5, atol=1e-6)
  # Evaluation = a network holding the averaged weights and statistics, in inference mode.
  clone = batch_norm_network(seed=5)
  for target, shadow in zip(clone.trainable_variables + [v for v in clone.non_trainable_variables
                                                         if "moving" in v.path], shadows):
    target.assign(shadow.numpy())
  images = batch(seed=9)["image"]
  logits = model.evaluation_logits(tf.constant(images)).numpy()
  np.testing.assert_allclose(logits, clone(images, training=False).numpy(), rtol=1e-5, atol=1e-6)
  assert not np.allclose(logits, network(images, training=False).numpy(), atol=1e-4)
  # SLN-MO replaces the base's EMA of trainable weights.
  assert model.ema_weights == []


def fit_steps(model, data, steps, callbacks):
  model.fit(tf.data.Dataset.from_tensors(data).repeat(), steps_per_epoch=steps, epochs=1, verbose=0,
            callbacks=callbacks, shuffle=False)


def state_of(model):
  return [np.asarray(v.numpy()) for v in model.checkpoint_variables()["model"]] + [model.optimizer.iterations.numpy()]


def test_checkpoint_round_trip_continues_exactly(tmp_path):
  data = batch(seed=2)
  train = fake_data(uint8_images(6, B), data["label"])
  original = make_sln(linear_network(seed=0), correction=1, use_ema=True, steps_per_epoch=2)
  fit_steps(original, data, 3, original.training_callbacks(train))  # epoch 1 targets exist
  checkpoints.CheckpointStore(str(tmp_path), original.checkpoint_variables()).save(3)
  resumed = make_sln(linear_network(seed=1), correction=1, use_ema=True, steps_per_epoch=2)
  resumed.optimizer.build(resumed.trainable_variables)
  assert checkpoints.CheckpointStore(str(tmp_path), resumed.checkpoint_variables()).restore() == 3
  for a, b in zip(state_of(original), state_of(resumed)):
    np.testing.assert_array_equal(a, b)
  for model in (original, resumed):
    fit_steps(model, data, 3, model.training_callbacks(train))  # noise off, a new correction at step 4
  assert int(resumed.targets_epoch.numpy()) == 2
  for a, b in zip(state_of(original), state_of(resumed)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_two_replicas_equal_one(two_cpus):
  n = 8
  data = batch(seed=3, n=n)
  train = fake_data(uint8_images(7, n), data["label"])
  states = {}
  for name, strategy in [("one", tf.distribute.OneDeviceStrategy(two_cpus[0])),
                         ("two", tf.distribute.MirroredStrategy(two_cpus))]:
    with strategy.scope():
      model = make_sln(linear_network(), sigma=1.0, correction=2, use_ema=True, steps_per_epoch=1, num_train=n)
    fit_steps(model, data, 3, model.training_callbacks(train))  # two noisy steps, then corrected targets
    states[name] = state_of(model)
  for a, b in zip(states["one"], states["two"]):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_update_does_not_depend_on_the_clean_labels():
  n = 8
  data = batch(seed=4, n=n)
  images = uint8_images(8, n)
  states = []
  for clean in (data["label"], (data["label"] + 1) % K):
    train = fake_data(images, data["label"])
    train.y_train_clean, train.corrupted = clean, clean != data["label"]
    model = make_sln(linear_network(), correction=1, use_ema=True, steps_per_epoch=2, num_train=n,
                     corrupted=train.corrupted)
    fit_steps(model, data, 3, model.training_callbacks(train))
    states.append(state_of(model))
  for a, b in zip(*states):
    np.testing.assert_array_equal(a, b)


def test_experiment_runs_the_label_correction(tmp_path, monkeypatch):
  """experiment.train passes the method's callbacks to fit: the targets of epoch 1 get computed."""
  # The end-of-run plots cost more than this short run; they are not what is tested here.
  monkeypatch.setattr(experiment.reports, "WriteReports", lambda *args, **kwargs: keras.callbacks.Callback())
  config = RunConfig(dataset="digits_uniform_0.4", method="sln", network_name="mnist_cnn", batch_size=128,
                     val_batch_size=512, max_iteration=12, eval_freq=12, learning_rate=0.01, optimizer="adam",
                     lr_schedule="constant", probe_dataset_hold_ratio=0.0, seed=1, use_ema=True,
                     checkpoint_path=str(tmp_path), distribution_strategy="one_device",
                     method_options={"sigma": 1.0, "correction": 1})
  run = experiment.build(config)
  assert run.steps_per_epoch == 11
  results = experiment.train(run)
  assert int(run.model.targets_epoch.numpy()) == 1
  assert results["train_sigma"] == pytest.approx(11 / 12)  # noise in the 11 steps of epoch 0 only
  targets = run.model.soft_targets.numpy()
  np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-5)
  # results.json keeps the plain network's accuracy next to the momentum model's, as SLN reports both.
  assert 0.0 <= results["eval_top1_no_ema"] <= 1.0 and results["eval_top1_no_ema"] != results["top1"]


@pytest.mark.parametrize("name", sorted(SLN.PRESETS))
def test_presets_use_the_momentum_model_and_correct_before_the_end(name):  # validity: tests/test_presets.py
  preset = SLN.PRESETS[name]
  assert preset["use_ema"] and preset["correction"] < preset["max_epoch"]


@pytest.mark.parametrize("options, use_ema, flag", [
    ({"sigma": -0.1}, True, "--sigma"),
    ({"correction": 5}, False, "--correction=5"),
    ({"sln_ema_decay": 1.0}, True, "--sln_ema_decay"),
])
def test_bad_settings_name_the_flag(options, use_ema, flag):
  context = TrainingContext(num_classes=K, steps_per_epoch=2, num_train_examples=B, use_ema=use_ema)
  with pytest.raises(UserError, match=flag):
    SLN(linear_network(), context, SLN.Config(**options))
