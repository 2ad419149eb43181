"""Keras callbacks of a training run. A Keras "epoch" here is `eval_freq` steps, as IEG's evaluation period."""
import logging
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
  optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)  # under float16 loss scaling
  lr = optimizer.learning_rate
  if isinstance(optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule):  # pylint: disable=protected-access
    lr = optimizer._learning_rate(optimizer.iterations)  # pylint: disable=protected-access
  return float(tf.convert_to_tensor(lr).numpy())


class StepCounter(keras.callbacks.Callback):
  """Knows the current step without asking the device: read once per period, counted per batch.

  Reading `optimizer.iterations` after a step waits for that step; doing it at every batch would
  cost a host sync per step, which a plain `fit` does not pay.
  """

  def on_epoch_begin(self, epoch, logs=None):
    self.period_start = current_step(self.model)

  def step_after(self, batch: int) -> int:
    return self.period_start + batch + 1


class TrainingThroughput(keras.callbacks.Callback):
  """Training images per second of each period, as `images_per_second` in the period's logs.

  Timed from the period's start to its evaluation (Keras waits for the last step before it), so the
  evaluation and the callbacks of the period end are not part of it, and no step is synchronised.
  """

  def __init__(self, global_batch: int, clock=time.perf_counter):
    super().__init__()
    self.global_batch = global_batch
    self.clock = clock   # seconds; a test passes its own
    self.started = self.elapsed = None

  def on_epoch_begin(self, epoch, logs=None):
    self.started, self.elapsed = self.clock(), None

  def on_test_begin(self, logs=None):
    if self.started is not None and self.elapsed is None:
      self.elapsed = self.clock() - self.started

  def on_epoch_end(self, epoch, logs=None):
    self.on_test_begin()
    if logs is not None and self.elapsed:
      logs["images_per_second"] = self.params["steps"] * self.global_batch / self.elapsed


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

  def __init__(self, run_dir: str, steps_per_epoch: int, max_iteration: int | None = None):
    super().__init__()
    self.run_dir = run_dir
    self.steps_per_epoch = steps_per_epoch
    self.max_iteration = max_iteration
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
    logging.info("%s", progress_line(record, self.max_iteration))


def progress_line(record: dict, max_iteration: int | None) -> str:
  """One line per evaluation: where the run is, how it does and how fast it trains (no per-step bar:
  drawing one would make every step wait for the host)."""
  parts = [f"step {record['step']}" + (f" of {max_iteration}" if max_iteration else "")]
  parts += [f"{name} {record[key]:.4f}" for name, key in (
      ("top1", "top1"), ("validation top1", "validation_top1"), ("eval loss", "eval_loss"),
      ("train loss", "train_loss"), ("train accuracy", "train_accuracy")) if record.get(key) is not None]
  if record.get("train_images_per_second"):
    parts.append(f"{record['train_images_per_second']:.0f} images/s")
  return ", ".join(parts)
