"""PRL-L, co-PRL-L, PRL-G and co-PRL-G against numpy references and per-example loops."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from core.errors import UserError
from ieg import optimizers
from ieg.run import checkpoints
from methods import prl
from methods.base import TrainingContext
from tests.methods.toy_models import D, K, linear_network, softmax

B = 12
LR = 0.1


def group_norm_network(seed=0):
  """Conv -> GroupNorm -> ReLU -> Dense: no layer couples the examples of a batch."""
  keras.utils.set_random_seed(seed)
  inputs = keras.Input((5, 5, 2))
  x = keras.layers.Conv2D(4, 3)(inputs)
  x = keras.layers.GroupNormalization(groups=2)(x)
  x = keras.layers.ReLU()(keras.layers.Flatten()(x))
  return keras.Model(inputs, keras.layers.Dense(K)(x))


def batch_norm_network():
  inputs = keras.Input((D,))
  return keras.Model(inputs, keras.layers.Dense(K)(keras.layers.BatchNormalization()(inputs)))


def batch(seed=1, n=B, shape=(D,)):
  rng = np.random.default_rng(seed)
  return {"image": rng.normal(size=(n, *shape)).astype(np.float32), "label": rng.integers(0, K, n).astype(np.int32),
          "index": np.arange(n, dtype=np.int64)}


def make_prl(network, make_network=linear_network, steps_per_epoch=1, corrupted=None, optimizer=None, **options):
  peers = iter(range(100, 200))
  context = TrainingContext(num_classes=K, steps_per_epoch=steps_per_epoch, num_train_examples=64, noise_ratio=0.5,
                            make_network=lambda: make_network(seed=next(peers)), corrupted=corrupted)
  model = prl.Prl(network, context, prl.Prl.Config(**options))
  model.compile(optimizer=optimizer or optimizers.TF1Momentum(LR, momentum=0.0))
  model.optimizer.build(model.network.trainable_variables)
  return model


def official_schedule(rate, num_gradual, epoch, n_epoch=200):
  schedule = np.ones(n_epoch) * rate
  schedule[:num_gradual] = np.linspace(0, rate, num_gradual)
  return schedule[epoch + 1]


def prl_l_kept(z, y, forget_rate):
  """loss_prl_l: mse_loss(softmax, onehot, 'none').sum(1), sorted, first int((1 - rate) n)."""
  scores = ((softmax(z) - np.eye(K)[y]) ** 2).sum(1)
  return np.argsort(scores, kind="stable")[:int((1 - forget_rate) * len(y))], scores


def linear_update(w, b, x, y, kept, denominator):
  """W, b after one SGD step on sum(CE over kept) / denominator."""
  dz = softmax(x[kept] @ w + b)
  dz[np.arange(len(kept)), y[kept]] -= 1.0
  return w - LR * x[kept].T @ dz / denominator, b - LR * dz.sum(0) / denominator


def weights(network):
  return [v.numpy().astype(np.float64) for v in network.trainable_variables]


def test_scores_are_the_squared_loss_layer_gradient_norms():
  network = linear_network()
  data = batch()
  scores, logits = prl.loss_layer_scores(network, tf.constant(data["image"]), tf.constant(data["label"]))
  with tf.GradientTape() as tape:
    z = tf.constant(logits)
    tape.watch(z)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=data["label"], logits=z)
  per_example = tape.gradient(ce, z).numpy()  # rows are the per-example logit gradients
  np.testing.assert_allclose(scores.numpy(), (per_example ** 2).sum(1), rtol=1e-5)
  np.testing.assert_allclose(scores.numpy(), prl_l_kept(logits.numpy(), data["label"], 0.0)[1], rtol=1e-5)


@pytest.mark.parametrize("divide_by_kept", [False, True])
def test_prl_l_step_updates_on_the_kept_set(divide_by_kept):
  model = make_prl(linear_network(), prl_variant="prl_l", num_gradual=3, prl_divide_by_kept=divide_by_kept)
  w0, b0 = weights(model.network)
  data = batch()
  for epoch in (0, 3):
    for v, value in zip(model.network.trainable_variables, (w0, b0)):
      v.assign(value.astype(np.float32))
    model.optimizer.iterations.assign(epoch)
    model.train_on_batch(data)
    kept, _ = prl_l_kept(data["image"] @ w0 + b0, data["label"], official_schedule(0.5, 3, epoch))
    assert len(kept) == (9 if epoch == 0 else 6)
    w, b = linear_update(w0, b0, data["image"], data["label"], kept, len(kept) ** (2 if divide_by_kept else 1))
    np.testing.assert_allclose(model.network.trainable_variables[0].numpy(), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.network.trainable_variables[1].numpy(), b, rtol=1e-5, atol=1e-6)


def test_co_prl_l_networks_learn_from_each_others_kept_sets():
  model = make_prl(linear_network(), prl_variant="co_prl_l", forget_rate=0.4, num_gradual=0)
  (w1, b1), (w2, b2) = weights(model.network), weights(model.peer_network)
  assert not np.allclose(w1, w2)
  data = batch()
  logs = model.train_on_batch(data, return_dict=True)
  kept1, _ = prl_l_kept(data["image"] @ w1 + b1, data["label"], 0.4)
  kept2, _ = prl_l_kept(data["image"] @ w2 + b2, data["label"], 0.4)
  assert set(kept1) != set(kept2)  # the exchange is visible
  for network, (w, b), kept in [(model.network, (w1, b1), kept2), (model.peer_network, (w2, b2), kept1)]:
    w_new, b_new = linear_update(w, b, data["image"], data["label"], kept, len(kept))
    np.testing.assert_allclose(network.trainable_variables[0].numpy(), w_new, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(network.trainable_variables[1].numpy(), b_new, rtol=1e-5, atol=1e-6)
  assert int(model.optimizer.iterations) == int(model.peer_optimizer.iterations) == 1
  assert logs["forget_rate"] == pytest.approx(0.4)


def per_example_gradient_norms_by_loop(network, images, labels):
  norms = []
  for i in range(len(labels)):
    with tf.GradientTape() as tape:
      logits = network(images[i:i + 1], training=True)
      loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels[i:i + 1], logits=logits)
    grads = tape.gradient(loss, network.trainable_variables)
    norms.append(sum(float(tf.reduce_sum(tf.square(g))) for g in grads))
  return np.array(norms)


def test_prl_g_norms_equal_a_per_example_loop_and_select_on_them():
  data = batch(n=8, shape=(5, 5, 2))
  model = make_prl(group_norm_network(), make_network=group_norm_network, prl_variant="prl_g", forget_rate=0.5,
                   num_gradual=0)
  network = model.network
  before = [v.numpy() for v in network.trainable_variables]
  norms, _ = prl.gradient_norm_scores(network, tf.constant(data["image"]), tf.constant(data["label"]))
  loop = per_example_gradient_norms_by_loop(network, data["image"], data["label"])
  np.testing.assert_allclose(norms.numpy(), loop, rtol=1e-4)
  # One step: mean CE over the half with the smallest norms.
  kept = np.argsort(loop, kind="stable")[:4]
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=data["label"][kept], logits=network(data["image"][kept], training=True)))
  grads = tape.gradient(loss, network.trainable_variables)
  model.train_on_batch(data)
  for v, b, g in zip(network.trainable_variables, before, grads):
    np.testing.assert_allclose(v.numpy(), b - LR * g.numpy(), rtol=1e-4, atol=1e-6)


def test_gradient_variants_refuse_batch_norm():
  with pytest.raises(UserError, match="BatchNorm"):
    make_prl(batch_norm_network(), prl_variant="co_prl_g")
  with pytest.raises(UserError, match="--prl_variant=magic"):
    make_prl(linear_network(), prl_variant="magic")


def test_update_never_sees_the_clean_labels():
  data = batch()
  results = []
  for corrupted in (np.zeros(64, bool), np.arange(64) % 2 == 1):
    model = make_prl(linear_network(), corrupted=corrupted, prl_variant="co_prl_l", forget_rate=0.4, num_gradual=0)
    for _ in range(2):
      logs = model.train_on_batch(data, return_dict=True)
    results.append(([v.numpy() for v in model.trainable_variables], logs["label_precision"]))
  for a, b in zip(results[0][0], results[1][0]):
    np.testing.assert_array_equal(a, b)
  assert results[0][1] == 1.0 and results[1][1] < 1.0


def test_co_prl_state_survives_a_checkpoint_round_trip(tmp_path):
  data = batch()
  adam = lambda: optimizers.make_optimizer("adam", 0.01, 0.9)  # noqa: E731  (slots make the state visible)
  model = make_prl(linear_network(), optimizer=adam(), steps_per_epoch=2, prl_variant="co_prl_l", num_gradual=4)
  for _ in range(3):
    model.train_on_batch(data)
  store = checkpoints.CheckpointStore(str(tmp_path), model.checkpoint_variables())
  store.save(3)
  restored = make_prl(linear_network(seed=5), optimizer=adam(), steps_per_epoch=2, prl_variant="co_prl_l",
                      num_gradual=4)
  assert "peer_optimizer" in restored.checkpoint_variables()
  checkpoints.CheckpointStore(str(tmp_path), restored.checkpoint_variables()).restore()
  for a, b in zip(model.peer_optimizer.variables, restored.peer_optimizer.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert int(restored.data_epoch()) == 1
  logs = [m.train_on_batch(data, return_dict=True) for m in (model, restored)]
  assert logs[0]["forget_rate"] == logs[1]["forget_rate"] == pytest.approx(official_schedule(0.5, 4, 1))
  for a, b in zip(model.trainable_variables, restored.trainable_variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_co_prl_on_two_replicas_equals_one(two_cpus):
  data = batch(n=16)
  dataset = tf.data.Dataset.from_tensors(data).repeat()
  trained = {}
  for name, strategy in [("one", tf.distribute.OneDeviceStrategy(two_cpus[0])),
                         ("two", tf.distribute.MirroredStrategy(two_cpus))]:
    with strategy.scope():
      model = make_prl(linear_network(), corrupted=np.arange(64) % 3 == 0, prl_variant="co_prl_l",
                       forget_rate=0.75, num_gradual=0)
    model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)
    trained[name] = [v.numpy() for v in model.trainable_variables]
  for a, b in zip(trained["one"], trained["two"]):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_presets_cover_the_paper_rows():  # validity of each: tests/test_presets.py
  presets = prl.Prl.PRESETS
  assert {"prl_cifar10_pair45", "prl_g_cifar10_pair45", "prl_mnist_sym50"} <= set(presets)
  assert presets["prl_g_cifar10_sym50"]["network_name"] == "resnet32_gn"
