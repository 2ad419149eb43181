"""SLN: stochastic label noise (Chen et al., ICLR 2021), with SLN-MO and SLN-MO-LC.

- SLN: every step the one-hot target gets Gaussian noise, t~ = onehot(y) + sigma * xi, and the loss is
  -mean_i sum_k t~_ik log softmax(z_i)_k. Nothing is renormalised, so the loss is written out
  (`soft_cross_entropy`): the fused softmax cross-entropy op has a wrong gradient for such targets.
- SLN-MO (`--use_ema`, on by default): a momentum copy of ALL network weights, BatchNorm statistics
  included, theta_mo <- d * theta_mo + (1 - d) * theta after every step (d = `sln_ema_decay`), starting
  as an exact copy. Evaluation uses it; `top1_no_ema` reports the training network (plain SLN) from
  the same run, as the original prints both. It replaces the base class's IEG-style EMA, which
  averages only the trainable weights with a warm-up decay: an SLN run keeps one average, not two.
- SLN-MO-LC (`--correction=E`, E > 0): from the 0-based epoch E on, sigma is 0 and the targets are
  per-example soft targets t_i = w_i * onehot(y_i) + (1 - w_i) * q_i, recomputed at the start of every
  epoch from the momentum model's predictions (q_i its one-hot argmax, or its probabilities with
  `--soft_correction`) and w_i, the loss against the current targets min-max normalised over the
  training set. A callback (`training_callbacks`) runs that pass over the training set (in-memory
  images, streamed image files or text) before each such epoch, as the original does; the targets
  live in a tracked [N, K] variable, so a checkpoint holds them.

The label noise is a stateless draw keyed by (seed, step): one [global batch, K] draw per step, of
which each replica takes its own rows, so a resumed or a multi-replica run adds the same noise.
"""
import dataclasses
import functools
import logging
import time
from typing import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf

from core import ranges
from core.errors import UserError
from datasets.pipelines import files as pipeline_files
from datasets.pipelines import images as pipeline
from methods import register_method
from methods.base import Method, as_batch, soft_cross_entropy

# Random streams of this method, next to the data pipeline's (order 1, weak 2, strong 3, probe 4).
NOISE_STREAM = 101
CORRECTION_VIEW_STREAM = 102
CORRECTION_CHUNK = 256  # images per forward of the label-correction pass
NO_TARGETS = -1  # `targets_epoch` before the first label correction


def label_noise(seed: int, step, num_classes: int, local_batch, num_replicas: int, replica_id) -> tf.Tensor:
  """This replica's rows of the step's [global batch, K] standard-normal draw, keyed by (seed, step).

  The global batch is split over the replicas in contiguous blocks, replica r holding rows
  [r * local_batch, (r + 1) * local_batch): the same example gets the same noise on any replica count.
  """
  key = pipeline.stream_seed(seed, NOISE_STREAM, step)
  noise = tf.random.stateless_normal([local_batch * num_replicas, num_classes], key)
  start = tf.cast(replica_id, tf.int32) * local_batch
  return noise[start:start + local_batch]


def corrected_targets(logits: tf.Tensor, current_targets: tf.Tensor, noisy_one_hot: tf.Tensor,
                      soft: bool = False) -> tf.Tensor:
  """SLN-MO-LC targets of the whole training set: w * onehot(noisy y) + (1 - w) * q.

  w is each example's loss against its current targets, min-max normalised over the set, so examples
  the momentum model disagrees with most keep their given label least. q is the model's one-hot
  prediction (CIFAR), or its probabilities with `soft` (Clothing1M). When every loss is equal the
  original divides 0 by 0; here w is then 0.
  """
  log_p = tf.nn.log_softmax(logits)
  losses = -tf.reduce_sum(current_targets * log_p, axis=-1)
  low, high = tf.reduce_min(losses), tf.reduce_max(losses)
  weight = tf.math.divide_no_nan(losses - low, high - low)[:, None]
  if soft:
    prediction = tf.exp(log_p)
  else:
    prediction = tf.one_hot(tf.argmax(logits, axis=-1), tf.shape(logits)[-1], dtype=logits.dtype)
  return weight * noisy_one_hot + (1.0 - weight) * prediction


