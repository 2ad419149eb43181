"""Optimizers with the update rules of the reference code.

TF1's `MomentumOptimizer` (IEG, L2R) keeps `acc = mu * acc + g; theta -= lr * acc`. Keras' SGD
folds the learning rate into its velocity, which differs as soon as the learning rate changes,
and IEG's look-ahead step reads the accumulator itself, so we keep TF1's form.
"""
import keras
import tensorflow as tf

from ieg.errors import UserError


class TF1Momentum(keras.optimizers.Optimizer):
  """acc <- momentum * acc + grad; var <- var - lr * acc (not Nesterov)."""

  def __init__(self, learning_rate=0.1, momentum: float = 0.9, name: str = "tf1_momentum", **kwargs):
    super().__init__(learning_rate=learning_rate, name=name, **kwargs)
    self.momentum = momentum
    self.accumulators = []

  def build(self, var_list):
    if self.built:
      return
    super().build(var_list)
    self.accumulators = [self.add_variable_from_reference(v, "accumulator") for v in var_list]

  def accumulator(self, variable):
    """The momentum accumulator of `variable` (IEG's look-ahead uses it)."""
    return self.accumulators[self._get_variable_index(variable)]

  def update_step(self, gradient, variable, learning_rate):
    lr = tf.cast(learning_rate, variable.dtype)
    acc = self.accumulator(variable)
    self.assign(acc, self.momentum * acc + gradient)
    self.assign_sub(variable, lr * acc)

  def get_config(self):
    return {**super().get_config(), "momentum": self.momentum}


def make_optimizer(name: str, learning_rate, momentum: float) -> keras.optimizers.Optimizer:
  """`momentum`: TF1 momentum (IEG). `adam`: Adam with PyTorch's epsilon (SIGUA, PRL)."""
  if name == "momentum":
    return TF1Momentum(learning_rate=learning_rate, momentum=momentum)
  if name == "adam":
    return keras.optimizers.Adam(learning_rate=learning_rate, epsilon=1e-8)
  raise UserError(f"--optimizer={name} is not known: choose momentum or adam")
