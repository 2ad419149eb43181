"""Plain CNNs: the co-teaching 9-layer CNN (SIGUA, PRL) and the PyTorch MNIST example CNN
(pytorch-SIGUA). Both use PyTorch's default initialisation."""
from __future__ import annotations

import keras

from core.errors import UserError
from networks import layers as L
from networks.registry import register_network

_LEAKY_SLOPE = 0.01
# (filters, padding) of the nine 3x3 convs; a 2x2 max-pool + channel dropout follows #3 and #6.
_CNN9_CONVS = ((128, "same"), (128, "same"), (128, "same"),
               (256, "same"), (256, "same"), (256, "same"),
               (512, "valid"), (256, "valid"), (128, "valid"))
_CNN9_POOL_AFTER = (2, 5)
# Two 2x2 pools then three valid 3x3 convs: (side // 4) - 6 >= 1.
_CNN9_MIN_SIDE = 28


def _torch_conv(x, filters: int, kernel_size: int, padding: str, name: str):
  fan_in = kernel_size * kernel_size * x.shape[-1]
  return keras.layers.Conv2D(filters, kernel_size, padding=padding, use_bias=True,
                             kernel_initializer=L.torch_default_kernel(),
                             bias_initializer=L.torch_default_bias(fan_in), name=name)(x)


def _torch_dense(x, units: int, name: str):
  return keras.layers.Dense(units, kernel_initializer=L.torch_default_kernel(),
                            bias_initializer=L.torch_default_bias(x.shape[-1]), name=name)(x)


def build_cnn9(num_classes: int, input_shape: tuple[int, int, int], *, norm: str = "batch",
               groups: int | None = None, dropout_rate: float = 0.25,
               name: str = "cnn9") -> keras.Model:
  """Co-teaching's CNN: conv-norm-LeakyReLU x9, two max-pools, global average pool, linear.

  The original applies `dropout2d` at test time as well; here the channel dropout is active in
  training only, so evaluation is deterministic.
  """
  if min(input_shape[:2]) < _CNN9_MIN_SIDE:
    raise UserError(f"the 9-layer CNN needs images of at least {_CNN9_MIN_SIDE}x{_CNN9_MIN_SIDE}, "
                    f"got {input_shape[:2]}; pick another --network_name")
  inputs = keras.Input(shape=input_shape, dtype="float32", name="images")
  x = inputs
  for index, (filters, padding) in enumerate(_CNN9_CONVS):
    x = _torch_conv(x, filters, 3, padding, f"conv{index + 1}")
    x = L.NORMALIZATIONS[norm](f"norm{index + 1}", groups)(x)
    x = keras.layers.LeakyReLU(negative_slope=_LEAKY_SLOPE, name=f"lrelu{index + 1}")(x)
    if index in _CNN9_POOL_AFTER:
      x = keras.layers.MaxPooling2D(2, 2, name=f"pool{index + 1}")(x)
      x = keras.layers.SpatialDropout2D(dropout_rate, name=f"dropout{index + 1}")(x)
  x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
  logits = _torch_dense(x, num_classes, "logits")
  return keras.Model(inputs, logits, name=name)


@register_network("cnn9", weight_decay=0.0)
def cnn9(num_classes: int, input_shape: tuple[int, int, int], *,
         dropout_rate: float = 0.25) -> keras.Model:
  """The 9-layer CNN with BatchNorm; needs inputs of at least 28x28."""
  return build_cnn9(num_classes, input_shape, dropout_rate=dropout_rate, name="cnn9")


@register_network("cnn9_gn", weight_decay=0.0)
def cnn9_gn(num_classes: int, input_shape: tuple[int, int, int], *, groups: int = 32,
            dropout_rate: float = 0.25) -> keras.Model:
  """The 9-layer CNN with GroupNorm (32 groups: 4-16 channels each) for per-example gradients."""
  return build_cnn9(num_classes, input_shape, norm="group", groups=groups,
                    dropout_rate=dropout_rate, name="cnn9_gn")


# Without normalisation layers this network cannot absorb IEG's CIFAR step (learning rate 0.1, TF1
# momentum 0.9). Meta re-weighting puts a batch's weight on a few probe-aligned examples, whose
# gradients agree instead of cancelling as noisy ones do: on MNIST at 80% uniform noise the global
# gradient norm of L2R reaches 2-5 against 0.3-0.5 for plain cross-entropy, the ReLUs die within
# ~60 steps and the logits turn constant. Clipping the norm at 1 bounds that step and leaves
# supervised training (norms below 1) nearly untouched. IEG's unlabeled-loss weights 5 and 20 are
# CIFAR's; at 1 IEG no longer trails L2R on this network.
_BN_FREE_TRAINING = {"grad_clip_norm": 1.0, "ce_factor": 1.0, "consistency_factor": 1.0}


@register_network("mnist_cnn", weight_decay=0.0, training_defaults=_BN_FREE_TRAINING)
def mnist_cnn(num_classes: int, input_shape: tuple[int, int, int], *, conv_dropout: float = 0.25,
              dense_dropout: float = 0.5) -> keras.Model:
  """conv32-conv64-maxpool-dropout-dense128-dropout-dense K (1,199,882 parameters on MNIST).

  pytorch-SIGUA runs it with both dropout rates at 0.5 (its `--dropout_rate`); the defaults are
  those of the PyTorch MNIST example it comes from.
  """
  inputs = keras.Input(shape=input_shape, dtype="float32", name="images")
  x = keras.layers.ReLU(name="relu1")(_torch_conv(inputs, 32, 3, "valid", "conv1"))
  x = keras.layers.ReLU(name="relu2")(_torch_conv(x, 64, 3, "valid", "conv2"))
  x = keras.layers.MaxPooling2D(2, 2, name="pool")(x)
  # pytorch-SIGUA uses nn.Dropout2d here, which drops whole feature maps.
  x = keras.layers.SpatialDropout2D(conv_dropout, name="dropout1")(x)
  x = keras.layers.Flatten(name="flatten")(x)
  x = keras.layers.ReLU(name="relu3")(_torch_dense(x, 128, "dense"))
  x = keras.layers.Dropout(dense_dropout, name="dropout2")(x)
  logits = _torch_dense(x, num_classes, "logits")
  return keras.Model(inputs, logits, name="mnist_cnn")