def _is_float(variable) -> bool:
  return np.dtype(variable.dtype).kind == "f"


def _copy(variable, name: str) -> keras.Variable:
  """A non-trainable copy (tf.identity: `keras.Variable(v.value)` would share the tf.Variable).

  All replicas hold the same weights after a step, so the first replica's update is the one kept.
  """
  return keras.Variable(tf.identity(variable.value), trainable=False, name=name, aggregation="only_first_replica")


def _help(text: str, default, allowed: ranges.Range | None = None):
  """A Config field with its flag help and, for a number, its allowed range."""
  metadata = {"help": text} if allowed is None else {"help": text, "range": allowed}
  return dataclasses.field(default=default, metadata=metadata)


# CIFAR (methods.md 2.4): WRN-28-2, SGD 1e-3 constant, wd 5e-4, 300 epochs, correction from 250.
_CIFAR = {"network_name": "wrn28-2", "optimizer": "momentum", "learning_rate": 0.001, "lr_schedule": "constant",
          "batch_size": 128, "max_epoch": 300, "eval_freq": 390, "weight_decay": 5e-4, "use_ema": True,
          "probe_dataset_hold_ratio": 0.0, "correction": 250}

# The framework's MNIST protocol (scripts/benchmark_mnist_methods.sh: mnist_cnn, 30 epochs, batch 256,
# Adam 1e-3, clip 5), with the momentum model on (SLN-MO is part of the method) and the correction
# over the last sixth of training, as 250 of 300 epochs on CIFAR.
_MNIST = {"network_name": "mnist_cnn", "optimizer": "adam", "learning_rate": 0.001, "lr_schedule": "constant",
          "batch_size": 256, "max_epoch": 30, "eval_freq": 234, "weight_decay": 0.0, "grad_clip_norm": 5.0,
          "use_ema": True, "probe_dataset_hold_ratio": 0.0, "correction": 25}
# sigma by the paper's CIFAR-10 choice for the same kind of noise: 1.0 symmetric, 0.5 class-dependent.
_MNIST_NOISES = {"sym20": ("mnist_symmetric_0.2", 1.0), "sym50": ("mnist_symmetric_0.5", 1.0),
                 "pair45": ("mnist_pairflip_0.45", 0.5)}

# The paper's CIFAR settings (methods.md 2.4) and the MNIST protocol; every preset selects the method.
_PAPER_PRESETS = {
    "sln_cifar10_sym40": {**_CIFAR, "dataset": "cifar10_symmetric_0.4", "sigma": 1.0},
    "sln_cifar10_asym40": {**_CIFAR, "dataset": "cifar10_asymmetric_0.4", "sigma": 0.5},
    "sln_cifar100_sym40": {**_CIFAR, "dataset": "cifar100_symmetric_0.4", "sigma": 0.2},
    "sln_cifar100_asym40": {**_CIFAR, "dataset": "cifar100_pairflip_0.4", "sigma": 0.2},
    **{f"sln_mnist_{short}": {**_MNIST, "dataset": dataset, "sigma": sigma}
       for short, (dataset, sigma) in _MNIST_NOISES.items()},
}


