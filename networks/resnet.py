"""ResNets: IEG's CIFAR ResNet-29 (bottleneck v2), CIFAR ResNet-32 (v1, BN or GroupNorm) and the
TF-official ResNet-50 v2 for 224x224 images."""
from __future__ import annotations

import keras

from networks import layers as L
from networks.registry import register_network

# ----------------------------------------------------------------------------------------------
# resnet29: the Keras CIFAR example's ResNet v2 as ported by IEG (ieg/third_party/cifar10_resnet.py)
# ----------------------------------------------------------------------------------------------

_RESNET29_BLOCKS_PER_STAGE = 3  # depth 9n + 2 = 29


def _glorot_conv(x, filters: int, kernel_size: int, strides: int, name: str):
  return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                             use_bias=False, kernel_initializer=keras.initializers.GlorotNormal(),
                             name=name)(x)


def _preact_conv(x, filters: int, kernel_size: int, strides: int, *, batch_norm: bool,
                 relu: bool, name: str):
  """[BN] -> [ReLU] -> conv, the `conv_first=False` layer of the Keras example."""
  if batch_norm:
    x = L.batch_norm(f"{name}_bn")(x)
  if relu:
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
  return _glorot_conv(x, filters, kernel_size, strides, f"{name}_conv")


@register_network("resnet29", weight_decay=1e-4)
def resnet29(num_classes: int, input_shape: tuple[int, int, int], *,
             keras_example_relu: bool = False) -> keras.Model:
  """Bottleneck ResNet v2, 3 stages (inner widths 16/64/128, outputs 64/128/256).

  IEG's port sets `activation = None` for the very first bottleneck and never resets it, so
  every later bottleneck's first 1x1 conv sees BN without ReLU. That is kept by default (it is
  what IEG trained); `keras_example_relu=True` restores the Keras example's BN-ReLU there.
  """
  inputs = keras.Input(shape=input_shape, dtype="float32", name="images")
  x = _glorot_conv(inputs, 16, 3, 1, "init_conv")
  x = keras.layers.ReLU(name="init_relu")(L.batch_norm("init_bn")(x))
  inner = 16
  for stage in range(3):
    outer = inner * 4 if stage == 0 else inner * 2
    for block in range(_RESNET29_BLOCKS_PER_STAGE):
      name = f"stage{stage + 1}_block{block}"
      very_first = stage == 0 and block == 0
      strides = 2 if stage > 0 and block == 0 else 1
      # The very first bottleneck follows the stem's BN-ReLU, so it starts with a bare conv.
      y = _preact_conv(x, inner, 1, strides, batch_norm=not very_first,
                       relu=keras_example_relu and not very_first, name=f"{name}_a")
      y = _preact_conv(y, inner, 3, 1, batch_norm=True, relu=True, name=f"{name}_b")
      y = _preact_conv(y, outer, 1, 1, batch_norm=True, relu=True, name=f"{name}_c")
      if block == 0:  # Linear 1x1 projection where the width or resolution changes.
        x = _glorot_conv(x, outer, 1, strides, f"{name}_shortcut")
      x = keras.layers.Add(name=f"{name}_add")([x, y])
    inner = outer
  x = keras.layers.ReLU(name="final_relu")(L.batch_norm("final_bn")(x))
  # The original pools 8x8 with stride 1, which is global pooling for 32x32 inputs.
  x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
  logits = keras.layers.Dense(num_classes, kernel_initializer="glorot_uniform",
                              bias_initializer="zeros", name="logits")(x)
  return keras.Model(inputs, logits, name="resnet29")


# ----------------------------------------------------------------------------------------------
# CIFAR ResNet v1 (He et al. 2016, section 4.2) as in IEG's ieg/nets/cifar_resnetv1.py:
# basic blocks, 16/32/64 channels, parameter-free option-A shortcuts (avg-pool + zero-pad).
# ----------------------------------------------------------------------------------------------

_CIFAR_WIDTHS = (16, 32, 64)


def _cifar_basic_block(x, filters: int, stride: int, norm: str, groups: int | None, name: str):
  in_filters = x.shape[-1]
  conv = dict(use_bias=False, kernel_initializer="glorot_uniform")
  y = L.conv2d_fixed_padding(x, filters, 3, stride, f"{name}_conv1", **conv)
  y = keras.layers.ReLU(name=f"{name}_relu1")(L.NORMALIZATIONS[norm](f"{name}_norm1", groups)(y))
  y = L.conv2d_fixed_padding(y, filters, 3, 1, f"{name}_conv2", **conv)
  y = L.NORMALIZATIONS[norm](f"{name}_norm2", groups)(y)
  shortcut = x
  if in_filters != filters:
    shortcut = keras.layers.AveragePooling2D(stride, stride, padding="same",
                                             name=f"{name}_shortcut_pool")(x)
    shortcut = L.ChannelZeroPad(filters - in_filters, name=f"{name}_shortcut_pad")(shortcut)
  x = keras.layers.Add(name=f"{name}_add")([shortcut, y])
  return keras.layers.ReLU(name=f"{name}_out")(x)


