"""Optimizer, schedules and the shared method base against numpy references."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from ieg import optimizers
from ieg import schedules
from ieg.config import RunConfig
from methods.base import TrainingContext
from methods.supervised import Supervised
from tests.methods.toy_models import K, linear_network, softmax, random_batch

B = 6


def batch(seed=1, n=B):
  return random_batch(n, seed)


def make_supervised(network, lr=0.1, wd=0.0, use_ema=False, clip=None, momentum=0.9):
  context = TrainingContext(num_classes=K, steps_per_epoch=10, num_train_examples=60, weight_decay=wd,
                            use_ema=use_ema, grad_clip_norm=clip)
  model = Supervised(network, context)
  model.compile(optimizer=optimizers.TF1Momentum(lr, momentum))
  return model


def numpy_gradients(w, b, data, wd):
  """d/dW, d/db of mean CE + 0.5 wd (|W|^2 + |b|^2) for logits = xW + b."""
  x, y = data["image"], data["label"]
  p = softmax(x @ w + b)
  p[np.arange(len(y)), y] -= 1.0
  return x.T @ p / len(y) + wd * w, p.mean(axis=0) + wd * b


def test_tf1_momentum_matches_numpy_with_a_changing_learning_rate():
  var = keras.Variable(np.array([1.0, -2.0], np.float32))
  lr = keras.Variable(0.1)
  opt = optimizers.TF1Momentum(learning_rate=0.1, momentum=0.9)
  theta, acc = np.array([1.0, -2.0]), np.zeros(2)
  for step, rate in enumerate([0.1, 0.05, 0.2]):
    opt.learning_rate = rate
    grad = np.array([0.5, 1.5]) * (step + 1)
    opt.apply([tf.constant(grad, tf.float32)], [var])
    acc = 0.9 * acc + grad
    theta = theta - rate * acc
    np.testing.assert_allclose(var.numpy(), theta, rtol=1e-6)
    np.testing.assert_allclose(opt.accumulator(var).numpy(), acc, rtol=1e-6)
  del lr


def cosine_restarts_reference(step, lr, first, t_mul, m_mul):
  """Closed form of TF1's cosine_decay_restarts, walking the cycles."""
  start, length, peak = 0.0, float(first), lr
  while step >= start + length:
    start, length, peak = start + length, length * t_mul, peak * m_mul
  return peak * 0.5 * (1 + math.cos(math.pi * (step - start) / length))


@pytest.mark.parametrize("step", [0, 250, 499, 500, 1000, 1249, 1250, 2374, 2375, 5000])
def test_cosine_restarts_schedule(step):
  cfg = RunConfig(lr_schedule="cosine", decay_steps=(500,), learning_rate=0.1)
  schedule = schedules.make_schedule(cfg, steps_per_epoch=100, max_iteration=10000)
  assert float(schedule(step)) == pytest.approx(cosine_restarts_reference(step, 0.1, 500, 1.5, 0.9), rel=1e-4, abs=1e-7)


def test_step_exponential_warmup_and_one_cycle_schedules():
  step_cfg = RunConfig(lr_schedule="custom_step", decay_steps=(100, 200), decay_rate=0.1, learning_rate=1.0)
  step_schedule = schedules.make_schedule(step_cfg, 10, 1000)
  assert [float(step_schedule(s)) for s in (0, 100, 101, 201)] == pytest.approx([1.0, 1.0, 0.1, 0.01])
  exp_cfg = RunConfig(lr_schedule="exponential", decay_steps=(50,), learning_rate=1.0)
  exp_schedule = schedules.make_schedule(exp_cfg, 10, 1000)
  assert [float(exp_schedule(s)) for s in (0, 49, 50, 120)] == pytest.approx([1.0, 1.0, 0.9, 0.81])
  one_cfg = RunConfig(lr_schedule="cosine_one", learning_rate=1.0)
  one = schedules.make_schedule(one_cfg, 10, 1000)
  assert [float(one(s)) for s in (0, 500, 1000)] == pytest.approx([1.0, 0.5, 0.0], abs=1e-6)
  warm_cfg = RunConfig(lr_schedule="constant", warmup_epochs=2, learning_rate=1.0)
  warm = schedules.make_schedule(warm_cfg, steps_per_epoch=10, max_iteration=1000)
  assert [float(warm(s)) for s in (0, 10, 20, 500)] == pytest.approx([0.0, 0.5, 1.0, 1.0])


