"""Callbacks that keep a long run safe: stop on a non-finite loss, stop cleanly on SIGTERM, test pauses.

Keras calls `on_train_batch_end` after every step, before the period's checkpoint is written at
`on_epoch_end`, so a bad step is caught before anything of it reaches the disk.
"""
import math

import keras

from core.errors import UserError
from ieg.run import fault_points
from ieg.run import interrupts
from ieg.run.callbacks import current_step

EXIT_NON_FINITE = 3


class NonFiniteLoss(UserError):
  """The loss became NaN or infinite; nothing of the bad step was saved."""

  def __init__(self, value: float, step: int, last_checkpoint: str | None):
    kept = (f"the last good checkpoint {last_checkpoint} is intact and a rerun resumes from it"
            if last_checkpoint else "no checkpoint had been written yet")
    super().__init__(f"the training loss became {value} at step {step}; training stopped before saving it: {kept}. "
                     "Lower --learning_rate, set --grad_clip_norm or check the data", exit_code=EXIT_NON_FINITE)
    self.step = step


class StopOnNonFiniteLoss(keras.callbacks.Callback):
  """Raises NonFiniteLoss at the first step whose loss is NaN or infinite.

  The logged loss is the running mean of the period, which turns non-finite at the first bad step.
  """

  def __init__(self, store):
    super().__init__()
    self.store = store

  def on_train_batch_end(self, batch, logs=None):
    loss = (logs or {}).get("loss")
    if loss is not None and not math.isfinite(float(loss)):
      raise NonFiniteLoss(float(loss), current_step(self.model), self.store.latest_path())


class StopOnSignal(keras.callbacks.Callback):
  """After a SIGTERM/SIGINT: save a checkpoint at the current step and raise `interrupts.Interrupted`.

  Put it after the checkpoint callback: at the end of a period that one has already saved the step.
  An evaluation in progress is finished first (it is short next to a scheduler's grace period).
  """

  def __init__(self, watch: interrupts.SignalWatch, store):
    super().__init__()
    self.watch = watch
    self.store = store

  def on_train_batch_end(self, batch, logs=None):
    if self.watch.received:
      step = current_step(self.model)
      raise interrupts.Interrupted(self.watch.received, step, self.store.save(step))

  def on_epoch_end(self, epoch, logs=None):
    if self.watch.received:
      raise interrupts.Interrupted(self.watch.received, current_step(self.model), self.store.latest_path())


class PausePoints(keras.callbacks.Callback):
  """The `step` and `evaluation` points of `fault_points` (inactive unless IEG_TEST_PAUSE_AT is set)."""

  def on_train_batch_end(self, batch, logs=None):
    fault_points.pause_if_requested("step", current_step(self.model))

  def on_test_batch_end(self, batch, logs=None):
    if batch == 0:
      fault_points.pause_if_requested("evaluation", current_step(self.model))
