"""ABSGD against numpy references of the official noisy-label code's formulas."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from core.errors import UserError
from ieg import optimizers
from ieg.run import checkpoints
from methods import absgd
from methods.absgd import ABSGD
from methods.base import TrainingContext
from tests.methods.toy_models import K, linear_network, random_batch

B = 6


def batch(seed=1, n=B):
  return random_batch(n, seed)


def make_absgd(network, *, steps_per_epoch=2, clip=None, lr=0.1, corrupted=None, **options):
  context = TrainingContext(num_classes=K, steps_per_epoch=steps_per_epoch, num_train_examples=60,
                            grad_clip_norm=clip, corrupted=corrupted)
  model = ABSGD(network, context, ABSGD.Config(**options))
  model.compile(optimizer=optimizers.TF1Momentum(lr, momentum=0.0))
  return model


def log_softmax(z):
  z = z - z.max(axis=1, keepdims=True)
  return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def reference_losses(z, labels, kind, sce_alpha=1.0, sce_beta=1.0, tau=0.0):
  """Per-example base losses of the official code (float64)."""
  if tau:
    z = z / np.linalg.norm(z, axis=1, keepdims=True) ** tau
  log_p = log_softmax(z)
  rows = np.arange(len(labels))
  ce = -log_p[rows, labels]
  p = np.exp(log_p)
  if kind == "ce":
    return ce
  if kind == "sce":
    one_hot = np.clip(np.eye(z.shape[1])[labels], 1e-4, 1.0)
    rce = -(np.clip(p, 1e-7, 1.0) * np.log(one_hot)).sum(axis=1)
    return sce_alpha * ce + sce_beta * rce
  q, k = 0.7, 0.5
  return (1 - p[rows, labels] ** q) / q - (1 - k ** q) / q


@pytest.mark.parametrize("kind", ["ce", "sce", "tce"])
def test_base_losses_equal_numpy(kind):
  logits = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3], [30.0, -5.0, 0.0], [-2.0, 4.0, 1.0]], np.float32)
  labels = np.array([0, 2, 1, 1], np.int32)  # row 2: p_label < 1e-7, so the RCE clamp is active
  config = ABSGD.Config(absgd_loss=kind, sce_alpha=0.3, sce_beta=2.0)
  got = absgd.BASE_LOSSES[kind](tf.constant(labels), tf.constant(logits), config).numpy()
  np.testing.assert_allclose(got, reference_losses(logits.astype(np.float64), labels, kind, 0.3, 2.0),
                             rtol=1e-5, atol=1e-5)


def finite_difference_gradients(w, b, x, labels, weights, loss_fn):
  """Gradient of sum_i weights_i * loss_i(xW + b) with the weights held fixed (stop-gradient)."""
  def objective(w_, b_):
    return float((weights * loss_fn(x @ w_ + b_, labels)).sum())
  grads = []
  for param in (w, b):
    grad = np.zeros_like(param)
    for idx in np.ndindex(param.shape):
      plus, minus = param.copy(), param.copy()
      plus[idx] += 1e-6
      minus[idx] -= 1e-6
      args_plus = (plus, b) if param is w else (w, plus)
      args_minus = (minus, b) if param is w else (w, minus)
      grad[idx] = (objective(*args_plus) - objective(*args_minus)) / 2e-6
    grads.append(grad)
  return grads


@pytest.mark.parametrize("kind, tau", [("ce", 0.0), ("sce", 1.0), ("tce", 0.0)])
def test_steps_match_numpy_across_the_stage_switch(kind, tau):
  """Two epochs of 2 steps: plain mean (lambda 200) in epoch 0, reweighting with lambda -0.7 from epoch 1."""
  gamma, alpha, lamda = 0.9, 0.5, -0.7
  network = linear_network()
  model = make_absgd(network, lamda=lamda, init_lamda=200.0, lamda_shots=1, droGamma=gamma, abAlpha=alpha,
                     absgd_loss=kind, class_tau=tau, sce_alpha=0.5, sce_beta=1.5)
  loss_fn = lambda z, y: reference_losses(z, y, kind, 0.5, 1.5, tau)  # noqa: E731
  u = 0.0
  for step in range(4):
    data = batch(seed=step)
    w, b = [v.numpy().astype(np.float64) for v in network.trainable_variables]
    x, y = data["image"].astype(np.float64), data["label"]
    losses = loss_fn(x @ w + b, y)
    if step >= 2:  # epoch 1: lambda < 200, u is updated first, then the weights use it
      scores = np.exp(losses / lamda)
      u = (1 - gamma) * u + gamma * alpha * scores.mean()
      weights = scores / (u * B) + 1.0 / B
    else:
      weights = np.full(B, 1.0 / B)
    logs = model.train_on_batch(data, return_dict=True)
    gw, gb = finite_difference_gradients(w, b, x, y, weights, loss_fn)
    np.testing.assert_allclose(network.trainable_variables[0].numpy(), w - 0.1 * gw, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(network.trainable_variables[1].numpy(), b - 0.1 * gb, rtol=1e-4, atol=1e-5)
    assert float(model.u.numpy()) == pytest.approx(u, rel=1e-5, abs=0.0)
    assert logs["loss"] == pytest.approx((weights * losses).sum(), rel=1e-4)


def test_lambda_schedule_per_epoch_and_the_200_sentinel():
  model = make_absgd(linear_network(), steps_per_epoch=5, lamda=-3.0, init_lamda=200.0, lamda_shots=2)
  lamdas = {}
  for step in (0, 4, 9, 10, 11, 50):
    model.optimizer.iterations.assign(step)
    lamdas[step] = float(model.current_lamda().numpy())
  assert lamdas == {0: 200.0, 4: 200.0, 9: 200.0, 10: -3.0, 11: -3.0, 50: -3.0}
  # A first-stage temperature below 200 (negative included) already reweights and moves u.
  early = make_absgd(linear_network(), lamda=-1.0, init_lamda=-2.0, lamda_shots=100, droGamma=1.0, abAlpha=1.0)
  data = batch()
  early.train_on_batch(data)
  w, b = [v.numpy() for v in linear_network().trainable_variables]
  losses = reference_losses(data["image"] @ w.astype(np.float64) + b, data["label"], "ce")
  assert float(early.u.numpy()) == pytest.approx(np.exp(losses / -2.0).mean(), rel=1e-5)


def train_steps(model, data, steps):
  model.fit(tf.data.Dataset.from_tensors(data).repeat(), steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)


def state_of(model):
  return [np.asarray(v.numpy()) for v in model.checkpoint_variables()["model"]] + [model.optimizer.iterations.numpy()]


def test_checkpoint_round_trip_continues_exactly(tmp_path):
  options = dict(lamda=-1.0, lamda_shots=1, droGamma=0.5, clip=5.0)
  data = batch(seed=3)
  original = make_absgd(linear_network(seed=0), **options)
  train_steps(original, data, 3)  # u has moved in epoch 1
  assert float(original.u.numpy()) > 0
  checkpoints.CheckpointStore(str(tmp_path), original.checkpoint_variables()).save(3)
  resumed = make_absgd(linear_network(seed=1), **options)
  resumed.optimizer.build(resumed.trainable_variables)
  assert checkpoints.CheckpointStore(str(tmp_path), resumed.checkpoint_variables()).restore() == 3
  assert float(resumed.u.numpy()) == float(original.u.numpy())
  for model in (original, resumed):
    train_steps(model, data, 3)
  for a, b in zip(state_of(original), state_of(resumed)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_two_replicas_equal_one(two_cpus):
  """With u's global-batch mean, per-replica weights and the global-norm clip (active at 0.05)."""
  data = batch(seed=5, n=8)
  states = {}
  for name, strategy in [("one", tf.distribute.OneDeviceStrategy(two_cpus[0])),
                         ("two", tf.distribute.MirroredStrategy(two_cpus))]:
    with strategy.scope():
      model = make_absgd(linear_network(), steps_per_epoch=1, clip=0.05, lamda=-1.0, lamda_shots=1, droGamma=0.9,
                         absgd_loss="sce")
    train_steps(model, data, 3)  # one plain step, then two reweighted ones
    states[name] = state_of(model)
  for a, b in zip(states["one"], states["two"]):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_update_does_not_depend_on_the_clean_labels():
  data = batch(seed=6)
  states = []
  for corrupted in (np.zeros(60, bool), np.ones(60, bool)):
    model = make_absgd(linear_network(), corrupted=corrupted, lamda=-1.0, lamda_shots=0)
    for _ in range(2):
      model.train_on_batch(data)
    states.append(state_of(model))
  for a, b in zip(*states):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(ABSGD.PRESETS))
def test_presets_reweight_for_label_noise(name):  # tests/test_presets.py checks that every preset is a valid run
  preset = ABSGD.PRESETS[name]
  assert preset["grad_clip_norm"] == 5.0 and preset["lamda"] < 0 and preset["lamda_shots"] < preset["max_epoch"]
  options = {f.name: preset[f.name] for f in dataclasses.fields(ABSGD.Config) if f.name in preset}
  ABSGD(linear_network(), TrainingContext(num_classes=K, steps_per_epoch=1, num_train_examples=B, grad_clip_norm=5.0),
        ABSGD.Config(**options))  # the method accepts its options


@pytest.mark.parametrize("options, flag", [
    ({"absgd_loss": "mae"}, "--absgd_loss=mae"),
    ({"lamda": 0.0}, "--lamda=0"),
    ({"droGamma": 0.0}, "--droGamma"),
    ({"abAlpha": -1.0}, "--abAlpha"),
])
def test_bad_settings_name_the_flag(options, flag):
  context = TrainingContext(num_classes=K, steps_per_epoch=2, num_train_examples=B, grad_clip_norm=5.0)
  with pytest.raises(UserError, match=flag):
    ABSGD(linear_network(), context, ABSGD.Config(**options))
