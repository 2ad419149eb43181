"""Keras callbacks of a training run. A Keras "epoch" here is `eval_freq` steps, as IEG's evaluation period."""
import os
import time

import keras
import tensorflow as tf

from ieg.run import files as run_files

# Evaluation logs ("val_" + test_step key) -> the original TensorBoard tags.
EVAL_TAGS = {"val_top1": "acc/eval", "val_top5": "acc/top5_eval", "val_loss": "loss/eval",
             "validation_top1": "acc/validation", "validation_loss": "loss/validation"}


def _is_evaluation(key: str) -> bool:
  return key.startswith("val_") or key.startswith("validation_")


def current_step(model) -> int:
  return int(model.optimizer.iterations.numpy())


def current_learning_rate(model) -> float:
  optimizer = model.optimizer
  lr = optimizer.learning_rate
  if isinstance(optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule):  # pylint: disable=protected-access
    lr = optimizer._learning_rate(optimizer.iterations)  # pylint: disable=protected-access
  return float(tf.convert_to_tensor(lr).numpy())


class StopAtStep(keras.callbacks.Callback):
  """Ends training at `max_iteration` even inside a Keras epoch (the last period may be shorter)."""

  def __init__(self, max_iteration: int):
    super().__init__()
    self.max_iteration = max_iteration

  def on_train_batch_end(self, batch, logs=None):
    if current_step(self.model) >= self.max_iteration:
      self.model.stop_training = True


class SaveCheckpoint(keras.callbacks.Callback):
  def __init__(self, store):
    super().__init__()
    self.store = store

  def on_epoch_end(self, epoch, logs=None):
    self.store.save(current_step(self.model))


class WriteSummaries(keras.callbacks.Callback):
  """TensorBoard scalars under the original names, in `<run>/train` and `<run>/eval`."""

  def __init__(self, run_dir: str, tags: dict[str, str], steps_per_epoch: int):
    super().__init__()
    self.train_writer = tf.summary.create_file_writer(os.path.join(run_dir, "train"))
    self.eval_writer = tf.summary.create_file_writer(os.path.join(run_dir, "eval"))
    self.tags = tags
    self.steps_per_epoch = steps_per_epoch

  def on_epoch_end(self, epoch, logs=None):
    step = current_step(self.model)
    logs = logs or {}
    with self.train_writer.as_default(step=step):
      for key, value in logs.items():
        if not _is_evaluation(key):
          tf.summary.scalar(self.tags.get(key, key), value)
      tf.summary.scalar("learningrate", current_learning_rate(self.model))
      tf.summary.scalar("epoch", step / max(self.steps_per_epoch, 1))
    with self.eval_writer.as_default(step=step):
      for key, value in logs.items():
        if _is_evaluation(key):
          tf.summary.scalar(EVAL_TAGS.get(key, key), value)
    self.train_writer.flush()
    self.eval_writer.flush()


class EvaluateValidation(keras.callbacks.Callback):
  """After every evaluation: top-1 and loss on the held-out validation rows, as `validation_*` logs.

  Put it before the callbacks that record or save: they see the validation numbers in `logs`.
  """

  def __init__(self, make_dataset):
    super().__init__()
    self.make_dataset = make_dataset
    self.dataset = None

  def on_epoch_end(self, epoch, logs=None):
    if logs is None:
      return
    if self.dataset is None:
      self.dataset = self.make_dataset()
    results = self.model.evaluate(self.dataset, verbose=0, return_dict=True)
    logs["validation_top1"] = float(results["top1"])
    logs["validation_loss"] = float(results["loss"])


class RecordResults(keras.callbacks.Callback):
  """After every evaluation: results.json (latest + history) and one line of log.jsonl."""

  def __init__(self, run_dir: str, steps_per_epoch: int):
    super().__init__()
    self.run_dir = run_dir
    self.steps_per_epoch = steps_per_epoch
    self.started = time.time()

  def on_epoch_end(self, epoch, logs=None):
    logs = {k: float(v) for k, v in (logs or {}).items()}
    step = current_step(self.model)
    record = {"step": step, "epoch": step / max(self.steps_per_epoch, 1),
              "top1": logs.get("val_top1"), "top5": logs.get("val_top5"), "eval_loss": logs.get("val_loss"),
              "learning_rate": current_learning_rate(self.model)}
    record.update({k: logs[k] for k in ("validation_top1", "validation_loss") if k in logs})
    record.update({f"train_{k}": v for k, v in logs.items()
                   if not k.startswith("val_") and not k.startswith("validation_")})
    # A method's own evaluation metrics (SLN's network without the momentum copy, PRL's peer network).
    record.update({f"eval_{k[4:]}": v for k, v in logs.items()
                   if k.startswith("val_") and k not in ("val_top1", "val_top5", "val_loss")})
    run_files.record_result(self.run_dir, record)
    run_files.append_log(self.run_dir, {**record, "seconds": round(time.time() - self.started, 2)})
