"""--precision: dtypes under each policy, float16 loss scaling inside the custom train steps (against a
numpy gradient), every method under every mixed policy, and the checks that refuse a machine."""
import json
import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import methods
import networks
from core.errors import UserError
from ieg import experiment
from ieg import optimizers
from ieg import precision
from ieg.config import PRECISIONS, RunConfig
from methods.base import Method, TrainingContext, sparse_cross_entropy
from networks.registry import with_float32_logits
from tests.methods import toy_models

MIXED = [p for p in PRECISIONS if p != "float32"]


@pytest.fixture(autouse=True)
def float32_afterwards():
  """The policy is global: no other test may inherit a mixed one."""
  yield
  keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("policy", PRECISIONS)
def test_layers_compute_in_the_policy_dtype_while_variables_logits_and_loss_stay_float32(policy):
  precision.apply_policy(policy)
  compute = keras.mixed_precision.DTypePolicy(policy).compute_dtype
  network = networks.build_network("mnist_cnn", 10, (8, 8, 1))
  conv = next(layer for layer in network.layers if isinstance(layer, keras.layers.Conv2D))
  assert conv.output.dtype == compute
  assert {v.dtype for v in network.weights} == {"float32"}
  images = tf.random.uniform([4, 8, 8, 1], -1, 1)
  logits = network(images)
  assert logits.dtype == tf.float32
  method = methods.method_class("supervised")(network, TrainingContext(num_classes=10, steps_per_epoch=1,
                                                                     num_train_examples=4))
  loss, _ = method.training_loss({"image": images, "label": tf.constant([0, 1, 2, 3])})
  assert loss.dtype == tf.float32


class ScaledLoss(Method):
  """Cross-entropy times `factor`: 1e-9 makes every float16 gradient underflow, 1e4 overflow."""
  factor = 1.0

  def training_loss(self, data):
    logits = self.network(data["image"], training=True)
    return self.factor * tf.reduce_mean(sparse_cross_entropy(data["label"], logits)), logits


LEARNING_RATE = 1e6  # SGD's step is then large enough for the float32 weights to show it


def float16_step(factor: float, loss_scaling: bool):
  """One eager step of plain SGD on the toy linear network computing in float16."""
  keras.mixed_precision.set_global_policy("mixed_float16")
  network = with_float32_logits(toy_models.linear_network(seed=4))
  method = ScaledLoss(network, TrainingContext(num_classes=toy_models.K, steps_per_epoch=1, num_train_examples=8))
  method.factor = factor
  optimizer = optimizers.make_optimizer("momentum", LEARNING_RATE, 0.0, loss_scaling=loss_scaling)
  method.compile(optimizer=optimizer)
  optimizer.build(network.trainable_variables)
  before = [v.numpy() for v in network.trainable_variables]
  batch = toy_models.random_batch(8, seed=5)
  method.train_step(batch)
  after = [v.numpy() for v in network.trainable_variables]
  return method, optimizer, batch, before, after


def numpy_gradient(factor, kernel, bias, batch):
  """d(factor * mean CE)/d(kernel, bias) of the linear network, in float64."""
  x = batch["image"].astype(np.float64)
  probs = toy_models.softmax(x @ kernel + bias)
  probs[np.arange(len(x)), batch["label"]] -= 1.0
  dlogits = factor * probs / len(x)
  return x.T @ dlogits, dlogits.sum(axis=0)


def test_float16_gradients_underflow_without_loss_scaling():
  _, _, _, before, after = float16_step(1e-9, loss_scaling=False)
  for b, a in zip(before, after):
    np.testing.assert_array_equal(a, b)


def test_loss_scaling_recovers_the_float32_gradient_that_float16_would_lose():
  _, optimizer, batch, (kernel, bias), (new_kernel, new_bias) = float16_step(1e-9, loss_scaling=True)
  grad_kernel, grad_bias = numpy_gradient(1e-9, kernel, bias, batch)
  for step, grad in (((kernel - new_kernel) / LEARNING_RATE, grad_kernel), ((bias - new_bias) / LEARNING_RATE, grad_bias)):
    assert np.abs(step).max() > 0
    np.testing.assert_allclose(step, grad, rtol=3e-2, atol=3e-2 * np.abs(grad).max())
  assert int(optimizer.iterations.numpy()) == 1


def test_an_overflowing_step_is_skipped_halves_the_scale_and_still_counts():
  method, optimizer, batch, before, after = float16_step(1e4, loss_scaling=True)
  for b, a in zip(before, after):
    np.testing.assert_array_equal(a, b)
  assert float(optimizer.dynamic_scale.numpy()) == 2.0 ** 14  # Keras starts at 2**15
  assert int(optimizer.iterations.numpy()) == 1
  method.factor = 1.0  # the next, finite step updates at the halved scale
  method.train_step(batch)
  assert int(optimizer.iterations.numpy()) == 2
  assert any(np.abs(v.numpy() - b).max() > 0 for v, b in zip(method.network.trainable_variables, before))


def test_the_cli_settings_resolve_loss_scaling_only_for_float16(tmp_path):
  for policy in PRECISIONS:
    run = experiment.build(run_config(tmp_path / policy, "supervised", policy))
    assert isinstance(run.model.optimizer, keras.optimizers.LossScaleOptimizer) == (policy == "mixed_float16")


