"""Learning-rate schedules of the original IEG code, as Keras schedules of the step counter."""
import math

import keras
import tensorflow as tf

from core.registry import Registry

EXPONENTIAL_DECAY_FACTOR = 0.9  # the original's `exponential` schedule: lr * 0.9^floor(step / decay_steps)


@keras.saving.register_keras_serializable("ieg")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
  """Linear ramp from 0 to the base schedule over `warmup_steps`, then the base schedule."""

  def __init__(self, base, warmup_steps: int):
    self.base = base
    self.warmup_steps = warmup_steps

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    warm = tf.cast(self.warmup_steps, tf.float32)
    after = self.base(tf.maximum(step - warm, 0.0))
    return tf.where(step < warm, self.base(0) * step / tf.maximum(warm, 1.0), after)

  def get_config(self):
    return {"base": keras.saving.serialize_keras_object(self.base), "warmup_steps": self.warmup_steps}


@keras.saving.register_keras_serializable("ieg")
class CoteachingLinear(keras.optimizers.schedules.LearningRateSchedule):
  """Co-teaching's plan (SIGUA_SL, PRL): `lr` until `decay_start`, then linear to 0 at `end`.

  The original sets lr * (N - e) / (N - e_start) once per epoch e; this evaluates the same line per
  step, so it equals the original at the first step of every epoch. With Adam the plan also drops
  beta1 from 0.9 to 0.1 at `decay_start` (`ieg.optimizers.make_optimizer` reads
  `adam_beta1_switch_step`).
  """

  def __init__(self, learning_rate: float, decay_start: int, end: int):
    self.learning_rate = learning_rate
    self.decay_start = int(decay_start)
    self.end = int(end)

  @property
  def adam_beta1_switch_step(self) -> int:
    return self.decay_start

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    remaining = (self.end - step) / float(max(self.end - self.decay_start, 1))
    return self.learning_rate * tf.clip_by_value(remaining, 0.0, 1.0)

  def get_config(self):
    return {"learning_rate": self.learning_rate, "decay_start": self.decay_start, "end": self.end}


def _cosine(lr, decay_steps, max_iteration, cfg):
  return keras.optimizers.schedules.CosineDecayRestarts(
      lr, first_decay_steps=decay_steps[0], t_mul=cfg.cos_t_mul, m_mul=cfg.cos_m_mul, alpha=0.0)


def _custom_step(lr, decay_steps, max_iteration, cfg):
  values = [lr * cfg.decay_rate ** k for k in range(len(decay_steps) + 1)]
  return keras.optimizers.schedules.PiecewiseConstantDecay(list(decay_steps), values)


def _exponential(lr, decay_steps, max_iteration, cfg):
  return keras.optimizers.schedules.ExponentialDecay(
      lr, decay_steps=decay_steps[0], decay_rate=EXPONENTIAL_DECAY_FACTOR, staircase=True)


def _cosine_one(lr, decay_steps, max_iteration, cfg):
  return keras.optimizers.schedules.CosineDecay(lr, decay_steps=max_iteration, alpha=0.0)


def _constant(lr, decay_steps, max_iteration, cfg):
  return keras.optimizers.schedules.PiecewiseConstantDecay([max_iteration], [lr, lr])


def _coteaching_linear(lr, decay_steps, max_iteration, cfg):
  return CoteachingLinear(lr, decay_start=decay_steps[0], end=max_iteration)


_SCHEDULES = Registry("lr_schedule")
_SCHEDULES.update({
    "cosine": _cosine,
    "cosine_warmup": _cosine,  # the warm-up is added below, as for every schedule with warmup_epochs > 0
    "custom_step": _custom_step,
    "exponential": _exponential,
    "cosine_one": _cosine_one,
    "constant": _constant,
    "coteaching_linear": _coteaching_linear,  # constant, then linear to 0 from decay_steps[0] (SIGUA_SL, PRL)
})


def make_schedule(cfg, steps_per_epoch: int, max_iteration: int):
  """The schedule named by `cfg.lr_schedule`, with a linear warm-up when `cfg.warmup_epochs > 0`."""
  schedule = _SCHEDULES.lookup(cfg.lr_schedule)(cfg.learning_rate, list(cfg.decay_steps), max_iteration, cfg)
  warmup_steps = int(math.ceil(cfg.warmup_epochs * steps_per_epoch))
  if warmup_steps > 0:
    schedule = LinearWarmup(schedule, warmup_steps)
  return schedule
