"""L2R against an explicit numpy computation: per-example gradients and the inner-product formula."""
import numpy as np
import pytest
import tensorflow as tf

from ieg import optimizers
from methods.base import TrainingContext
from methods.l2r import L2R
from tests.methods.toy_models import D, K, linear_network, softmax

B = 8
ETA, WD, LR = 0.1, 1e-2, 0.5


def teacher_batch(seed=0, n=B):
  """Labels from a linear teacher; every other training label is moved to the next class (noise)."""
  rng = np.random.default_rng(seed)
  teacher = rng.normal(size=(D, K))
  x, probe_x = rng.normal(size=(n, D)), rng.normal(size=(n, D))
  y = np.argmax(x @ teacher, axis=1)
  y[::2] = (y[::2] + 1) % K
  return {"image": x.astype(np.float32), "label": y.astype(np.int32), "index": np.arange(n, dtype=np.int64),
          "probe_image": probe_x.astype(np.float32), "probe_label": np.argmax(probe_x @ teacher, 1).astype(np.int32)}


def numpy_l2r(w, b, data):
  """Weights, the gradient of the weighted loss and the probe loss, written out for logits = xW + b."""
  x, y, xp, yp = data["image"], data["label"], data["probe_image"], data["probe_label"]
  onehot, probe_onehot = np.eye(K)[y], np.eye(K)[yp]
  residual = softmax(x @ w + b) - onehot  # dc_i/dz_i
  per_example_w = x[:, :, None] * residual[:, None, :]  # grad_W c_i, [B, D, K]
  per_example_b = residual
  # eps0 = 0: the look-ahead is a pure weight-decay step.
  w1, b1 = w - ETA * WD * w, b - ETA * WD * b
  probe_p = softmax(xp @ w1 + b1)
  meta_loss = -np.log(probe_p[np.arange(len(yp)), yp]).mean() + 0.5 * WD * ((w1 ** 2).sum() + (b1 ** 2).sum())
  v_w = xp.T @ (probe_p - probe_onehot) / len(yp) + WD * w1
  v_b = (probe_p - probe_onehot).mean(axis=0) + WD * b1
  d_eps = -ETA * (np.einsum("idk,dk->i", per_example_w, v_w) + per_example_b @ v_b)
  raw = np.maximum(-d_eps, 0.0)
  weights = raw / (raw.sum() + 1e-5)
  grad_w = np.einsum("i,idk->dk", weights, per_example_w) + WD * w
  grad_b = weights @ per_example_b + WD * b
  return weights, grad_w, grad_b, meta_loss


def make_l2r(kind, network=None, run_eagerly=True):
  context = TrainingContext(num_classes=K, steps_per_epoch=10, num_train_examples=80, weight_decay=WD)
  model = L2R(network or linear_network(), context, L2R.Config(meta_grad=kind, meta_stepsize=ETA))
  model.compile(optimizer=optimizers.TF1Momentum(LR, 0.9), run_eagerly=run_eagerly)
  return model


@pytest.mark.parametrize("kind", ["reverse", "jvp"])
def test_weights_and_update_equal_the_numpy_reference(kind):
  data = teacher_batch()
  model = make_l2r(kind)
  w0, b0 = [v.numpy().astype(np.float64) for v in model.network.trainable_variables]
  weights, grad_w, grad_b, meta_loss = numpy_l2r(w0, b0, {k: v.astype(np.float64) if v.dtype == np.float32 else v
                                                          for k, v in data.items()})
  assert (weights == 0).any() and (weights > 0).any()  # both kept and dropped examples
  update = model.compute_update({k: tf.constant(v) for k, v in data.items()}, seed=tf.constant([0, 0], tf.int64))
  np.testing.assert_allclose(update.weights.numpy(), weights, rtol=1e-4, atol=1e-6)
  logs = model.train_on_batch(data, return_dict=True)  # one real step: weighted CE + L2, TF1 momentum from 0
  np.testing.assert_allclose(model.network.trainable_variables[0].numpy(), w0 - LR * grad_w, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(model.network.trainable_variables[1].numpy(), b0 - LR * grad_b, rtol=1e-4, atol=1e-6)
  assert logs["meta_loss"] == pytest.approx(meta_loss, rel=1e-5)
  assert logs["zero_ratio"] == pytest.approx((weights <= 0).mean())
  assert logs["weight_mean"] == pytest.approx(weights.mean(), rel=1e-4)
  assert logs["weight_std"] == pytest.approx(weights.std(), rel=1e-3)
  assert set(model.SCALAR_TAGS.values()) >= {"loss/meta", "acc/meta", "weights/zeroratio"}


def test_two_replicas_run_one_meta_step_each(two_cpus):
  """Each replica weights its own half (normalised over that half); the update averages the halves."""
  data = teacher_batch(seed=2, n=2 * B)
  reference = make_l2r("jvp")
  w0, b0 = [v.numpy().astype(np.float64) for v in reference.network.trainable_variables]
  halves = [{k: v[i * B:(i + 1) * B].astype(np.float64) if v.dtype == np.float32 else v[i * B:(i + 1) * B]
             for k, v in data.items()} for i in range(2)]
  results = [numpy_l2r(w0, b0, half) for half in halves]
  grad_w = (results[0][1] + results[1][1]) / 2
  grad_b = (results[0][2] + results[1][2]) / 2
  with tf.distribute.MirroredStrategy(two_cpus).scope():
    model = make_l2r("jvp", network=linear_network())
  model.fit(tf.data.Dataset.from_tensors(data).repeat(), steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
  np.testing.assert_allclose(model.network.trainable_variables[0].numpy(), w0 - LR * grad_w, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(model.network.trainable_variables[1].numpy(), b0 - LR * grad_b, rtol=1e-4, atol=1e-6)
  # One global normalisation would differ: the test can tell per-replica from global weights.
  global_weights = numpy_l2r(w0, b0, {k: v.astype(np.float64) if v.dtype == np.float32 else v
                                      for k, v in data.items()})[0]
  assert not np.allclose(np.concatenate([results[0][0], results[1][0]]) / 2, global_weights, atol=1e-4)
