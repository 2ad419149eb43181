"""Each method's own per-example scores for the detection report, against numpy references.

A tiny linear softmax model (logits = xW + b) makes every signal writable in numpy: SIGUA's and
PRL's kept sets, ABSGD's weights, SLN-MO-LC's target mass and the look-ahead weights of L2R and IEG
(the inner product of per-example and probe gradients).
"""
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from ieg import optimizers
from ieg.reports import writer as reports
from methods.absgd import ABSGD
from methods.base import TrainingContext
from methods.ieg import IEG
from methods.l2r import L2R
from methods.prl import Prl
from methods.sigua import Sigua
from methods.sln import SLN
from tests.methods.toy_models import D, K, linear_network, softmax

B = 10
ETA = 0.1


def batch(seed=3, n=B):
  rng = np.random.default_rng(seed)
  return {"image": rng.normal(size=(n, D)).astype(np.float32), "label": rng.integers(0, K, n).astype(np.int32),
          "index": np.arange(n, dtype=np.int64), "probe_image": rng.normal(size=(n, D)).astype(np.float32),
          "probe_label": rng.integers(0, K, n).astype(np.int32)}


def logits_of(model, x):
  w, b = [v.numpy().astype(np.float64) for v in model.network.trainable_variables]
  return x.astype(np.float64) @ w + b


def cross_entropy(z, y):
  return -np.log(softmax(z)[np.arange(len(y)), y])


def scores_of(model, data):
  return {k: v.numpy() for k, v in model.example_scores({k: tf.constant(v) for k, v in data.items()}).items()}


def at_step(model, step):
  model.optimizer.iterations.assign(step)
  return model


def compiled(model, optimizer=None):
  model.compile(optimizer=optimizer or keras.optimizers.Adam(1e-3), run_eagerly=True)
  return model


def test_base_scores_are_cross_entropy_and_max_softmax():
  model = compiled(L2R(linear_network(), TrainingContext(num_classes=K, steps_per_epoch=1, num_train_examples=B)))
  data = batch()
  data.pop("probe_image"), data.pop("probe_label")  # no probe batch: only the base scores
  scores = scores_of(model, data)
  z = logits_of(model, data["image"])
  assert set(scores) == {"cross_entropy", "max_softmax"}
  np.testing.assert_allclose(scores["cross_entropy"], cross_entropy(z, data["label"]), rtol=1e-5)
  np.testing.assert_allclose(scores["max_softmax"], softmax(z).max(axis=1), rtol=1e-5)


@pytest.mark.parametrize("epoch,forget", [(0, 0.0), (1, 0.25), (9, 0.5)])
def test_sigua_marks_its_kept_and_pushed_back_examples(epoch, forget):
  context = TrainingContext(num_classes=K, steps_per_epoch=1, num_train_examples=B, noise_ratio=0.5)
  model = at_step(compiled(Sigua(linear_network(), context, Sigua.Config(
      sigua_variant="pytorch", forget_rate=0.5, num_gradual=2, sigua_rate=0.5))), epoch)
  data = batch()
  scores = scores_of(model, data)
  losses = cross_entropy(logits_of(model, data["image"]), data["label"])
  ranks = np.argsort(np.argsort(losses, kind="stable"), kind="stable")
  remembered = int((1 - forget) * B)
  bad = int((B - remembered) * 0.5)
  np.testing.assert_array_equal(scores["selected"], (ranks < remembered).astype(np.float32))
  np.testing.assert_array_equal(scores["pushed_back"], ((ranks >= remembered) & (ranks < remembered + bad)))
  assert model.SCORE_SUSPICIOUS_END["selected"] == "low"


