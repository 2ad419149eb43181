"""TextCNN for sentence classification (Kim, 2014) as pytorch-SIGUA runs it on TREC.

token ids [B, L] -> embedding 300 -> three convolutions over time (widths 3, 4 and 5, 100 filters
each, ReLU) -> max over time -> concat (300) -> FC 300 + ReLU -> dropout -> FC K logits.

The embedding is randomly initialised, N(0, 1) as PyTorch's `nn.Embedding`: pytorch-SIGUA calls
`from_pretrained` on an existing layer, which returns a new layer and leaves the model's random
one in place, so its TREC numbers are with random embeddings. The padding id's vector is held at
zero (PyTorch's `padding_idx`) by masking it, so padding adds nothing but the conv bias.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from core.errors import UserError
from datasets import text as text_lib
from networks import layers as L
from networks.registry import register_network

EMBEDDING_DIM = 300
FILTER_WIDTHS = (3, 4, 5)
FILTERS_PER_WIDTH = 100
# Networks that read token ids [B, L] rather than images (the experiment checks the pairing).
TEXT_NETWORKS = ("textcnn",)


@keras.saving.register_keras_serializable(package="networks")
class DenseGradientEmbedding(keras.layers.Layer):
  """An embedding lookup whose gradient is a dense [V, D] tensor, as PyTorch's default `nn.Embedding`.

  A plain gather gives `tf.IndexedSlices`, which the shared training step (replica scaling,
  clipping, the TF1 momentum update) treats as a dense tensor; a dense gradient also makes Adam
  and momentum update every row each step, as PyTorch does.
  """

  def __init__(self, vocabulary_size: int, dim: int, **kwargs):
    super().__init__(**kwargs)
    self.vocabulary_size, self.dim = int(vocabulary_size), int(dim)

  def build(self, input_shape):
    self.embeddings = self.add_weight(
        shape=(self.vocabulary_size, self.dim), name="embeddings",
        initializer=keras.initializers.RandomNormal(0.0, 1.0))   # PyTorch's N(0, 1)

  def call(self, ids):
    vocabulary_size, dim = self.vocabulary_size, self.dim

    @tf.custom_gradient
    def lookup(table):
      def grad(upstream):
        flat = tf.reshape(upstream, [-1, dim])
        return tf.math.unsorted_segment_sum(flat, tf.reshape(ids, [-1]), vocabulary_size)
      return tf.gather(table, ids), grad

    return lookup(tf.convert_to_tensor(self.embeddings))

  def compute_output_shape(self, input_shape):
    return (*input_shape, self.dim)

  def get_config(self):
    return {**super().get_config(), "vocabulary_size": self.vocabulary_size, "dim": self.dim}


@keras.saving.register_keras_serializable(package="networks")
class TrimPadding(keras.layers.Layer):
  """Cuts the batch's trailing padding down to `margin` tokens after its longest sequence.

  The result is exactly the network's output on the full padded length: a convolution window
  that lies wholly in the padding sees only zero vectors and gives relu(bias), the same value for
  every such window, so one of them (kept by `margin` >= the widest filter) serves the max over
  time as well as hundreds. TREC questions have at most ~40 tokens in 300, so this saves ~7x.
  """

  def __init__(self, margin: int, **kwargs):
    super().__init__(**kwargs)
    self.margin = int(margin)

  def call(self, ids):
    length = tf.shape(ids)[1]
    longest = tf.reduce_max(tf.reduce_sum(tf.cast(tf.not_equal(ids, text_lib.PAD_ID), tf.int32), axis=1))
    return ids[:, :tf.minimum(length, longest + self.margin)]   # padding always trails the tokens

  def compute_output_shape(self, input_shape):
    return (input_shape[0], None)

  def get_config(self):
    return {**super().get_config(), "margin": self.margin}


def _conv_over_time(x, width: int, name: str):
  fan_in = width * x.shape[-1]
  # PyTorch's kaiming_normal_ (fan_in, ReLU gain) on the weights; default bias init.
  return keras.layers.Conv1D(
      FILTERS_PER_WIDTH, width, padding="valid", activation="relu",
      kernel_initializer=keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal"),
      bias_initializer=L.torch_default_bias(fan_in), name=name)(x)


def _torch_dense(x, units: int, name: str, activation=None):
  return keras.layers.Dense(units, activation=activation, kernel_initializer=L.torch_default_kernel(),
                            bias_initializer=L.torch_default_bias(x.shape[-1]), name=name)(x)


@register_network("textcnn", weight_decay=0.0)
def textcnn(num_classes: int, input_shape: tuple[int, ...], *, vocabulary_size: int,
            dropout_rate: float = 0.5, trim_padding: bool = True) -> keras.Model:
  """TextCNN over int token ids of shape `input_shape` = (sequence length,).

  Parameters: V*300 + sum_w (w*300*100 + 100) + (300*300 + 300) + (300*K + K).
  """
  if len(input_shape) != 1:
    raise UserError(f"--network_name=textcnn reads token sequences, but the data has inputs of shape "
                    f"{tuple(input_shape)}; use it with a text dataset such as trec_symmetric_0.2")
  if input_shape[0] < max(FILTER_WIDTHS):
    raise UserError(f"textcnn needs sequences of at least {max(FILTER_WIDTHS)} tokens, got {input_shape[0]}")
  tokens = keras.Input(shape=input_shape, dtype="int32", name="tokens")
  ids = TrimPadding(max(FILTER_WIDTHS), name="trim_padding")(tokens) if trim_padding else tokens
  embedded = DenseGradientEmbedding(vocabulary_size, EMBEDDING_DIM, name="embedding")(ids)
  not_padding = keras.ops.expand_dims(
      keras.ops.cast(keras.ops.not_equal(ids, text_lib.PAD_ID), embedded.dtype), -1)
  embedded = keras.layers.Multiply(name="zero_padding")([embedded, not_padding])
  pooled = [keras.layers.GlobalMaxPooling1D(name=f"max_over_time{w}")(_conv_over_time(embedded, w, f"conv{w}"))
            for w in FILTER_WIDTHS]
  features = keras.layers.Concatenate(name="features")(pooled)
  features = _torch_dense(features, len(FILTER_WIDTHS) * FILTERS_PER_WIDTH, "fc1", activation="relu")
  features = keras.layers.Dropout(dropout_rate, name="dropout")(features)
  logits = _torch_dense(features, num_classes, "logits")
  return keras.Model(tokens, logits, name="textcnn")
