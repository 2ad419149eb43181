"""Networks: exact sizes against hand counts, wiring against numpy, Keras conventions."""
from __future__ import annotations

import functools

import keras
import numpy as np
import pytest

import networks
from core.errors import UserError
from networks import layers as net_layers
from networks import wrn

CIFAR = (32, 32, 3)
MNIST = (28, 28, 1)
IMAGENET = (224, 224, 3)

# name -> (standard input, a small input the architecture accepts, for fast forward passes)
INPUTS = {
    "wrn28-10": (CIFAR, (8, 8, 3)),
    "wrn28-2": (CIFAR, (8, 8, 3)),
    "resnet29": (CIFAR, (8, 8, 3)),
    "resnet32": (CIFAR, (8, 8, 3)),
    "resnet32_gn": (CIFAR, (8, 8, 3)),
    "resnet50": (IMAGENET, (32, 32, 3)),
    "cnn9": (CIFAR, MNIST),
    "cnn9_gn": (CIFAR, MNIST),
    "mnist_cnn": (MNIST, MNIST),
}


@functools.lru_cache(maxsize=None)
def built(name: str, num_classes: int, input_shape: tuple[int, int, int]) -> keras.Model:
  """Each (name, K, shape) is built once per session: building is the slow part."""
  return networks.build_network(name, num_classes, input_shape)


def trainable_count(model: keras.Model) -> int:
  return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


# ---------------------------------------------------------------- hand counts (trainable params)


def bn(channels: int) -> int:
  return 2 * channels  # gamma and beta; the moving statistics are not trainable


def conv(k: int, c_in: int, c_out: int, bias: bool = False) -> int:
  return k * k * c_in * c_out + (c_out if bias else 0)


def dense(n_in: int, n_out: int) -> int:
  return n_in * n_out + n_out


def hand_mnist_cnn(k: int, side: int = 28) -> int:
  pooled = (side - 4) // 2
  return (conv(3, 1, 32, True) + conv(3, 32, 64, True) + dense(pooled * pooled * 64, 128)
          + dense(128, k))


def hand_cnn9(k: int, channels: int) -> int:
  widths = [channels, 128, 128, 128, 256, 256, 256, 512, 256, 128]
  convs = sum(conv(3, a, b, True) + bn(b) for a, b in zip(widths, widths[1:]))
  return convs + dense(128, k)


def hand_resnet32(k: int) -> int:
  total = conv(3, 3, 16) + bn(16)
  c_in = 16
  for width in (16, 32, 64):
    for _ in range(5):  # option-A shortcuts have no weights
      total += conv(3, c_in, width) + bn(width) + conv(3, width, width) + bn(width)
      c_in = width
  return total + dense(64, k)


def hand_wrn28_10(k: int) -> int:
  total = conv(3, 3, 16)
  c_in = 16
  for width in (160, 320, 640):
    for _ in range(4):
      total += bn(c_in) + conv(3, c_in, width) + bn(width) + conv(3, width, width)
      c_in = width
  return total + bn(640) + dense(640, k)


def hand_wrn28_2(k: int) -> int:
  total = conv(3, 3, 16, True)
  c_in = 16
  for width in (32, 64, 128):
    for block in range(4):
      total += bn(c_in) + conv(3, c_in, width, True) + bn(width) + conv(3, width, width, True)
      if block == 0:
        total += conv(1, c_in, width, True)
      c_in = width
  return total + bn(128) + dense(128, k)


def hand_resnet29(k: int) -> int:
  total = conv(3, 3, 16) + bn(16)
  c_in = 16
  for stage, (inner, outer) in enumerate(((16, 64), (64, 128), (128, 256))):
    for block in range(3):
      total += (0 if stage == block == 0 else bn(c_in)) + conv(1, c_in, inner)
      total += bn(inner) + conv(3, inner, inner) + bn(inner) + conv(1, inner, outer)
      if block == 0:
        total += conv(1, c_in, outer)
      c_in = outer
  return total + bn(256) + dense(256, k)