def build_cifar_resnet_v1(num_classes: int, input_shape: tuple[int, int, int], *, depth: int,
                          norm: str = "batch", groups: int | None = None,
                          name: str = "resnet") -> keras.Model:
  if (depth - 2) % 6:
    raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
  blocks_per_stage = (depth - 2) // 6
  inputs = keras.Input(shape=input_shape, dtype="float32", name="images")
  x = keras.layers.Conv2D(_CIFAR_WIDTHS[0], 3, padding="same", use_bias=False,
                          kernel_initializer="glorot_uniform", name="init_conv")(inputs)
  x = L.NORMALIZATIONS[norm]("init_norm", groups)(x)
  x = keras.layers.ReLU(name="init_relu")(x)
  for stage, (filters, stride) in enumerate(zip(_CIFAR_WIDTHS, (1, 2, 2)), start=1):
    for block in range(blocks_per_stage):
      x = _cifar_basic_block(x, filters, stride if block == 0 else 1, norm, groups,
                             f"stage{stage}_block{block}")
  x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
  logits = keras.layers.Dense(num_classes, kernel_initializer="glorot_uniform",
                              bias_initializer="zeros", name="logits")(x)
  return keras.Model(inputs, logits, name=name)


@register_network("resnet32", weight_decay=5e-4)
def resnet32(num_classes: int, input_shape: tuple[int, int, int]) -> keras.Model:
  """CIFAR ResNet-32 v1 with BatchNorm (0.46M parameters for CIFAR-10)."""
  return build_cifar_resnet_v1(num_classes, input_shape, depth=32, name="resnet32")


@register_network("resnet32_gn", weight_decay=5e-4)
def resnet32_gn(num_classes: int, input_shape: tuple[int, int, int], *,
                groups: int = 8) -> keras.Model:
  """ResNet-32 with GroupNorm (8 groups: 2/4/8 channels per group) for per-example gradients."""
  return build_cifar_resnet_v1(num_classes, input_shape, depth=32, norm="group", groups=groups,
                               name="resnet32_gn")


# ----------------------------------------------------------------------------------------------
# ResNet-50 v2, TF-official style (IEG ieg/models/resnet50.py): BN decay 0.997, projection
# shortcut taken from the pre-activated input, 7x7/2 stem + 3x3/2 max-pool, no stem BN.
# ----------------------------------------------------------------------------------------------

_RESNET50_BN_MOMENTUM = 0.997
_RESNET50_BLOCKS = (3, 4, 6, 3)


def _he_conv(x, filters: int, kernel_size: int, strides: int, name: str):
  return L.conv2d_fixed_padding(
      x, filters, kernel_size, strides, name, use_bias=False,
      kernel_initializer=keras.initializers.VarianceScaling(1.0, "fan_in", "truncated_normal"))


def _bn_relu(x, name: str):
  x = L.batch_norm(f"{name}_bn", momentum=_RESNET50_BN_MOMENTUM)(x)
  return keras.layers.ReLU(name=f"{name}_relu")(x)


def _bottleneck_v2(x, filters: int, strides: int, project: bool, name: str):
  pre = _bn_relu(x, f"{name}_preact")
  shortcut = _he_conv(pre, 4 * filters, 1, strides, f"{name}_shortcut") if project else x
  y = _he_conv(pre, filters, 1, 1, f"{name}_conv1")
  y = _he_conv(_bn_relu(y, f"{name}_mid1"), filters, 3, strides, f"{name}_conv2")
  y = _he_conv(_bn_relu(y, f"{name}_mid2"), 4 * filters, 1, 1, f"{name}_conv3")
  return keras.layers.Add(name=f"{name}_add")([shortcut, y])


@register_network("resnet50", weight_decay=4e-4)
def resnet50(num_classes: int, input_shape: tuple[int, int, int]) -> keras.Model:
  """ResNet-50 v2 for ImageNet-sized inputs (25.6M parameters with 1000 classes)."""
  inputs = keras.Input(shape=input_shape, dtype="float32", name="images")
  x = _he_conv(inputs, 64, 7, 2, "init_conv")
  x = keras.layers.MaxPooling2D(3, 2, padding="same", name="init_pool")(x)
  for stage, num_blocks in enumerate(_RESNET50_BLOCKS):
    filters = 64 * 2**stage
    for block in range(num_blocks):
      strides = (1 if stage == 0 else 2) if block == 0 else 1
      x = _bottleneck_v2(x, filters, strides, project=(block == 0),
                         name=f"stage{stage + 1}_block{block}")
  x = _bn_relu(x, "final")
  x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
  logits = keras.layers.Dense(num_classes, kernel_initializer="glorot_uniform",
                              bias_initializer="zeros", name="logits")(x)
  return keras.Model(inputs, logits, name="resnet50")
