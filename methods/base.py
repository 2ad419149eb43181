"""The Keras model every method shares: a network wrapper with a custom `train_step` / `test_step`.

A simple method overrides `training_loss` (one forward, one backward). Methods with look-ahead
steps, re-forwards or two networks override `train_step` and reuse the building blocks here:
`l2_loss`, `apply_gradients`, `update_ema`, `record_training` and `train_results`.

Loss scaling under `tf.distribute`: each replica computes the mean loss over its own examples;
`apply_gradients` divides the gradients by the number of replicas because the optimizer SUMs them
across replicas, so the update uses the mean gradient of the global batch.
"""
import dataclasses
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

EMA_DECAY = 0.999


@dataclasses.dataclass
class TrainingContext:
  """What a method may know about the run, besides its own hyper-parameters."""
  num_classes: int
  steps_per_epoch: int  # steps in one pass over the noisy training set (IEG's iter_epoch)
  num_train_examples: int
  weight_decay: float = 0.0  # coupled L2: 0.5 * wd * sum ||v||^2 over all trainable variables
  use_ema: bool = False
  grad_clip_norm: float | None = None
  seed: int = 0
  noise_ratio: float = 0.0  # the nominal noise rate (selection methods default their forget rate to it)
  transition: np.ndarray | None = None  # the true noise transition matrix, when it is known
  make_network: Callable[[], keras.Model] | None = None  # for methods that need a second network
  # Known corruption mask by training row (synthetic noise only). For logged diagnostics such as the
  # label precision of selected examples; it must never influence an update.
  corrupted: np.ndarray | None = None


def sparse_cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
  """Per-example cross-entropy with integer labels."""
  return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32), logits=logits)


def as_batch(data) -> dict:
  """The batch dict, whether Keras passes it as is (fit on a dataset) or packed as (x, y, weights)."""
  while isinstance(data, (tuple, list)):
    data = data[0]
  return data


