"""Wide ResNets: IEG's AutoAugment-style WRN-28-10 and SLN's standard WRN-28-2."""
from __future__ import annotations

import math

import keras

from core.errors import UserError
from networks import layers as L
from networks.registry import register_network

# ----------------------------------------------------------------------------------------------
# IEG WRN (google-research ieg/models/wrn.py): pre-activation blocks, parameter-free shortcuts
# (avg-pool + channel zero-padding) and extra long skips around every stage and the whole body.
# ----------------------------------------------------------------------------------------------

_IEG_BLOCKS_PER_STAGE = 4
_IEG_STRIDES = (1, 2, 2)


def _ieg_conv(filters: int, strides: int, name: str) -> keras.layers.Layer:
  # N(0, sqrt(2 / (k*k*out))): He init over fan-out, as the TF1 code draws it (not truncated).
  return keras.layers.Conv2D(
      filters, 3, strides=strides, padding="same", use_bias=False,
      kernel_initializer=keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal"),
      name=name)


def _pool_and_pad(x, in_filters: int, out_filters: int, stride: int, name: str):
  """Parameter-free projection: average-pool by `stride`, zero-pad the new channels."""
  if stride > 1:
    x = keras.layers.AveragePooling2D(stride, stride, padding="valid", name=f"{name}_pool")(x)
  return L.ChannelZeroPad(out_filters - in_filters, name=f"{name}_pad")(x)


def _ieg_block(x, in_filters: int, out_filters: int, stride: int, activate_before_residual: bool,
               name: str):
  """BN-ReLU-conv x2 with an identity (or pooled and padded) shortcut.

  With `activate_before_residual` the BN-ReLU is shared by both paths (first block of the net);
  otherwise the shortcut takes the raw input.
  """
  pre = keras.layers.ReLU(name=f"{name}_relu1")(L.batch_norm(f"{name}_bn1")(x))
  shortcut = pre if activate_before_residual else x
  y = _ieg_conv(out_filters, stride, f"{name}_conv1")(pre)
  y = keras.layers.ReLU(name=f"{name}_relu2")(L.batch_norm(f"{name}_bn2")(y))
  y = _ieg_conv(out_filters, 1, f"{name}_conv2")(y)
  if in_filters != out_filters:
    shortcut = _pool_and_pad(shortcut, in_filters, out_filters, stride, f"{name}_shortcut")
  return keras.layers.Add(name=f"{name}_add")([shortcut, y])


def build_ieg_wrn(num_classes: int, input_shape: tuple[int, int, int], *, width: int = 160,
                  name: str = "wrn") -> keras.Model:
  """IEG's WRN with stage widths [16, width, 2*width, 4*width] (width 160 = WRN-28-10)."""
  total_stride = math.prod(_IEG_STRIDES)
  if input_shape[0] % total_stride or input_shape[1] % total_stride:
    raise UserError(f"the IEG WRN needs image sides divisible by {total_stride}, got "
                    f"{input_shape[:2]}; resize the images or pick another --network_name")
  filters = (min(width, 16), width, 2 * width, 4 * width)
  inputs = keras.Input(shape=input_shape, dtype="float32", name="images")
  x = _ieg_conv(filters[0], 1, "init_conv")(inputs)
  first_x = stage_input = x
  for stage in range(1, 4):
    stride = _IEG_STRIDES[stage - 1]
    x = _ieg_block(x, filters[stage - 1], filters[stage], stride,
                   activate_before_residual=(stage == 1), name=f"unit_{stage}_0")
    for block in range(1, _IEG_BLOCKS_PER_STAGE):
      x = _ieg_block(x, filters[stage], filters[stage], 1, activate_before_residual=False,
                     name=f"unit_{stage}_{block}")
    # Long skip around the whole stage.
    skip = _pool_and_pad(stage_input, filters[stage - 1], filters[stage], stride,
                         f"stage_{stage}_skip")
    x = stage_input = keras.layers.Add(name=f"stage_{stage}_add")([x, skip])
  # Long skip from the init conv to the end of the body.
  skip = _pool_and_pad(first_x, filters[0], filters[3], total_stride, "body_skip")
  x = keras.layers.Add(name="body_add")([x, skip])
  x = keras.layers.ReLU(name="final_relu")(L.batch_norm("final_bn")(x))
  x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
  bound = 1.0 / math.sqrt(num_classes)
  logits = keras.layers.Dense(
      num_classes, kernel_initializer=keras.initializers.RandomUniform(-bound, bound),
      bias_initializer="zeros", name="logits")(x)
  return keras.Model(inputs, logits, name=name)