def test_sigua_bc_scores_its_backward_corrected_loss():
  transition = np.full((K, K), 0.1) + np.eye(K) * 0.7
  context = TrainingContext(num_classes=K, steps_per_epoch=1, num_train_examples=B, transition=transition)
  model = compiled(Sigua(linear_network(), context, Sigua.Config(sigua_variant="bc", sigua_scale=0.1)))
  data = batch()
  scores = scores_of(model, data)
  log_p = np.log(softmax(logits_of(model, data["image"])))
  corrected = -(np.linalg.inv(transition)[data["label"]] * log_p).sum(axis=1)
  np.testing.assert_allclose(scores["corrected_loss"], corrected, rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(scores["pushed_back"], (corrected < 0).astype(np.float32))


@pytest.mark.parametrize("variant", ["prl_l", "prl_g"])
def test_prl_scores_and_kept_set_use_the_inference_weights(variant):
  context = TrainingContext(num_classes=K, steps_per_epoch=1, num_train_examples=B, noise_ratio=0.4)
  model = at_step(compiled(Prl(linear_network(), context, Prl.Config(prl_variant=variant, num_gradual=2))), 5)
  data = batch()
  scores = scores_of(model, data)
  x, y = data["image"].astype(np.float64), data["label"]
  residual = softmax(logits_of(model, x)) - np.eye(K)[y]
  if variant == "prl_l":
    expected = (residual ** 2).sum(axis=1)
  else:  # ||dCE/dW||^2 + ||dCE/db||^2 = ||x||^2 ||r||^2 + ||r||^2 for a linear layer
    expected = ((x ** 2).sum(axis=1) + 1.0) * (residual ** 2).sum(axis=1)
  np.testing.assert_allclose(scores["prl_score"], expected, rtol=1e-4)
  kept = np.argsort(np.argsort(expected, kind="stable"), kind="stable") < int(0.6 * B)
  np.testing.assert_array_equal(scores["selected"], kept.astype(np.float32))


@pytest.mark.parametrize("lamda,stage_two", [(-0.5, True), (2.0, True), (-0.5, False)])
def test_absgd_weights_follow_the_current_temperature(lamda, stage_two):
  context = TrainingContext(num_classes=K, steps_per_epoch=1, num_train_examples=B, grad_clip_norm=5.0)
  model = compiled(ABSGD(linear_network(), context, ABSGD.Config(lamda=lamda, init_lamda=200.0, lamda_shots=3)))
  at_step(model, 4 if stage_two else 1)
  model.u.assign(0.7)
  data = batch()
  scores = scores_of(model, data)
  losses = cross_entropy(logits_of(model, data["image"]), data["label"])
  np.testing.assert_allclose(scores["absgd_loss"], losses, rtol=1e-5)
  expected = np.exp(losses / lamda) / 0.7 + 1.0 if stage_two else np.ones(B)
  np.testing.assert_allclose(scores["absgd_weight"], expected, rtol=1e-4)
  assert model.SCORE_SUSPICIOUS_END["absgd_weight"] == ("low" if lamda < 0 else "high")
  assert model.u.numpy() == pytest.approx(0.7)  # scoring reads u, never updates it


def test_sln_scores_the_target_mass_on_the_given_label():
  n = 2 * B
  context = TrainingContext(num_classes=K, steps_per_epoch=1, num_train_examples=n, use_ema=True)
  model = compiled(SLN(linear_network(), context, SLN.Config(sigma=0.5, correction=2)),
                   keras.optimizers.SGD(0.1))
  data = {k: v for k, v in batch().items() if not k.startswith("probe")}
  data["index"] = np.arange(B, dtype=np.int64) + 5  # rows 5..14 of the training set
  before = scores_of(model, data)["target_label_mass"]
  np.testing.assert_array_equal(before, np.ones(B))  # no correction yet: every label is kept whole
  targets = np.random.default_rng(0).dirichlet(np.ones(K), size=n).astype(np.float32)
  model.store_targets(tf.constant(targets), 2)
  after = scores_of(model, data)["target_label_mass"]
  np.testing.assert_allclose(after, targets[data["index"], data["label"]], rtol=1e-6)


def probe_alignment(model, data):
  """eta * <grad L_probe(theta), grad c_i(theta)>: L2R's look-ahead is theta itself without L2."""
  x, y = data["image"].astype(np.float64), data["label"]
  xp, yp = data["probe_image"].astype(np.float64), data["probe_label"]
  residual = softmax(logits_of(model, x)) - np.eye(K)[y]
  probe_residual = softmax(logits_of(model, xp)) - np.eye(K)[yp]
  v_w, v_b = xp.T @ probe_residual / len(yp), probe_residual.mean(axis=0)
  return ETA * (np.einsum("id,dk,ik->i", x, v_w, residual) + residual @ v_b)


@pytest.mark.parametrize("kind", ["reverse", "jvp"])
def test_l2r_scores_are_its_look_ahead_weights(kind):
  context = TrainingContext(num_classes=K, steps_per_epoch=1, num_train_examples=B)
  model = compiled(L2R(linear_network(), context, L2R.Config(meta_grad=kind, meta_stepsize=ETA)),
                   optimizers.TF1Momentum(0.1, 0.9))
  data = batch()
  before = [v.numpy().copy() for v in model.network.trainable_variables]
  scores = scores_of(model, data)
  alignment = probe_alignment(model, data)
  np.testing.assert_allclose(scores["probe_alignment"], alignment, rtol=1e-4, atol=1e-7)
  raw = np.maximum(alignment, 0.0)
  np.testing.assert_allclose(scores["meta_weight"], B * raw / (raw.sum() + 1e-5), rtol=1e-4, atol=1e-6)
  assert (scores["meta_weight"] == 0).any() and (scores["meta_weight"] > 0).any()
  for variable, value in zip(model.network.trainable_variables, before):  # scoring never trains
    np.testing.assert_array_equal(variable.numpy(), value)


def test_ieg_adds_its_label_choice():
  context = TrainingContext(num_classes=K, steps_per_epoch=1, num_train_examples=B)
  model = compiled(IEG(linear_network(), context, IEG.Config(meta_stepsize=ETA, consistency_factor=1.0)),
                   optimizers.TF1Momentum(0.1, 0.9))
  data = batch()
  scores = scores_of(model, data)
  update = model.compute_update({k: tf.constant(v) for k, v in data.items()}, seed=tf.constant([0, 0], tf.int64))
  np.testing.assert_array_equal(scores["label_choice"], update.label_choice.numpy())
  np.testing.assert_allclose(scores["meta_weight"], B * update.weights.numpy(), rtol=1e-5, atol=1e-7)
  assert set(np.unique(scores["label_choice"])) <= {0.0, 1.0}
  assert model.SCORE_SUSPICIOUS_END["label_choice"] == "low"


def test_the_report_pass_gives_the_meta_methods_the_probe_set_in_order():
  """training_scores cycles the probe set in its fixed order, one probe batch per scored batch."""
  rng = np.random.default_rng(0)
  n, num_probe, size = 7, 5, 3
  data = types.SimpleNamespace(
      kind="images", x_train=rng.integers(0, 256, (n, 2, 2, 1), dtype=np.uint8), y_train=rng.integers(0, K, n),
      x_probe=rng.integers(0, 256, (num_probe, 2, 2, 1), dtype=np.uint8), y_probe=rng.integers(0, K, num_probe),
      num_train=n, num_probe=num_probe)

  class ShowsProbe(L2R):
    SCORE_SUSPICIOUS_END = {**L2R.SCORE_SUSPICIOUS_END, "probe_label": "high"}

    def method_scores(self, batch, logits):
      rows = tf.shape(logits)[0]
      return {**super().method_scores(batch, logits), "probe_label": batch["probe_label"][:rows]}

  context = TrainingContext(num_classes=K, steps_per_epoch=1, num_train_examples=n)
  model = compiled(ShowsProbe(linear_network(input_shape=(2, 2, 1)), context), optimizers.TF1Momentum(0.1, 0.9))
  scores = reports.training_scores(model, data, batch_size=size)
  assert {"meta_weight", "probe_alignment"} <= set(scores) and len(scores["meta_weight"]) == n
  # Batch k holds probe rows 3k, 3k+1, 3k+2 (mod 5); each training row shows the probe row at its position.
  expected = np.concatenate([data.y_probe[(np.arange(size) + size * k) % num_probe] for k in range(3)])[:n]
  np.testing.assert_array_equal(scores["probe_label"], expected)
