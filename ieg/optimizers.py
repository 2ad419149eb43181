"""Optimizers with the update rules of the reference code.

TF1's `MomentumOptimizer` (IEG, L2R) keeps `acc = mu * acc + g; theta -= lr * acc`. Keras' SGD
folds the learning rate into its velocity, which differs as soon as the learning rate changes,
and IEG's look-ahead step reads the accumulator itself, so we keep TF1's form.
"""
import keras
import tensorflow as tf

from core.errors import UserError


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


class Beta1SwitchAdam(keras.optimizers.Adam):
  """Adam whose beta1 drops from `beta_1` to `beta_1_after` at step `switch_step` (co-teaching's plan).

  The bias correction 1 - beta1^t uses the current beta1, as PyTorch's Adam does when the plan
  rewrites its `betas` (and as Keras' Adam does with its own beta1).
  """

  def __init__(self, switch_step: int, beta_1_after: float = 0.1, name: str = "adam", **kwargs):
    super().__init__(name=name, **kwargs)
    if self.amsgrad:
      raise ValueError("Beta1SwitchAdam does not implement amsgrad")
    self.switch_step = int(switch_step)
    self.beta_1_after = beta_1_after

  def current_beta_1(self) -> tf.Tensor:
    return tf.where(self.iterations >= self.switch_step, self.beta_1_after, self.beta_1)

  def update_step(self, gradient, variable, learning_rate):
    dtype = variable.dtype
    lr = tf.cast(learning_rate, dtype)
    gradient = tf.cast(gradient, dtype)
    step = tf.cast(self.iterations + 1, dtype)
    beta_1 = tf.cast(self.current_beta_1(), dtype)
    beta_2 = tf.cast(self.beta_2, dtype)
    m = self._momentums[self._get_variable_index(variable)]
    v = self._velocities[self._get_variable_index(variable)]
    alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
    self.assign_add(m, (gradient - m) * (1 - beta_1))
    self.assign_add(v, (tf.square(gradient) - v) * (1 - beta_2))
    self.assign_sub(variable, m * alpha / (tf.sqrt(v) + self.epsilon))

  def get_config(self):
    return {**super().get_config(), "switch_step": self.switch_step, "beta_1_after": self.beta_1_after}


class LossScaled(keras.optimizers.LossScaleOptimizer):
  """Keras's dynamic loss scaling (float16), where a skipped step still counts as a step.

  Keras skips the update of a step whose scaled gradients overflowed and halves the scale; its step
  counter then falls behind the data. Counting the skipped step keeps `iterations` equal to the
  number of batches seen, which the resume point, the schedules and the evaluation steps rely on.
  """

  def _stateful_handle_non_finite_grads(self):
    super()._stateful_handle_non_finite_grads()
    self.inner_optimizer.iterations.assign_add(1)


def unscaled(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
  """The optimizer that holds the update rule and its state (the loss-scaled one's inner optimizer)."""
  return optimizer.inner_optimizer if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else optimizer


def make_optimizer(name: str, learning_rate, momentum: float, loss_scaling: bool = False) -> keras.optimizers.Optimizer:
  """`momentum`: TF1 momentum (IEG). `adam`: Adam with PyTorch's epsilon (SIGUA, PRL).

  A schedule with `adam_beta1_switch_step` (co-teaching's plan) also switches Adam's beta1 there.
  `loss_scaling` (float16) wraps it in dynamic loss scaling.
  """
  optimizer = _update_rule(name, learning_rate, momentum)
  return LossScaled(optimizer) if loss_scaling else optimizer


def _update_rule(name: str, learning_rate, momentum: float) -> keras.optimizers.Optimizer:
  if name == "momentum":
    return TF1Momentum(learning_rate=learning_rate, momentum=momentum)
  if name == "adam":
    switch_step = getattr(learning_rate, "adam_beta1_switch_step", None)
    if switch_step is not None:
      return Beta1SwitchAdam(switch_step, learning_rate=learning_rate, epsilon=1e-8)
    return keras.optimizers.Adam(learning_rate=learning_rate, epsilon=1e-8)
  raise UserError(f"--optimizer={name} is not known: choose momentum or adam")