@register_network("wrn28-10", weight_decay=5e-4)
def wrn28_10(num_classes: int, input_shape: tuple[int, int, int]) -> keras.Model:
  """IEG's WRN-28-10 (36.2M parameters for CIFAR-10); input sides must be multiples of 4."""
  return build_ieg_wrn(num_classes, input_shape, width=160, name="wrn28_10")


# ----------------------------------------------------------------------------------------------
# Standard WRN (Zagoruyko & Komodakis) as SLN uses it (chenpf1025/SLN networks/wideresnet.py):
# 1x1-conv shortcut when the shape changes, conv biases, PyTorch default init.
# ----------------------------------------------------------------------------------------------

# SLN's last BN passes PyTorch momentum=0.9, i.e. moving = 0.1 * old + 0.9 * batch.
_SLN_FINAL_BN_MOMENTUM = 0.1


def _torch_conv(x, filters: int, kernel_size: int, strides: int, name: str):
  fan_in = kernel_size * kernel_size * x.shape[-1]
  return L.conv2d_fixed_padding(
      x, filters, kernel_size, strides, name, use_bias=True,
      kernel_initializer=L.torch_default_kernel(), bias_initializer=L.torch_default_bias(fan_in))


def _wide_basic(x, planes: int, stride: int, dropout_rate: float, name: str):
  """BN-ReLU-conv(stride 1)-[dropout]-BN-ReLU-conv(stride); shortcut from the raw input."""
  in_planes = x.shape[-1]
  y = keras.layers.ReLU(name=f"{name}_relu1")(L.batch_norm(f"{name}_bn1")(x))
  y = _torch_conv(y, planes, 3, 1, f"{name}_conv1")
  if dropout_rate > 0:
    y = keras.layers.Dropout(dropout_rate, name=f"{name}_dropout")(y)
  y = keras.layers.ReLU(name=f"{name}_relu2")(L.batch_norm(f"{name}_bn2")(y))
  y = _torch_conv(y, planes, 3, stride, f"{name}_conv2")
  shortcut = x
  if stride != 1 or in_planes != planes:
    shortcut = _torch_conv(x, planes, 1, stride, f"{name}_shortcut")
  return keras.layers.Add(name=f"{name}_add")([shortcut, y])


def build_standard_wrn(num_classes: int, input_shape: tuple[int, int, int], *, depth: int,
                       widen_factor: int, dropout_rate: float = 0.0,
                       name: str = "wrn") -> keras.Model:
  if (depth - 4) % 6:
    raise ValueError(f"WRN depth must be 6n+4, got {depth}")
  blocks_per_stage = (depth - 4) // 6
  widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
  inputs = keras.Input(shape=input_shape, dtype="float32", name="images")
  x = _torch_conv(inputs, 16, 3, 1, "init_conv")
  for stage, (planes, stride) in enumerate(zip(widths, (1, 2, 2)), start=1):
    for block in range(blocks_per_stage):
      x = _wide_basic(x, planes, stride if block == 0 else 1, dropout_rate,
                      f"stage{stage}_block{block}")
  x = L.batch_norm("final_bn", momentum=_SLN_FINAL_BN_MOMENTUM)(x)
  x = keras.layers.ReLU(name="final_relu")(x)
  x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
  logits = keras.layers.Dense(
      num_classes, kernel_initializer=L.torch_default_kernel(),
      bias_initializer=L.torch_default_bias(widths[-1]), name="logits")(x)
  return keras.Model(inputs, logits, name=name)


@register_network("wrn28-2", weight_decay=5e-4)
def wrn28_2(num_classes: int, input_shape: tuple[int, int, int], *,
            dropout_rate: float = 0.0) -> keras.Model:
  """SLN's WRN-28-2 (1.47M parameters for CIFAR-10)."""
  return build_standard_wrn(num_classes, input_shape, depth=28, widen_factor=2,
                            dropout_rate=dropout_rate, name="wrn28_2")