def test_supervised_step_equals_the_numpy_update_with_l2():
  network = linear_network()
  model = make_supervised(network, lr=0.1, wd=1e-2)
  w0, b0 = [v.numpy().astype(np.float64) for v in network.trainable_variables]
  data = batch()
  model.train_on_batch(data)  # one step through Keras' own train loop
  gw, gb = numpy_gradients(w0, b0, data, 1e-2)
  np.testing.assert_allclose(network.trainable_variables[0].numpy(), w0 - 0.1 * gw, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(network.trainable_variables[1].numpy(), b0 - 0.1 * gb, rtol=1e-5, atol=1e-6)


def test_loss_metric_is_the_mean_cross_entropy_plus_l2():
  network = linear_network()
  model = make_supervised(network, wd=1e-2)
  w0, b0 = [v.numpy().astype(np.float64) for v in network.trainable_variables]
  data = batch()
  logs = model.train_on_batch(data, return_dict=True)
  p = softmax(data["image"] @ w0 + b0)
  expected = -np.log(p[np.arange(B), data["label"]]).mean() + 0.5e-2 * ((w0 ** 2).sum() + (b0 ** 2).sum())
  assert logs["loss"] == pytest.approx(expected, rel=1e-5)


def test_ema_follows_the_iegs_decay_formula():
  network = linear_network()
  model = make_supervised(network, use_ema=True)
  shadow = [v.numpy().astype(np.float64) for v in network.trainable_variables]
  for step in range(1, 4):
    model.train_on_batch(batch(seed=step))
    decay = min(0.999, (1 + step) / (10 + step))
    shadow = [decay * s + (1 - decay) * v.numpy() for s, v in zip(shadow, network.trainable_variables)]
  for s, e in zip(shadow, model.ema_weights):
    np.testing.assert_allclose(e.numpy(), s, rtol=1e-5, atol=1e-6)


def test_evaluation_uses_the_ema_weights():
  network = linear_network()
  model = make_supervised(network, use_ema=True)
  for step in range(3):
    model.train_on_batch(batch(seed=step))
  data = batch(seed=9)
  w, b = [e.numpy() for e in model.ema_weights]
  expected = data["image"] @ w + b
  np.testing.assert_allclose(model.evaluation_logits(tf.constant(data["image"])).numpy(), expected, rtol=1e-5)
  assert not np.allclose(network(data["image"]).numpy(), expected)


def test_gradient_clipping_bounds_the_global_norm():
  network = linear_network()
  model = make_supervised(network, lr=1.0, clip=0.05, momentum=0.0)
  before = [v.numpy() for v in network.trainable_variables]
  data = batch()
  model.train_on_batch(data)
  gw, gb = numpy_gradients(before[0].astype(np.float64), before[1].astype(np.float64), data, 0.0)
  norm = math.sqrt((gw ** 2).sum() + (gb ** 2).sum())
  assert norm > 0.05
  step = [b - v.numpy() for b, v in zip(before, network.trainable_variables)]
  np.testing.assert_allclose(step[0], gw * 0.05 / norm, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("clip", [None, 0.05])
def test_one_step_on_two_replicas_equals_one_step_on_one(two_cpus, clip):
  data = batch(n=8)
  dataset = tf.data.Dataset.from_tensors(data).repeat()
  weights = {}
  for name, strategy in [("one", tf.distribute.OneDeviceStrategy(two_cpus[0])),
                         ("two", tf.distribute.MirroredStrategy(two_cpus))]:
    with strategy.scope():
      model = make_supervised(linear_network(), wd=1e-2, use_ema=True, clip=clip)
    model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)
    weights[name] = [v.numpy() for v in model.network.trainable_variables + model.ema_weights]
  for a, b in zip(weights["one"], weights["two"]):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