@register_method("sln")
class SLN(Method):
  """Stochastic label noise on the one-hot targets; momentum model and label correction optional."""

  @dataclasses.dataclass
  class Config:
    sigma: float = _help("SLN: standard deviation of the Gaussian noise added to the one-hot targets every step "
                         "(0: plain cross-entropy).", 0.5, ranges.NON_NEGATIVE)
    correction: int = _help("SLN-MO-LC: from this 0-based epoch on, sigma is 0 and the targets are corrected "
                            "every epoch from the momentum model (<= 0: no correction; needs --use_ema).", -1, ranges.Range(high=1e6))
    sln_ema_decay: float = _help("SLN-MO: per-step decay of the momentum copy of all weights (incl. BatchNorm "
                                 "statistics); the copy is used when --use_ema is set.", 0.999, ranges.FRACTION_BELOW_ONE)
    soft_correction: bool = _help("SLN-MO-LC: mix in the momentum model's probabilities (Clothing1M) instead of "
                                  "its one-hot prediction (CIFAR).", False)
    correction_on_augmented: bool = _help("SLN-MO-LC: predict on weakly augmented training images, as the "
                                          "original does; false: on the plain images.", True)

  PRESETS = {name: {"method": "sln", **values} for name, values in _PAPER_PRESETS.items()}
  SCORE_SUSPICIOUS_END = {**Method.SCORE_SUSPICIOUS_END, "target_label_mass": "low"}

  def __init__(self, network: keras.Model, context, config=None):
    # The momentum model replaces the base's EMA of trainable weights (see the module doc).
    super().__init__(network, dataclasses.replace(context, use_ema=False), config)
    self.context = context
    self._check_config()
    self.momentum_model = bool(context.use_ema)
    self.correcting = self.config.correction > 0
    self.sigma_tracker = self.add_metric_tracker("sigma", "sln/sigma")
    self.mo_weights, self.mo_statistics, self._statistic_slots = [], [], ()
    if self.momentum_model:
      self.mo_weights = [_copy(v, f"sln_mo_{i}") for i, v in enumerate(network.trainable_variables)]
      # BatchNorm moving statistics; integer state (dropout seeds) is not averaged.
      self._statistic_slots = tuple(i for i, v in enumerate(network.non_trainable_variables) if _is_float(v))
      self.mo_statistics = [_copy(network.non_trainable_variables[i], f"sln_mo_stat_{i}")
                            for i in self._statistic_slots]
      self.eval_top1_network = keras.metrics.SparseCategoricalAccuracy(name="top1_no_ema")
    if self.correcting:
      self.soft_targets = keras.Variable(tf.zeros([context.num_train_examples, context.num_classes]),
                                         trainable=False, name="sln_targets", aggregation="only_first_replica")
      self.targets_epoch = keras.Variable(NO_TARGETS, dtype="int64", trainable=False, name="sln_targets_epoch",
                                          aggregation="only_first_replica")

  def _check_config(self) -> None:
    cfg = self.config
    if cfg.sigma < 0:
      raise UserError(f"--sigma={cfg.sigma} is invalid: give a standard deviation >= 0")
    if not 0.0 <= cfg.sln_ema_decay < 1.0:
      raise UserError(f"--sln_ema_decay={cfg.sln_ema_decay} is outside [0, 1): give e.g. 0.999")
    if cfg.correction > 0 and not self.context.use_ema:
      raise UserError(f"--correction={cfg.correction} corrects labels with the momentum model: "
                      "keep --use_ema=true, or set --correction=-1")

  # ----- training ----------------------------------------------------------------------------
  def training_loss(self, data):
    logits = self.network(data["image"], training=True)
    targets = tf.one_hot(data["label"], self.context.num_classes)
    sigma = tf.constant(self.config.sigma, tf.float32)
    if self.correcting:
      correcting = self.data_epoch() >= self.config.correction
      targets = tf.where(correcting, tf.gather(self.soft_targets, data["index"]), targets)
      sigma = tf.where(correcting, 0.0, sigma)
    if self.config.sigma > 0:
      local_batch = tf.shape(logits)[0]
      replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
      targets += sigma * label_noise(self.context.seed, self.optimizer.iterations, self.context.num_classes,
                                     local_batch, self.num_replicas, replica_id)
    self.sigma_tracker.update_state(sigma)
    return tf.reduce_mean(soft_cross_entropy(targets, logits)), logits

  def update_ema(self) -> None:
    """SLN-MO: after each step, average every float weight of the network (BN statistics too)."""
    if not self.momentum_model:
      return
    decay = self.config.sln_ema_decay
    statistics = [self.network.non_trainable_variables[i] for i in self._statistic_slots]
    for shadow, variable in zip(self.mo_weights + self.mo_statistics, self.network.trainable_variables + statistics):
      shadow.assign(decay * shadow + (1.0 - decay) * variable)

  # ----- evaluation --------------------------------------------------------------------------
  def momentum_logits(self, images: tf.Tensor) -> tf.Tensor:
    """Inference logits of the momentum model: averaged weights and averaged BN statistics."""
    non_trainable = [v.value for v in self.network.non_trainable_variables]
    for slot, shadow in zip(self._statistic_slots, self.mo_statistics):
      non_trainable[slot] = shadow.value
    logits, _ = self.network.stateless_call([v.value for v in self.mo_weights], non_trainable, images,
                                            training=False)
    return logits

  def evaluation_logits(self, images: tf.Tensor) -> tf.Tensor:
    if not self.momentum_model:
      return self.network(images, training=False)
    return self.momentum_logits(images)

  def test_step(self, data):
    results = super().test_step(data)
    if self.momentum_model:
      data = as_batch(data)
      self.eval_top1_network.update_state(data["label"], self.network(data["image"], training=False))
      results[self.eval_top1_network.name] = self.eval_top1_network.result()
    return results

  def method_scores(self, batch, logits):
    """SLN-MO-LC: the mass its corrected target leaves on the given label (1 before the first correction)."""
    del logits
    if not self.correcting:
      return {}
    mass = tf.gather(tf.gather(self.soft_targets, batch["index"]), tf.cast(batch["label"], tf.int32), axis=-1,
                     batch_dims=1)
    corrected = tf.not_equal(self.targets_epoch, NO_TARGETS)
    return {"target_label_mass": tf.where(corrected, mass, tf.ones_like(mass))}

  # ----- label correction --------------------------------------------------------------------
  def current_targets(self, noisy_labels: np.ndarray) -> tf.Tensor:
    """The targets the next correction measures losses against: one-hot labels before the first."""
    if int(self.targets_epoch.numpy()) == NO_TARGETS:
      return tf.one_hot(noisy_labels, self.context.num_classes)
    return tf.convert_to_tensor(self.soft_targets)

  def store_targets(self, targets: tf.Tensor, epoch: int) -> None:
    self.soft_targets.assign(targets)
    self.targets_epoch.assign(epoch)

  def training_callbacks(self, data) -> list:
    if not self.correcting:
      return []
    kind = getattr(data, "kind", "images")
    if kind not in CORRECTION_INPUTS:
      raise UserError(f"--correction={self.config.correction}: label correction does not support {kind} data; "
                      "set --correction=-1")
    batches = CORRECTION_INPUTS[kind](data, self.config.correction_on_augmented, self.context.seed, CORRECTION_CHUNK)
    return [LabelCorrection(self, batches, data.y_train)]


