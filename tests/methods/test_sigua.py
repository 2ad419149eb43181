"""SIGUA against numpy references of the official SIGUA_SL / SIGUA_BC and of pytorch-SIGUA."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from core.errors import UserError
from datasets import noise as noise_lib
from ieg import optimizers
from ieg.config import RunConfig
from ieg.run import checkpoints
from methods import sigua
from methods.base import TrainingContext
from tests.methods.toy_models import K, linear_network, softmax, random_batch

B = 12
LR = 0.1


def batch(seed=1, n=B):
  return random_batch(n, seed)


TRANSITION = noise_lib.transition_matrix("symmetric", 0.3, K, "digits")


def make_sigua(network, steps_per_epoch=1, corrupted=None, noise_ratio=0.5, **options):
  context = TrainingContext(num_classes=K, steps_per_epoch=steps_per_epoch, num_train_examples=64,
                            noise_ratio=noise_ratio, transition=TRANSITION, corrupted=corrupted)
  model = sigua.Sigua(network, context, sigua.Sigua.Config(**options))
  model.compile(optimizer=optimizers.TF1Momentum(LR, momentum=0.0))  # plain SGD: the update is -lr * grad
  model.optimizer.build(model.trainable_variables)
  return model


# ----- numpy references, written the way the reference code computes them -----------------------
def official_schedule(rate, num_gradual, epoch, n_epoch=200):
  schedule = np.ones(n_epoch) * rate
  schedule[:num_gradual] = np.linspace(0, rate, num_gradual)
  return schedule[epoch + 1]


def logit_gradient_sl(z, y, forget_rate, sigua_rate, gamma):
  """loss_sigua_sl: mean(small) - gamma * mean(big[:num_sigua] or big[:1])."""
  p = softmax(z)
  losses = -np.log(p[np.arange(len(y)), y])
  order = np.argsort(losses, kind="stable")
  num_remember = int((1 - forget_rate) * len(losses))
  num_sigua = int((len(losses) - num_remember) * sigua_rate)
  good = order[:num_remember]
  bad = order[num_remember:][:num_sigua] if num_sigua > 0 else order[num_remember:][:1]
  dz = p.copy()
  dz[np.arange(len(y)), y] -= 1.0
  coef = np.zeros(len(y))
  coef[good] = 1.0 / num_remember
  coef[bad] = -gamma / len(bad)
  return coef[:, None] * dz, good, bad


def logit_gradient_pytorch(z, y, epoch, tau, num_gradual, bad_weight):
  """runs/train_sigua.py: rt = 1 - tau * min(e / num_gradual, 1); (filter * loss).mean()."""
  p = softmax(z)
  losses = -np.log(p[np.arange(len(y)), y])
  rt = 1.0 - tau * min(epoch / num_gradual, 1)
  num_good = int(len(y) * rt)
  num_bad = int((len(y) - num_good) / 2)
  order = np.argsort(losses, kind="stable")
  flt = np.zeros(len(y))
  flt[order[:num_good]] = 1.0
  flt[order[num_good:num_good + num_bad]] = -bad_weight
  dz = p.copy()
  dz[np.arange(len(y)), y] -= 1.0
  return flt[:, None] * dz / len(y), order[:num_good], order[num_good:num_good + num_bad]


def logit_gradient_bc(z, y, gamma, warm):
  """loss_sigua_bc / loss_backward: mean(indicator * -(onehot T^-1) . log softmax)."""
  targets = np.eye(K)[y] @ np.linalg.inv(TRANSITION)
  p = softmax(z)
  losses = -(targets * np.log(p)).sum(1)
  weight = np.ones(len(y)) if warm else np.where(losses < 0, -gamma, 1.0)
  dz = p * targets.sum(1, keepdims=True) - targets
  return weight[:, None] * dz / len(y), np.flatnonzero(weight > 0), np.flatnonzero(weight < 0)


VARIANT_CASES = {
    "sl": dict(options=dict(sigua_variant="sl", num_gradual=3, sigua_rate=0.4, sigua_scale=0.5), scale=1.0),
    "pytorch": dict(options=dict(sigua_variant="pytorch", num_gradual=3, sigua_rate=0.5, bad_weight=0.5), scale=1.0),
    "bc": dict(options=dict(sigua_variant="bc", sigua_scale=0.5, sigua_warm_up=2), scale=6.0),
}


def reference_gradient(variant, options, z, y, epoch):
  if variant == "sl":
    rate = official_schedule(0.5, options["num_gradual"], epoch)
    return logit_gradient_sl(z, y, rate, options["sigua_rate"], options["sigua_scale"])
  if variant == "pytorch":
    return logit_gradient_pytorch(z, y, epoch, 0.5, options["num_gradual"], options["bad_weight"])
  return logit_gradient_bc(z, y, options["sigua_scale"], warm=epoch < options["sigua_warm_up"])


@pytest.mark.parametrize("variant", sorted(VARIANT_CASES))
def test_one_step_equals_the_numpy_update_at_each_epoch(variant):
  case = VARIANT_CASES[variant]
  model = make_sigua(linear_network(scale=case["scale"]), **case["options"])
  w0, b0 = [v.numpy().astype(np.float64) for v in model.network.trainable_variables]
  data = batch()
  bad_sets = []
  for epoch in (0, 1, 4):
    for v, value in zip(model.network.trainable_variables, (w0, b0)):
      v.assign(value.astype(np.float32))
    model.optimizer.iterations.assign(epoch)  # steps_per_epoch = 1
    model.reset_metrics()
    logs = model.train_on_batch(data, return_dict=True)
    dz, good, bad = reference_gradient(variant, case["options"], data["image"] @ w0 + b0, data["label"], epoch)
    bad_sets.append(len(bad))
    w, b = [v.numpy() for v in model.network.trainable_variables]
    np.testing.assert_allclose(w, w0 - LR * data["image"].T @ dz, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, b0 - LR * dz.sum(0), rtol=1e-5, atol=1e-6)
    assert logs["bad_fraction"] == pytest.approx(len(bad) / B)
  assert max(bad_sets) > 0  # the ascent term was exercised


def test_bad_set_is_just_above_the_cut_off_with_the_official_fallbacks():
  rng = np.random.default_rng(3)
  for size, forget_rate, fraction in [(128, 0.45, 0.3), (128, 0.05, 0.3), (10, 0.2, 0.4), (10, 0.0, 0.3), (9, 0.5, 0.7)]:
    losses = rng.exponential(size=size).astype(np.float32)
    good, bad, remembered, count = sigua.small_loss_sets(tf.constant(losses), tf.constant(forget_rate, tf.float64),
                                                        fraction, at_least_one_bad=True)
    order = np.argsort(losses, kind="stable")
    num_remember = int((1 - forget_rate) * size)
    num_sigua = int((size - num_remember) * fraction)
    expected_bad = order[num_remember:][:num_sigua] if num_sigua > 0 else order[num_remember:][:1]
    np.testing.assert_array_equal(np.flatnonzero(good.numpy()), np.sort(order[:num_remember]))
    np.testing.assert_array_equal(np.flatnonzero(bad.numpy()), np.sort(expected_bad))
    assert int(remembered) == num_remember and int(count) == len(expected_bad)
    assert losses[bad.numpy()].min(initial=np.inf) >= losses[good.numpy()].max()  # smallest of the forgotten


def test_no_forgotten_examples_gives_a_finite_loss():
  """tau = 0 (first pass of pytorch-SIGUA, or clean data) leaves the bad set empty: no NaN."""
  model = make_sigua(linear_network(), noise_ratio=0.0, sigua_variant="sl")
  logs = model.train_on_batch(batch(), return_dict=True)
  assert np.isfinite(logs["loss"]) and logs["bad_fraction"] == 0.0
  assert all(np.isfinite(v.numpy()).all() for v in model.network.trainable_variables)


def test_backward_correction_needs_an_invertible_transition():
  context = TrainingContext(num_classes=K, steps_per_epoch=1, num_train_examples=8, transition=None)
  with pytest.raises(UserError, match="--sigua_variant=bc"):
    sigua.Sigua(linear_network(), context, sigua.Sigua.Config(sigua_variant="bc"))
  singular = noise_lib.transition_matrix("symmetric", (K - 1) / K, K, "digits")
  with pytest.raises(UserError, match="singular"):
    sigua.inverse_transition(singular)
  with pytest.raises(UserError, match="--sigua_variant=magic"):
    sigua.Sigua(linear_network(), context, sigua.Sigua.Config(sigua_variant="magic"))


def test_update_never_sees_the_clean_labels():
  data = batch(n=B)
  masks = [np.zeros(64, bool), np.arange(64) % 2 == 0]
  weights, precision = [], []
  for corrupted in masks:
    model = make_sigua(linear_network(), corrupted=corrupted, sigua_variant="sl", num_gradual=2, sigua_scale=0.5)
    for step in range(3):
      logs = model.train_on_batch(data, return_dict=True)
    weights.append([v.numpy() for v in model.network.trainable_variables])
    precision.append(logs["label_precision"])
  for a, b in zip(*weights):
    np.testing.assert_array_equal(a, b)
  assert precision[0] == 1.0 and precision[1] < 1.0  # the diagnostic does read the masks


def test_state_survives_a_checkpoint_round_trip(tmp_path):
  data = batch()
  model = make_sigua(linear_network(), steps_per_epoch=2, sigua_variant="pytorch", num_gradual=4, bad_weight=0.5)
  for _ in range(3):
    model.train_on_batch(data)
  store = checkpoints.CheckpointStore(str(tmp_path), model.checkpoint_variables())
  store.save(3)
  restored = make_sigua(linear_network(seed=7), steps_per_epoch=2, sigua_variant="pytorch", num_gradual=4,
                        bad_weight=0.5)
  checkpoints.CheckpointStore(str(tmp_path), restored.checkpoint_variables()).restore()
  assert int(restored.data_epoch()) == int(model.data_epoch()) == 1
  logs = [m.train_on_batch(data, return_dict=True) for m in (model, restored)]
  assert logs[0]["forget_rate"] == logs[1]["forget_rate"] == pytest.approx(0.5 * 1 / 4)
  for a, b in zip(model.network.trainable_variables, restored.network.trainable_variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_one_step_on_two_replicas_equals_one_step_on_one(two_cpus):
  data = batch(n=16)
  dataset = tf.data.Dataset.from_tensors(data).repeat()
  weights = {}
  for name, strategy in [("one", tf.distribute.OneDeviceStrategy(two_cpus[0])),
                         ("two", tf.distribute.MirroredStrategy(two_cpus))]:
    with strategy.scope():
      model = make_sigua(linear_network(), corrupted=np.arange(64) % 3 == 0, sigua_variant="sl", num_gradual=2,
                         sigua_rate=0.5, sigua_scale=0.5)
    model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)
    weights[name] = [v.numpy() for v in model.network.trainable_variables]
  for a, b in zip(weights["one"], weights["two"]):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_presets_follow_the_seed_protocols():  # validity of each: tests/test_presets.py
  base_names = {f.name for f in dataclasses.fields(RunConfig)}
  presets = sigua.Sigua.PRESETS
  assert {"sigua_mnist_sym20", "sigua_mnist_sym50", "sigua_mnist_pair45", "sigua_sl_cifar10_sym50",
          "sigua_bc_cifar10_sym50"} <= set(presets)
  seed = presets["sigua_mnist_sym50"]
  assert (seed["max_epoch"], seed["batch_size"], seed["learning_rate"], seed["num_gradual"], seed["bad_weight"],
          seed["forget_rate"], seed["grad_clip_norm"]) == (30, 256, 1e-3, 5, 0.001, 0.5, 5.0)
  # SIGUA_BC on CIFAR-10: StepLR(20) stepped before epochs 1..199 -> 1e-3 * 0.1^floor((pass + 1) / 20).
  from ieg import schedules  # pylint: disable=g-import-not-at-top
  bc = presets["sigua_bc_cifar10_sym50"]
  cfg = RunConfig(**{k: v for k, v in bc.items() if k in base_names})
  schedule = schedules.make_schedule(cfg, 390, 199 * 390)
  for epoch in (0, 18, 19, 20, 39, 100, 198):
    assert float(schedule(epoch * 390)) == pytest.approx(1e-3 * 0.1 ** ((epoch + 1) // 20), rel=1e-5)
    assert float(schedule(epoch * 390 + 389)) == pytest.approx(1e-3 * 0.1 ** ((epoch + 1) // 20), rel=1e-5)
  assert bc["sigua_warm_up"] == 18 and bc["optimizer"] == "momentum"