def soft_cross_entropy(targets: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
  """-sum(t * log_softmax(z)): correct gradients even when rows of t are not distributions.

  The fused softmax cross-entropy op assumes each target row sums to one; noisy or corrected
  targets (SLN, backward correction, MixUp) break that assumption.
  """
  return -tf.reduce_sum(targets * tf.nn.log_softmax(logits), axis=-1)


class Method(keras.Model):
  """Base class of all methods. Subclasses set `method_name` through `@register_method`."""

  method_name: str = ""
  needs_probe: bool = False  # train batches carry `probe_image` / `probe_label`
  needs_strong_view: bool = False  # train batches carry `image_strong`

  @dataclasses.dataclass
  class Config:
    """Method hyper-parameters; every field becomes a command-line flag of the same name."""

  # Metric name -> TensorBoard tag. The tags are the original IEG summary names.
  SCALAR_TAGS = {"loss": "loss/net", "accuracy": "acc/train"}

  def __init__(self, network: keras.Model, context: TrainingContext, config=None):
    super().__init__(name=self.method_name or "method")
    self.network = network
    self.context = context
    self.config = config if config is not None else self.Config()
    self.loss_tracker = keras.metrics.Mean(name="loss")
    self.train_accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    self.eval_loss = keras.metrics.Mean(name="loss")
    self.eval_top1 = keras.metrics.SparseCategoricalAccuracy(name="top1")
    self.eval_top5 = keras.metrics.SparseTopKCategoricalAccuracy(k=min(5, context.num_classes), name="top5")
    self.extra_metrics: dict[str, keras.metrics.Metric] = {}
    self.ema_weights = []
    if context.use_ema:
      # Only the first replica's update is kept: all replicas hold the same weights after a step.
      # tf.identity copies: keras.Variable(v.value) would wrap the very same tf.Variable.
      self.ema_weights = [
          keras.Variable(tf.identity(v.value), trainable=False, name=f"ema_{i}", aggregation="only_first_replica")
          for i, v in enumerate(network.trainable_variables)]

  # ----- plumbing that Keras calls -----------------------------------------------------------
  def call(self, inputs, training=False):
    images = inputs["image"] if isinstance(inputs, dict) else inputs
    return self.network(images, training=training)

  def train_step(self, data):
    data = as_batch(data)
    with tf.GradientTape() as tape:
      loss, logits = self.training_loss(data)
      total = loss + self.l2_loss()
      scaled = total * self.loss_scale()
    self.apply_gradients(tape.gradient(scaled, self.network.trainable_variables))
    self.update_ema()
    self.record_training(total, data["label"], logits)
    return self.train_results()

  def test_step(self, data):
    data = as_batch(data)
    labels = data["label"]
    logits = self.evaluation_logits(data["image"])
    self.eval_loss.update_state(sparse_cross_entropy(labels, logits))
    self.eval_top1.update_state(labels, logits)
    self.eval_top5.update_state(labels, logits)
    return {m.name: m.result() for m in (self.eval_loss, self.eval_top1, self.eval_top5)}

  # ----- what a simple method overrides ------------------------------------------------------
  def training_loss(self, data) -> tuple[tf.Tensor, tf.Tensor]:
    """Returns (mean loss over this replica's batch, logits of the batch)."""
    raise NotImplementedError

  # ----- building blocks ---------------------------------------------------------------------
  @property
  def num_replicas(self) -> int:
    return tf.distribute.get_strategy().num_replicas_in_sync

  def add_metric_tracker(self, name: str, tag: str) -> keras.metrics.Mean:
    """A running mean shown in the progress bar and written to TensorBoard under `tag`."""
    metric = keras.metrics.Mean(name=name)
    self.extra_metrics[name] = metric
    self.SCALAR_TAGS = {**self.SCALAR_TAGS, name: tag}
    return metric

  def l2_loss(self, variables=None) -> tf.Tensor:
    """Coupled L2 as the references add it to the loss: 0.5 * wd * sum ||v||^2."""
    wd = self.context.weight_decay
    variables = self.network.trainable_variables if variables is None else variables
    if not wd:
      return tf.constant(0.0)
    return 0.5 * wd * tf.add_n([tf.reduce_sum(tf.square(v)) for v in variables])

  def loss_scale(self, optimizer=None) -> tf.Tensor | float:
    """The float16 loss scale of `optimizer` (1.0 without loss scaling).

    Differentiate `loss * loss_scale()` so that small float16 gradients do not underflow;
    `apply_gradients` expects gradients of the scaled loss, and the optimizer unscales them.
    """
    scale = getattr(optimizer or self.optimizer, "dynamic_scale", None)
    return 1.0 if scale is None else tf.convert_to_tensor(scale)

  def apply_gradients(self, grads, variables=None, optimizer=None) -> None:
    """Applies per-replica gradients of a per-replica mean (scaled) loss as one global-batch update."""
    variables = self.network.trainable_variables if variables is None else variables
    optimizer = optimizer or self.optimizer
    replicas = self.num_replicas
    grads = [g / replicas for g in grads]
    if self.context.grad_clip_norm:
      # Clip the true gradient: unscale first, scale back after (exact, the scale is a power of two).
      scale = self.loss_scale(optimizer)
      # Clip the global-batch gradient, as a single-device run would, not each replica's share.
      summed = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM,
                                                              [g / scale for g in grads])
      clipped, _ = tf.clip_by_global_norm(summed, self.context.grad_clip_norm)
      grads = [g * scale / replicas for g in clipped]  # the optimizer sums them again
    optimizer.apply(grads, variables)

  def update_ema(self) -> None:
    """IEG's EMA: decay min(0.999, (1 + n) / (10 + n)) with n the number of updates so far."""
    if not self.ema_weights:
      return
    n = tf.cast(self.optimizer.iterations, tf.float32)
    decay = tf.minimum(EMA_DECAY, (1.0 + n) / (10.0 + n))
    for shadow, variable in zip(self.ema_weights, self.network.trainable_variables):
      shadow.assign(decay * shadow + (1.0 - decay) * variable)

  def evaluation_logits(self, images: tf.Tensor) -> tf.Tensor:
    """Inference logits; with EMA, the averaged weights and the network's own BN statistics."""
    if not self.ema_weights:
      return self.network(images, training=False)
    logits, _ = self.network.stateless_call(
        [v.value for v in self.ema_weights],
        [v.value for v in self.network.non_trainable_variables],
        images, training=False)
    return logits

  # Score name of `example_scores` -> the end that marks a likely mislabelled example ("high" or "low").
  SCORE_SUSPICIOUS_END = {"cross_entropy": "high", "max_softmax": "low"}

  def example_scores(self, batch) -> dict[str, tf.Tensor]:
    """Per-example scores [B] of training examples (`image`, noisy `label`, `index`) for the detection report.

    Every method gives the cross-entropy of the noisy label and the largest softmax probability under
    the evaluation weights; `method_scores` adds the method's own signal.
    """
    logits = self.evaluation_logits(batch["image"])
    scores = {"cross_entropy": sparse_cross_entropy(batch["label"], logits),
              "max_softmax": tf.reduce_max(tf.nn.softmax(logits, axis=-1), axis=-1)}
    scores.update(self.method_scores(batch, logits))
    return scores

  def method_scores(self, batch, logits: tf.Tensor) -> dict[str, tf.Tensor]:
    """Scores of a method that weights, selects or relabels examples (the weight it would give each one),
    computed without changing any state; each name needs its suspicious end in SCORE_SUSPICIOUS_END."""
    del batch, logits
    return {}

  def record_training(self, loss: tf.Tensor, labels: tf.Tensor, logits: tf.Tensor) -> None:
    self.loss_tracker.update_state(loss)
    self.train_accuracy.update_state(labels, logits)

  def train_results(self) -> dict[str, tf.Tensor]:
    results = {"loss": self.loss_tracker.result(), "accuracy": self.train_accuracy.result()}
    results.update({name: m.result() for name, m in self.extra_metrics.items()})
    return results

  def checkpoint_variables(self) -> dict[str, list]:
    """Everything a checkpoint holds, as ordered lists (EMA, seed states and method state included).

    Methods with more state outside the model's own variables (a second optimizer) extend this.
    """
    return {"model": list(self.variables), "optimizer": list(self.optimizer.variables)}

  def data_epoch(self) -> tf.Tensor:
    """The current pass over the training set (0-based), from the step counter: exact on resume."""
    return self.optimizer.iterations // max(self.context.steps_per_epoch, 1)

  def training_callbacks(self, data) -> list:
    """Extra Keras callbacks for `fit`, given the run's NoisyDataset (e.g. a pass over the training set)."""
    del data
    return []