def hand_resnet50(k: int) -> int:
  total = conv(7, 3, 64)
  c_in = 64
  for width, blocks in zip((64, 128, 256, 512), (3, 4, 6, 3)):
    for block in range(blocks):
      total += bn(c_in) + conv(1, c_in, width) + bn(width) + conv(3, width, width)
      total += bn(width) + conv(1, width, 4 * width)
      if block == 0:
        total += conv(1, c_in, 4 * width)
      c_in = 4 * width
  return total + bn(2048) + dense(2048, k)


# (name, K, input) -> (pinned trainable params, pinned model.count_params(), hand count or None)
PINNED = {
    ("wrn28-10", 10, CIFAR): (36_220_634, 36_238_586, hand_wrn28_10(10)),
    ("wrn28-10", 100, CIFAR): (36_278_324, 36_296_276, hand_wrn28_10(100)),
    ("wrn28-2", 10, CIFAR): (1_469_642, 1_473_258, hand_wrn28_2(10)),
    ("wrn28-2", 100, CIFAR): (1_481_252, 1_484_868, hand_wrn28_2(100)),
    ("resnet29", 10, CIFAR): (840_730, 845_946, hand_resnet29(10)),
    ("resnet29", 100, CIFAR): (863_860, 869_076, hand_resnet29(100)),
    ("resnet32", 10, CIFAR): (464_154, 466_426, hand_resnet32(10)),
    ("resnet32", 100, CIFAR): (470_004, 472_276, hand_resnet32(100)),
    ("resnet32_gn", 10, CIFAR): (464_154, 464_154, hand_resnet32(10)),
    ("resnet32_gn", 100, CIFAR): (470_004, 470_004, hand_resnet32(100)),
    ("resnet50", 1000, IMAGENET): (25_549_352, 25_594_792, hand_resnet50(1000)),
    ("resnet50", 50, IMAGENET): (23_602_802, 23_648_242, hand_resnet50(50)),
    ("cnn9", 10, CIFAR): (4_434_570, 4_438_666, hand_cnn9(10, 3)),
    ("cnn9", 100, CIFAR): (4_446_180, 4_450_276, hand_cnn9(100, 3)),
    ("cnn9", 10, MNIST): (4_432_266, 4_436_362, hand_cnn9(10, 1)),
    ("cnn9_gn", 10, CIFAR): (4_434_570, 4_434_570, hand_cnn9(10, 3)),
    ("mnist_cnn", 10, MNIST): (1_199_882, 1_199_882, hand_mnist_cnn(10)),
}


def test_hand_formula_of_the_mnist_cnn_matches_the_brief():
  assert hand_mnist_cnn(10) == 320 + 18_496 + 1_179_776 + 1_290 == 1_199_882


@pytest.mark.parametrize("key", sorted(PINNED), ids=lambda key: f"{key[0]}-K{key[1]}-{key[2][0]}px")
def test_parameter_counts(key):
  name, num_classes, shape = key
  pinned_trainable, pinned_total, hand = PINNED[key]
  model = built(name, num_classes, shape)
  assert trainable_count(model) == pinned_trainable == hand
  assert model.count_params() == pinned_total


def test_wrn28_10_has_the_variable_layout_of_the_original():
  # The TF1 code logs 77 trainable variables and 50 BN update ops (25 BN layers x 2 statistics).
  model = built("wrn28-10", 10, CIFAR)
  assert len(model.trainable_weights) == 77
  assert len(model.non_trainable_weights) == 50


# ---------------------------------------------------------------- registry


