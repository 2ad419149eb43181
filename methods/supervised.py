"""Supervised baseline: plain cross-entropy on the noisy labels (IEG's `BaseModel`)."""
import tensorflow as tf

from methods import register_method
from methods.base import Method, sparse_cross_entropy


@register_method("supervised")
class Supervised(Method):
  """L = mean_i CE(noisy y_i, f(x_i)) + L2; weak augmentation only."""

  def training_loss(self, data):
    logits = self.network(data["image"], training=True)
    return tf.reduce_mean(sparse_cross_entropy(data["label"], logits)), logits
