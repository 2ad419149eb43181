"""The shared look-ahead step: both meta-gradient implementations against finite differences, and each other."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from core.errors import UserError
from ieg import optimizers
from methods import meta
from methods.base import TrainingContext
from methods.ieg import IEG
from methods.l2r import L2R

D, H, K, B = 3, 4, 3, 5
ETA, WD = 0.5, 0.05


def random_momentum(rng, variables):
  return [0.9 * rng.normal(size=v.shape) for v in variables]


def mlp_problem(eps0, lam0, momentum=None, vanishing=False, seed=0):
  """A float64 look-ahead problem whose examples are coupled through batch normalisation.

  Per-example loss: CE(lam * onehot + (1 - lam) * softmax(f(x2)), f(x)), i.e. the target also
  depends on theta through a second view, like IEG's label guess.
  """
  rng = np.random.default_rng(seed)
  x, x2, xp = (tf.constant(rng.normal(size=(B, D))) for _ in range(3))
  y = tf.one_hot(rng.integers(0, K, B), K, dtype=tf.float64)
  yp = tf.one_hot(np.arange(B) % K, K, dtype=tf.float64)
  variables = [tf.Variable(rng.normal(size=s) * 0.7) for s in [(D, H), (H,), (H, K), (K,)]]

  def net(params, inputs):
    w1, b1, w2, b2 = params
    h = tf.tanh(inputs @ w1 + b1)
    mean, var = tf.nn.moments(h, axes=[0])
    return ((h - mean) / tf.sqrt(var + 1e-3)) @ w2 + b2

  def forward(params):
    return {"logits": net(params, x), "second": net(params, x2)}

  def batch_loss(outputs, coefficients):
    eps, lam = coefficients
    targets = lam[:, None] * y + (1.0 - lam[:, None]) * tf.nn.softmax(outputs["second"])
    return tf.reduce_sum(eps * -tf.reduce_sum(targets * tf.nn.log_softmax(outputs["logits"]), axis=-1))

  def regularizer(params):
    return 0.5 * WD * tf.add_n([tf.reduce_sum(p * p) for p in params])

  def probe_loss(params):
    logits = net(params, xp)
    return tf.reduce_mean(-tf.reduce_sum(yp * tf.nn.log_softmax(logits), axis=-1)) + regularizer(params), logits

  coefficients = [tf.constant(eps0, tf.float64), tf.constant(lam0, tf.float64)]
  terms = None if momentum is None else [tf.constant(m) for m in momentum(rng, variables)]
  problem = meta.LookaheadProblem(forward, batch_loss, regularizer, probe_loss, coefficients, ETA, terms, vanishing)
  return variables, problem


def probe_loss_after_lookahead(variables, problem, coefficients):
  """L_probe(theta'(c)) with theta' built from a first-order tape: the quantity being differentiated."""
  return float(probe_loss_after_lookahead_tensor(variables, problem, coefficients))


def probe_loss_after_lookahead_tensor(variables, problem, coefficients):
  params = [tf.convert_to_tensor(v) for v in variables]
  with tf.GradientTape() as tape:
    tape.watch(params)
    loss = problem.batch_loss(problem.forward(params), coefficients) + problem.regularizer(params)
  grads = tape.gradient(loss, params)
  terms = problem.momentum_terms or [0.0] * len(params)
  lookahead = [p - ETA * (m + g) for p, g, m in zip(params, grads, terms)]
  return problem.probe_loss(lookahead)[0]


def finite_difference_meta_gradient(variables, problem, h=1e-5):
  probe_loss_at = tf.function(lambda coefficients: probe_loss_after_lookahead_tensor(variables, problem, coefficients))
  result = []
  for k, base in enumerate(problem.coefficients):
    column = []
    for i in range(B):
      shifted = []
      for sign in (1.0, -1.0):
        coefficients = list(problem.coefficients)
        coefficients[k] = base + sign * h * tf.one_hot(i, B, dtype=tf.float64)
        shifted.append(float(probe_loss_at(coefficients)))
      column.append((shifted[0] - shifted[1]) / (2 * h))
    result.append(np.array(column))
  return result


@pytest.fixture(scope="module", params=[None, random_momentum], ids=["sgd", "momentum"])
def finite_difference_case(request):
  variables, problem = mlp_problem(eps0=[1.0 / B] * B, lam0=[0.9, 0.2, 0.5, 0.7, 1.0], momentum=request.param)
  return variables, problem, finite_difference_meta_gradient(variables, problem)


@pytest.mark.parametrize("kind", ["reverse", "jvp"])
def test_meta_gradient_equals_finite_differences(kind, finite_difference_case):
  variables, problem, expected = finite_difference_case
  result = meta.meta_step(kind, variables, problem)
  for got, want in zip(result.coefficient_gradients, expected):
    assert np.abs(want).max() > 1e-3  # the test would be void on a flat problem
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-9)
  assert float(result.meta_loss) == pytest.approx(
      probe_loss_after_lookahead(variables, problem, problem.coefficients), rel=1e-12)


def test_vanishing_batch_gradient_shortcut_matches_the_general_paths():
  """L2R's eps0 = 0: the single-forward jvp path gives what the general paths give."""
  results = {}
  for name, kind, vanishing in [("reverse", "reverse", False), ("jvp", "jvp", False), ("shortcut", "jvp", True)]:
    variables, problem = mlp_problem(eps0=[0.0] * B, lam0=[1.0] * B, vanishing=vanishing)
    result = meta.meta_step(kind, variables, problem)
    results[name] = result.coefficient_gradients[0].numpy()
    logits = result.outputs["logits"]
    with result.tape:
      loss = tf.reduce_sum(logits ** 2)
    assert all(g is not None for g in result.tape.gradient(loss, result.params))  # the tape recorded the forward
  assert np.abs(results["reverse"]).max() > 1e-3
  for name in ("jvp", "shortcut"):
    np.testing.assert_allclose(results[name], results["reverse"], rtol=1e-9, atol=1e-12)


def test_normalized_weights():
  gradient = tf.constant([-0.3, 0.2, -0.1, 0.0])
  np.testing.assert_allclose(meta.normalized_weights(gradient).numpy(), np.array([0.3, 0, 0.1, 0]) / (0.4 + 1e-5),
                             rtol=1e-6)
  np.testing.assert_array_equal(meta.normalized_weights(tf.constant([0.1, 0.2])).numpy(), [0.0, 0.0])


def test_unknown_meta_grad_is_a_user_error():
  with pytest.raises(UserError, match="--meta_grad=forward"):
    meta.check_meta_grad("forward")
  context = TrainingContext(num_classes=K, steps_per_epoch=1, num_train_examples=10)
  with pytest.raises(UserError, match="--meta_grad=magic"):
    L2R(keras.Sequential([keras.Input((D,)), keras.layers.Dense(K)]), context, L2R.Config(meta_grad="magic"))
  with pytest.raises(UserError, match="--meta_stepsize"):
    L2R(keras.Sequential([keras.Input((D,)), keras.layers.Dense(K)]), context, L2R.Config(meta_stepsize=0.0))


def bn_network(seed=0, side=6):
  keras.utils.set_random_seed(seed)
  inputs = keras.Input((side, side, 2))
  x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
  x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
  x = keras.layers.ReLU()(x)
  x = keras.layers.GlobalAveragePooling2D()(x)
  return keras.Model(inputs, keras.layers.Dense(K)(x))


def image_batch(seed=0, n=8, side=6):
  """Weak, strong and probe images drawn around different means, so their batch statistics differ."""
  rng = np.random.default_rng(seed)
  images = lambda shift: tf.constant((rng.normal(size=(n, side, side, 2)) + shift).astype(np.float32))  # noqa: E731
  return {"image": images(0.0), "image_strong": images(1.0), "label": tf.constant(rng.integers(0, K, n).astype(np.int32)),
          "index": tf.range(n, dtype=tf.int64), "probe_image": images(-1.0),
          "probe_label": tf.constant((np.arange(n) % K).astype(np.int32))}


@pytest.mark.parametrize("cls", [L2R, IEG])
def test_reverse_and_jvp_agree_on_a_batchnorm_network(cls):
  """Same weights, label choices and gradients with BN coupling the batch and a non-zero momentum."""
  data = image_batch()
  updates = {}
  for kind in ("reverse", "jvp"):
    context = TrainingContext(num_classes=K, steps_per_epoch=10, num_train_examples=80, weight_decay=1e-3, seed=3)
    model = cls(bn_network(), context, cls.Config(meta_grad=kind))
    model.compile(optimizer=optimizers.TF1Momentum(0.1, 0.9))
    rng = np.random.default_rng(1)
    for acc in model.optimizer.accumulators:
      acc.assign(rng.normal(size=acc.shape).astype(np.float32))
    updates[kind] = model.compute_update(data, tf.constant([4, 5], tf.int64))
  reverse, jvp = updates["reverse"], updates["jvp"]
  assert float(tf.reduce_max(reverse.weights)) > 0
  np.testing.assert_allclose(jvp.weights.numpy(), reverse.weights.numpy(), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(float(jvp.loss), float(reverse.loss), rtol=1e-5)
  for a, b in zip(jvp.grads, reverse.grads):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