# ----- the training set in index order, one epoch's view at a time ------------------------------
Batches = Callable[[int], Iterable[tf.Tensor]]  # epoch -> network inputs of every training example, in order


def in_memory_image_batches(images: np.ndarray, view: dict | None, seed: int, chunk: int) -> Batches:
  """uint8 images -> [-1, 1] inputs, weakly augmented when `view` names the pipeline's weak view.

  The view of chunk c in epoch e is keyed by (seed, stream 102, e, c): a resumed run sees the same views.
  """
  augment = None
  if view is not None:
    augment = functools.partial(pipeline.WEAK_AUGMENTATIONS[view["weak_augmentation"]], pad=view["pad"],
                                flip=view["flip"])

  @tf.function(reduce_retracing=True)
  def prepare(chunk_images, key):
    if augment is not None:
      chunk_images = augment(chunk_images, key)
    return pipeline.to_unit_range(chunk_images)

  def batches(epoch: int):
    base = pipeline.stream_seed(seed, CORRECTION_VIEW_STREAM, epoch)
    for number, start in enumerate(range(0, len(images), chunk)):
      key = tf.random.experimental.stateless_fold_in(base, number)
      yield prepare(tf.constant(images[start:start + chunk]), key)
  return batches


def _image_batches(data, augmented: bool, seed: int, chunk: int) -> Batches:
  view = None
  if augmented:
    augmentation = pipeline.augmentation_for(data.spec.name, data.image_shape)
    view = {k: augmentation[k] for k in ("weak_augmentation", "pad", "flip")}
  return in_memory_image_batches(data.x_train, view, seed, chunk)