# ----- every method under every mixed policy ----------------------------------------------------------
def run_config(root, method, policy, **overrides):
  settings = dict(dataset="digits_uniform_0.2", method=method, network_name="mnist_cnn", batch_size=16,
                  val_batch_size=256, max_iteration=4, eval_freq=4, learning_rate=0.02, lr_schedule="constant",
                  probe_dataset_hold_ratio=0.05, checkpoint_path=str(root), seed=1, precision=policy,
                  distribution_strategy="one_device", aug_type="none")
  return RunConfig(**{**settings, **overrides})


@pytest.mark.parametrize("method", methods.method_names())
def test_every_method_trains_under_every_mixed_policy(tmp_path, method):
  for policy in MIXED:
    run = experiment.build(run_config(tmp_path / policy, method, policy))
    experiment.train(run)
    with open(os.path.join(run.config.run_dir, "results.json"), encoding="utf-8") as f:
      results = json.load(f)
    assert results["step"] == 4
    assert np.isfinite(results["train_loss"]) and np.isfinite(results["eval_loss"])
    assert results["train_images_per_second"] > 0
    variables = run.model.network.trainable_variables
    assert {v.dtype for v in variables} == {"float32"}
    assert all(np.isfinite(v.numpy()).all() for v in variables)


# ----- machines that cannot run a policy ------------------------------------------------------------
def test_an_unknown_policy_is_one_user_error():
  with pytest.raises(UserError, match="--precision=float64 is not known: choose one of float32, mixed_bfloat16"):
    precision.apply_policy("float64")


def test_an_old_gpu_is_refused_with_the_capability_it_needs(monkeypatch):
  monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
  monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: {"compute_capability": (7, 5)})
  with pytest.raises(UserError, match=r"mixed_bfloat16 needs a GPU of compute capability 8\.0 or newer; this one "
                                      r"has 7\.5: use --precision=float32 or mixed_float16"):
    precision.check_supported("mixed_bfloat16")


def test_a_device_without_kernels_of_the_dtype_is_refused(monkeypatch):
  def no_kernel(dtype):
    raise tf.errors.NotFoundError(None, None, "No registered 'Conv2D' OpKernel for 'CPU' devices")
  monkeypatch.setattr(precision, "_run_probe", no_kernel)
  with pytest.raises(UserError, match="this CPU cannot compute in float16 .NotFoundError.: use --precision=float32"):
    precision.check_supported("mixed_float16")


def test_a_cpu_without_bf16_units_gets_a_warning(monkeypatch, caplog):
  monkeypatch.setattr(precision, "_cpu_has_units", lambda name: False)
  with caplog.at_level(logging.WARNING):
    precision.check_supported("mixed_bfloat16")
  assert "this CPU has no bfloat16 units (avx512_bf16 or amx_bf16)" in caplog.text


# ----- the meta-gradient (L2R, JVP and reverse) under float16 --------------------------------------------
def float16_l2r(kind: str, initial_scale: float):
  from tests.methods import test_l2r  # pylint: disable=import-outside-toplevel
  keras.mixed_precision.set_global_policy("mixed_float16")
  model = test_l2r.make_l2r(kind, network=with_float32_logits(toy_models.linear_network()))
  optimizer = optimizers.LossScaled(optimizers.TF1Momentum(test_l2r.LR, 0.9), initial_scale=initial_scale)
  model.compile(optimizer=optimizer, run_eagerly=True)
  optimizer.build(model.network.trainable_variables)
  return test_l2r, model, optimizer


@pytest.mark.parametrize("kind", ["reverse", "jvp"])
def test_float16_meta_weights_and_update_follow_the_float64_reference(kind):
  test_l2r, model, _ = float16_l2r(kind, 2.0 ** 10)
  data = test_l2r.teacher_batch()
  w0, b0 = [v.numpy().astype(np.float64) for v in model.network.trainable_variables]
  weights, grad_w, grad_b, _ = test_l2r.numpy_l2r(w0, b0, {k: v.astype(np.float64) if v.dtype == np.float32 else v
                                                           for k, v in data.items()})
  update = model.compute_update({k: tf.constant(v) for k, v in data.items()}, seed=tf.constant([0, 0], tf.int64))
  np.testing.assert_allclose(update.weights.numpy(), weights, rtol=5e-2, atol=5e-3)
  model.train_on_batch(data)
  kernel, bias = (v.numpy() for v in model.network.trainable_variables)
  np.testing.assert_allclose(kernel, w0 - test_l2r.LR * grad_w, rtol=5e-2, atol=5e-3)
  np.testing.assert_allclose(bias, b0 - test_l2r.LR * grad_b, rtol=5e-2, atol=5e-3)


@pytest.mark.parametrize("kind", ["reverse", "jvp"])
def test_an_overflowing_meta_step_is_skipped_with_a_finite_loss(kind):
  test_l2r, model, optimizer = float16_l2r(kind, 2.0 ** 40)  # the scaled probe gradient overflows float16
  before = [v.numpy() for v in model.network.trainable_variables]
  logs = model.train_on_batch(test_l2r.teacher_batch(), return_dict=True)
  assert np.isfinite(logs["loss"])
  for b, v in zip(before, model.network.trainable_variables):
    np.testing.assert_array_equal(v.numpy(), b)
  assert float(optimizer.dynamic_scale.numpy()) == 2.0 ** 39
  assert int(optimizer.iterations.numpy()) == 1
  # The skipped step's meta statistics are not averaged in (they would read as zeros).
  assert model.extra_metrics and all(float(m.count.numpy()) == 0.0 for m in model.extra_metrics.values())
  model.optimizer.dynamic_scale.assign(1.0)   # a scale that fits: the next step counts
  model.train_on_batch(test_l2r.teacher_batch())
  assert all(float(m.count.numpy()) == 1.0 for m in model.extra_metrics.values())