def test_registry_lists_every_network_with_its_reference_weight_decay():
  expected = {"wrn28-10": 5e-4, "wrn28-2": 5e-4, "resnet29": 1e-4, "resnet32": 5e-4,
              "resnet32_gn": 5e-4, "resnet50": 4e-4, "cnn9": 0.0, "cnn9_gn": 0.0,
              "mnist_cnn": 0.0, "textcnn": 0.0}
  assert networks.network_names() == sorted(expected)
  assert {name: networks.default_weight_decay(name) for name in expected} == expected


def test_unknown_name_is_a_user_error_listing_the_valid_names():
  with pytest.raises(UserError) as error:
    networks.build_network("wrn99-1", 10, CIFAR)
  message = str(error.value)
  assert "wrn99-1" in message and "\n" not in message
  assert all(name in message for name in networks.network_names())
  with pytest.raises(UserError, match="resnet32"):
    networks.default_weight_decay("resnet-32")


@pytest.mark.parametrize("name, shape", [("cnn9", (24, 24, 3)), ("wrn28-10", (30, 30, 3))])
def test_inputs_the_architecture_cannot_take_are_user_errors(name, shape):
  with pytest.raises(UserError, match=r"\(\d+, \d+\)"):
    networks.build_network(name, 10, shape)


def test_registering_a_name_twice_is_refused():
  with pytest.raises(ValueError, match="twice"):
    networks.register_network("cnn9", weight_decay=0.0)(lambda k, shape: None)


# ---------------------------------------------------------------- forward behaviour


def small_batch(shape, batch: int = 2, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).uniform(-1, 1, size=(batch, *shape)).astype(np.float32)


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_forward_gives_float32_logits_and_stateless_call_agrees(name):
  shape = INPUTS[name][1]
  model = built(name, 7, shape)
  x = small_batch(shape)
  logits = model(x, training=False)
  assert tuple(logits.shape) == (2, 7)
  assert logits.dtype == "float32"
  assert np.all(np.isfinite(keras.ops.convert_to_numpy(logits)))
  # The meta-learning methods run the network functionally on substituted weights.
  stateless_logits, _ = model.stateless_call(
      [v.value for v in model.trainable_variables],
      [v.value for v in model.non_trainable_variables], x, training=False)
  np.testing.assert_allclose(keras.ops.convert_to_numpy(stateless_logits),
                             keras.ops.convert_to_numpy(logits), rtol=1e-5, atol=1e-5)


def test_stateless_training_call_returns_bn_updates_without_applying_them():
  model = built("resnet32", 3, (8, 8, 3))
  before = [keras.ops.convert_to_numpy(v) for v in model.non_trainable_variables]
  _, updated = model.stateless_call(
      [v.value for v in model.trainable_variables],
      [v.value for v in model.non_trainable_variables], small_batch((8, 8, 3)), training=True)
  after = [keras.ops.convert_to_numpy(v) for v in model.non_trainable_variables]
  assert all(np.array_equal(a, b) for a, b in zip(before, after))
  assert any(not np.allclose(keras.ops.convert_to_numpy(u), b) for u, b in zip(updated, before))


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_no_regularisation_losses(name):
  assert built(name, 7, INPUTS[name][1]).losses == []


def test_cnn9_drops_channels_in_training_only():
  model = built("cnn9", 7, MNIST)
  x = small_batch(MNIST)
  eval_runs = [keras.ops.convert_to_numpy(model(x, training=False)) for _ in range(2)]
  np.testing.assert_array_equal(*eval_runs)
  train_runs = [keras.ops.convert_to_numpy(model(x, training=True)) for _ in range(2)]
  assert not np.allclose(*train_runs)


def test_clone_model_rebuilds_the_custom_layers():
  # EMA copies and second networks (co-teaching style) are made with clone_model.
  model = built("resnet32", 7, (8, 8, 3))
  clone = keras.models.clone_model(model)
  clone.set_weights(model.get_weights())
  x = small_batch((8, 8, 3))
  np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(x, training=False)),
                             keras.ops.convert_to_numpy(model(x, training=False)), atol=1e-6)


