"""Small building blocks shared by the network families.

They translate the reference code's conventions (PyTorch default init, PyTorch/TF1 BatchNorm
constants, symmetric padding of strided convs) into Keras so each family file stays readable.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import keras

# PyTorch BatchNorm (momentum 0.1) and TF1 `batch_normalization(momentum=0.9)` both keep
# 0.9 of the old moving statistics; both use eps 1e-5. Keras defaults (0.99, 1e-3) differ.
BN_MOMENTUM = 0.9
NORM_EPSILON = 1e-5


@keras.saving.register_keras_serializable(package="networks")
class ChannelZeroPad(keras.layers.Layer):
  """Zero-pads the channel axis by `extra_channels`, split evenly on both sides.

  This is the parameter-free "option A" shortcut of CIFAR ResNets and IEG's WRN: the new
  channels carry zeros, so the identity path costs no weights.
  """

  def __init__(self, extra_channels: int, **kwargs: Any):
    super().__init__(**kwargs)
    if extra_channels < 0 or extra_channels % 2:
      raise ValueError(f"extra_channels must be even and >= 0, got {extra_channels}")
    self.extra_channels = int(extra_channels)

  def call(self, inputs):
    half = self.extra_channels // 2
    return keras.ops.pad(inputs, [[0, 0], [0, 0], [0, 0], [half, half]])

  def compute_output_shape(self, input_shape):
    channels = input_shape[-1]
    return (*input_shape[:-1], None if channels is None else channels + self.extra_channels)

  def get_config(self):
    return {**super().get_config(), "extra_channels": self.extra_channels}


def torch_default_kernel() -> keras.initializers.Initializer:
  """PyTorch's default Conv/Linear weight init, kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in))."""
  return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")


def torch_default_bias(fan_in: int) -> keras.initializers.Initializer:
  """PyTorch's default Conv/Linear bias init, U(+-1/sqrt(fan_in)); Keras cannot infer fan_in."""
  bound = 1.0 / math.sqrt(fan_in)
  return keras.initializers.RandomUniform(-bound, bound)


def batch_norm(name: str, momentum: float = BN_MOMENTUM) -> keras.layers.Layer:
  return keras.layers.BatchNormalization(momentum=momentum, epsilon=NORM_EPSILON, name=name)


def group_norm(name: str, groups: int) -> keras.layers.Layer:
  return keras.layers.GroupNormalization(groups=groups, epsilon=NORM_EPSILON, name=name)


# Normalisation kinds selectable by name, so one builder serves the BN and GroupNorm variants.
NormFactory = Callable[..., keras.layers.Layer]
NORMALIZATIONS: dict[str, NormFactory] = {
    "batch": lambda name, groups=None: batch_norm(name),
    "group": lambda name, groups: group_norm(name, groups),
}


def conv2d_fixed_padding(x, filters: int, kernel_size: int, strides: int, name: str,
                         **conv_kwargs: Any):
  """Conv whose padding depends only on the kernel, never on the input size.

  For strides > 1 Keras 'same' pads (0, 1) on even inputs while PyTorch (`padding=k//2`) and
  TF-official ResNets pad (k-1)//2 before; padding explicitly keeps the reference alignment.
  """
  if strides > 1 and kernel_size > 1:
    before = (kernel_size - 1) // 2
    after = kernel_size - 1 - before
    x = keras.layers.ZeroPadding2D(((before, after), (before, after)), name=f"{name}_pad")(x)
    padding = "valid"
  else:
    padding = "same"
  return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, name=name,
                             **conv_kwargs)(x)
