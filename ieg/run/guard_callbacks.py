"""Callbacks that keep a long run safe: stop on a non-finite loss, warn on a collapsed network, stop
cleanly on SIGTERM, test pauses.

The per-step guards are `async_safe`: Keras then runs every `on_train_batch_end` on a worker thread,
so no step waits for the host. An exception raised there reaches `fit` at the next step or, at the
latest, when the period ends and before any `on_epoch_end` runs: nothing of a bad step is saved.
"""
import logging
import math

import keras

from core.errors import UserError
from ieg.run import fault_points
from ieg.run import interrupts
from ieg.run.callbacks import StepCounter
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


class StopOnNonFiniteLoss(StepCounter):
  """Raises NonFiniteLoss at the first step whose loss is NaN or infinite.

  The logged loss is the running mean of the period, which turns non-finite at the first bad step.
  """

  async_safe = True

  def __init__(self, store):
    super().__init__()
    self.store = store

  def on_train_batch_end(self, batch, logs=None):
    loss = (logs or {}).get("loss")
    if loss is not None and not math.isfinite(float(loss)):
      raise NonFiniteLoss(float(loss), self.step_after(batch), self.store.latest_path())


def at_chance(eval_loss, top1, num_classes: int) -> bool:
  """A constant prediction: eval loss within 2% of log K and top-1 within 2 points of 1/K."""
  if eval_loss is None or top1 is None or num_classes < 2:
    return False
  chance_loss = math.log(num_classes)
  return abs(float(eval_loss) - chance_loss) <= 0.02 * chance_loss and float(top1) <= 1.0 / num_classes + 0.02


class WarnOnCollapse(keras.callbacks.Callback):
  """Logs one warning when the network has collapsed to a constant prediction.

  That is `patience` evaluations in a row at chance (see `at_chance`), or a run whose last evaluation
  is. The usual cause is a step too large for the network, and the hint names the flags to change.
  """

  def __init__(self, num_classes: int, hint: str, patience: int = 2):
    super().__init__()
    self.num_classes, self.hint, self.patience = num_classes, hint, patience
    self.streak = 0
    self.last = None
    self.warned = False

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    if at_chance(logs.get("val_loss"), logs.get("val_top1"), self.num_classes):
      self.streak += 1
      self.last = (current_step(self.model), float(logs["val_loss"]), float(logs["val_top1"]))
      if self.streak >= self.patience:
        self._warn()
    else:
      self.streak, self.last = 0, None

  def on_train_end(self, logs=None):
    if self.streak:
      self._warn()

  def _warn(self):
    if self.warned:
      return
    self.warned = True
    step, loss, top1 = self.last
    logging.warning("the network has collapsed to a constant prediction: at step %d the eval loss is %.3f "
                    "(log %d = %.3f) and top-1 %.3f (chance %.3f). %s", step, loss, self.num_classes,
                    math.log(self.num_classes), top1, 1.0 / self.num_classes, self.hint)


class StopOnSignal(keras.callbacks.Callback):
  """After a SIGTERM/SIGINT: save a checkpoint at the current step and raise `interrupts.Interrupted`.

  A signal during training steps asks `fit` to stop after the current step (from the callback
  thread); Keras would then evaluate the unfinished period, so the checkpoint is saved and the run
  stopped when that evaluation begins. A signal during an evaluation lets it finish: the period's
  own checkpoint is saved first (put this callback after the checkpoint callback).
  """

  async_safe = True

  def __init__(self, watch: interrupts.SignalWatch, store):
    super().__init__()
    self.watch = watch
    self.store = store
    self.stopping = False

  def on_train_batch_end(self, batch, logs=None):
    if self.watch.received and not self.stopping:
      self.stopping = True
      self.model.stop_training = True

  def on_test_begin(self, logs=None):
    if self.stopping:
      self._stop()

  def on_train_end(self, logs=None):
    if self.stopping:  # the stop fell on a period's last step of the run: no evaluation followed
      self._stop()

  def on_epoch_end(self, epoch, logs=None):
    if self.watch.received:
      raise interrupts.Interrupted(self.watch.received, current_step(self.model), self.store.latest_path())

  def _stop(self):
    step = current_step(self.model)
    raise interrupts.Interrupted(self.watch.received, step, self.store.save(step))


class PausePoints(keras.callbacks.Callback):
  """The `step` and `evaluation` points of `fault_points` (inactive unless IEG_TEST_PAUSE_AT is set)."""

  def on_train_batch_end(self, batch, logs=None):
    fault_points.pause_if_requested("step", current_step(self.model))

  def on_test_batch_end(self, batch, logs=None):
    if batch == 0:
      fault_points.pause_if_requested("evaluation", current_step(self.model))