# ---------------------------------------------------------------- normalisation conventions


def norm_layers(model, kind):
  return [layer for layer in model.layers if isinstance(layer, kind)]


@pytest.mark.parametrize("name", ["wrn28-10", "wrn28-2", "resnet29", "resnet32", "resnet50",
                                  "cnn9"])
def test_batch_norm_uses_the_reference_constants(name):
  model = built(name, 7, INPUTS[name][1])
  layers = norm_layers(model, keras.layers.BatchNormalization)
  assert layers and networks.has_batch_norm(model)
  # PyTorch momentum 0.1 == Keras 0.9; ResNet-50 uses TF-official 0.997; SLN's last BN passes
  # PyTorch momentum=0.9, i.e. Keras 0.1.
  exceptions = {("wrn28-2", "final_bn"): 0.1}
  default = 0.997 if name == "resnet50" else 0.9
  for layer in layers:
    assert layer.momentum == pytest.approx(exceptions.get((name, layer.name), default))
    assert layer.epsilon == pytest.approx(1e-5)


@pytest.mark.parametrize("name, groups", [("resnet32_gn", 8), ("cnn9_gn", 32)])
def test_group_norm_variants_have_no_batch_norm(name, groups):
  model = built(name, 7, INPUTS[name][1])
  assert not networks.has_batch_norm(model)
  layers = norm_layers(model, keras.layers.GroupNormalization)
  assert len(layers) == (31 if name == "resnet32_gn" else 9)
  assert all(l.groups == groups and l.epsilon == pytest.approx(1e-5) for l in layers)


def test_has_batch_norm_looks_inside_nested_models():
  inner = built("resnet32", 7, (8, 8, 3))
  outer_input = keras.Input((8, 8, 3))
  outer = keras.Model(outer_input, inner(outer_input))
  assert networks.has_batch_norm(outer)
  assert not networks.has_batch_norm(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


# ---------------------------------------------------------------- wiring against numpy


def numpy_conv(x, kernel, stride=1, pad=(1, 1)):
  """Cross-correlation with explicit (before, after) zero padding, as PyTorch pads."""
  k = kernel.shape[0]
  xp = np.pad(x, [(0, 0), pad, pad, (0, 0)])
  out_h = (xp.shape[1] - k) // stride + 1
  out_w = (xp.shape[2] - k) // stride + 1
  out = np.zeros((x.shape[0], out_h, out_w, kernel.shape[-1]), np.float64)
  for di in range(k):
    for dj in range(k):
      patch = xp[:, di:di + stride * out_h:stride, dj:dj + stride * out_w:stride, :]
      out += patch @ kernel[di, dj]
  return out


def numpy_pool_and_pad(x, stride, out_channels):
  b, h, w, c = x.shape
  pooled = x.reshape(b, h // stride, stride, w // stride, stride, c).mean(axis=(2, 4))
  half = (out_channels - c) // 2
  return np.pad(pooled, [(0, 0), (0, 0), (0, 0), (half, half)])


def test_channel_zero_pad_centres_the_input():
  x = small_batch((2, 2, 4))
  out = keras.ops.convert_to_numpy(net_layers.ChannelZeroPad(6)(x))
  np.testing.assert_array_equal(out, np.pad(x, [(0, 0), (0, 0), (0, 0), (3, 3)]))
  with pytest.raises(ValueError):
    net_layers.ChannelZeroPad(3)


def test_strided_convs_pad_symmetrically_like_pytorch():
  inputs = keras.Input((8, 8, 2))
  outputs = net_layers.conv2d_fixed_padding(inputs, 3, 3, 2, "conv", use_bias=False)
  model = keras.Model(inputs, outputs)
  x = small_batch((8, 8, 2))
  kernel = keras.ops.convert_to_numpy(model.get_layer("conv").kernel)
  np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)),
                             numpy_conv(x, kernel, stride=2, pad=(1, 1)), atol=1e-5)
  # The CIFAR ResNets and SLN's WRN use it for every strided 3x3 conv.
  assert built("resnet32", 7, (8, 8, 3)).get_layer("stage2_block0_conv1_pad")
  assert built("wrn28-2", 7, (8, 8, 3)).get_layer("stage3_block0_conv2_pad")