def _image_file_batches(data, augmented: bool, seed: int, chunk: int) -> Batches:
  """Streamed files: the training view keyed by (seed, epoch), or the centre crop."""
  def batches(epoch: int):
    if augmented:
      dataset = pipeline_files.ordered_train_dataset(data.train, batch_size=chunk, seed=seed, pass_number=epoch,
                                                     image_size=data.image_shape[0], view=data.train_view)
    else:
      dataset = pipeline_files.eval_dataset(data.train, batch_size=chunk, image_size=data.image_shape[0])
    for batch in dataset:
      yield batch["image"]
  return batches


def _text_batches(data, augmented: bool, seed: int, chunk: int) -> Batches:
  """Token ids as they are: text has no augmentation."""
  del augmented, seed
  tokens = data.x_train.astype(np.int32)
  return lambda epoch: (tf.constant(tokens[start:start + chunk]) for start in range(0, len(tokens), chunk))


# NoisyDataset.kind / FileNoisyDataset.kind -> how to walk its training set.
CORRECTION_INPUTS: dict[str, Callable[..., Batches]] = {
    "images": _image_batches, "image_files": _image_file_batches, "text": _text_batches}


class LabelCorrection(keras.callbacks.Callback):
  """Before the first step of every epoch >= `correction`, recomputes the SLN-MO-LC targets.

  The pass runs the momentum model (inference mode) over the training set in index order, by
  default on the training kind of view (the original predicts on augmented images). It runs on one
  device.
  """

  def __init__(self, method: SLN, batches: Batches, noisy_labels: np.ndarray):
    super().__init__()
    self.method = method
    self.batches = batches
    self.noisy_labels = np.asarray(noisy_labels, np.int64)
    self._done_epoch = None
    self._logits = tf.function(method.momentum_logits, reduce_retracing=True)

  def on_epoch_begin(self, epoch, logs=None):
    self.period_start = int(self.method.optimizer.iterations.numpy())  # once a period, not once a step

  def on_train_batch_begin(self, batch, logs=None):
    method = self.method
    epoch = (self.period_start + batch) // max(method.context.steps_per_epoch, 1)
    if epoch < method.config.correction:
      return
    if self._done_epoch is None:
      self._done_epoch = int(method.targets_epoch.numpy())  # a restored checkpoint may already hold them
    if epoch != self._done_epoch:
      self.refresh(epoch)

  def refresh(self, epoch: int) -> None:
    """Recomputes and stores the targets of `epoch`."""
    started = time.time()
    method = self.method
    logits = tf.concat([self._logits(inputs) for inputs in self.batches(epoch)], axis=0)
    noisy_one_hot = tf.one_hot(self.noisy_labels, method.context.num_classes)
    targets = corrected_targets(logits, method.current_targets(self.noisy_labels), noisy_one_hot,
                                soft=method.config.soft_correction)
    method.store_targets(targets, epoch)
    self._done_epoch = epoch
    logging.info("SLN-MO-LC: corrected the targets of epoch %d in %.1f s", epoch, time.time() - started)