def test_ieg_wrn_long_skips_match_a_numpy_reference():
  """With every conv but the first zeroed, only the shortcuts carry signal.

  Then stage 1 = pad(relu(bn(x0))) + pad(x0), stages 2 and 3 each double their pooled input
  (block shortcut + stage skip), and the body skip adds the pooled x0 once more.
  """
  model = wrn.build_ieg_wrn(3, (8, 8, 3), width=32)
  for layer in model.layers:
    if isinstance(layer, keras.layers.Conv2D) and layer.name != "init_conv":
      layer.kernel.assign(np.zeros(layer.kernel.shape, np.float32))
  x = small_batch((8, 8, 3), seed=1)
  kernel = keras.ops.convert_to_numpy(model.get_layer("init_conv").kernel)
  x0 = numpy_conv(x, kernel)
  inference_bn = lambda v: v / np.sqrt(1.0 + 1e-5)  # fresh statistics: mean 0, var 1
  stage1 = numpy_pool_and_pad(np.maximum(inference_bn(x0), 0), 1, 32)
  stage1 += numpy_pool_and_pad(x0, 1, 32)
  stage2 = 2 * numpy_pool_and_pad(stage1, 2, 64)
  stage3 = 2 * numpy_pool_and_pad(stage2, 2, 128)
  body = stage3 + numpy_pool_and_pad(x0, 4, 128)
  features = np.maximum(inference_bn(body), 0).mean(axis=(1, 2))
  fc = model.get_layer("logits")
  expected = features @ keras.ops.convert_to_numpy(fc.kernel) + keras.ops.convert_to_numpy(fc.bias)
  np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x, training=False)), expected,
                             rtol=1e-4, atol=1e-5)


def test_resnet29_keeps_ieg_missing_relu_unless_asked():
  ieg = built("resnet29", 7, (8, 8, 3))
  names = {layer.name for layer in ieg.layers}
  assert "stage1_block1_a_bn" in names and "stage1_block1_a_relu" not in names
  keras_example = networks.build_network("resnet29", 7, (8, 8, 3), keras_example_relu=True)
  names = {layer.name for layer in keras_example.layers}
  assert {"stage1_block1_a_relu", "stage3_block2_a_relu"} <= names
  assert "stage1_block0_a_relu" not in names  # the stem's BN-ReLU already precedes it


# ---------------------------------------------------------------- initialisation


def test_ieg_wrn_initialisation():
  model = built("wrn28-10", 10, CIFAR)
  kernel = keras.ops.convert_to_numpy(model.get_layer("unit_1_1_conv1").kernel)
  assert kernel.std() == pytest.approx(np.sqrt(2.0 / (9 * 160)), rel=0.02)  # N(0, 2/(k*k*out))
  fc = model.get_layer("logits")
  fc_kernel = keras.ops.convert_to_numpy(fc.kernel)
  bound = 1.0 / np.sqrt(10)
  assert np.abs(fc_kernel).max() <= bound and np.abs(fc_kernel).max() > 0.9 * bound
  assert not np.any(keras.ops.convert_to_numpy(fc.bias))


def test_torch_style_layers_use_pytorch_default_init():
  model = built("mnist_cnn", 10, MNIST)
  dense = model.get_layer("dense")
  for values in (dense.kernel, dense.bias):
    values = np.abs(keras.ops.convert_to_numpy(values))
    bound = 1.0 / np.sqrt(9216)  # U(+-1/sqrt(fan_in)) for weights and biases alike
    assert values.max() <= np.float32(bound) and values.max() > 0.95 * bound
