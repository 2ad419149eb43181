"""SIGUA (Han et al., ICML 2020): gradient descent on "good" examples, a scaled-down gradient
ascent on "bad" ones.

Three weightings of the per-example losses, chosen with `--sigua_variant`:
- `sl` (official SIGUA_SL): rank the batch by cross-entropy; the R = int((1 - tau_e) B) smallest
  are good, the next S = int((B - R) sigua_rate) are bad (the smallest of the forgotten ones, just
  above the cut-off; one example when S = 0). L = mean(good) - sigua_scale * mean(bad).
- `bc` (official SIGUA_BC): backward-corrected loss l_i = -sum_k T^-1[y_i, k] log p_ik with the
  true transition matrix T; examples with l_i < 0 get weight -sigua_scale. L = mean_i w_i l_i.
  Plain backward correction during the first `sigua_warm_up` passes.
- `pytorch` (pytorch-SIGUA): same ranks as `sl` without the one-example fallback;
  L = (sum(good) - bad_weight * sum(bad)) / B, both terms over the whole batch.

The rank of an example is taken over the global batch (see methods/selection.py), and the forget
rate tau_e is a function of the pass over the data, so both are exact under replicas and on resume.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from core import ranges
from core.errors import UserError
from core.registry import Registry
from methods import register_method
from methods import selection
from methods.base import Method, as_batch, soft_cross_entropy, sparse_cross_entropy

# The seed's MNIST protocol (pytorch-SIGUA): 30 epochs, batch 256, Adam 1e-3, clip 5, no EMA.
_MNIST_PYTORCH = dict(network_name="mnist_cnn", optimizer="adam", learning_rate=1e-3, lr_schedule="constant",
                      batch_size=256, max_epoch=30, eval_freq=234, use_ema=False, probe_dataset_hold_ratio=0.0,
                      weight_decay=0.0, grad_clip_norm=5.0, sigua_variant="pytorch", num_gradual=5,
                      bad_weight=0.001, sigua_rate=0.5)
# bhanML/SIGUA: batch 128, epochs 1..199 (199 passes), no weight decay, 9-layer CNN.
_CIFAR10_STEPS = 50000 // 128
_MNIST_STEPS = 60000 // 128
_OFFICIAL = dict(network_name="cnn9", batch_size=128, max_epoch=199, use_ema=False, probe_dataset_hold_ratio=0.0,
                 weight_decay=0.0, grad_clip_norm=None, num_gradual=10, exponent=1.0)


def _sl(steps_per_epoch: int, **options) -> dict:
  """SIGUA_SL: Adam 1e-3, constant until epoch 80 then linear to 0 with beta1 0.1 (co-teaching plan)."""
  return {**_OFFICIAL, "optimizer": "adam", "learning_rate": 1e-3, "lr_schedule": "coteaching_linear",
          "decay_steps": (79 * steps_per_epoch,), "eval_freq": steps_per_epoch, "sigua_variant": "sl", **options}


def _bc(steps_per_epoch: int, step_epochs: int, **options) -> dict:
  """SIGUA_BC: StepLR(step_epochs, 0.1) stepped before each epoch 1..199, i.e. 0.1^floor((pass + 1) / step)."""
  boundaries = tuple(e * steps_per_epoch - 1 for e in range(step_epochs - 1, 199, step_epochs))
  return {**_OFFICIAL, "learning_rate": 1e-3, "lr_schedule": "custom_step", "decay_steps": boundaries,
          "decay_rate": 0.1, "eval_freq": steps_per_epoch, "sigua_variant": "bc", "sigua_scale": 1.0, **options}


_NOISES = {"sym20": ("symmetric", 0.2), "sym50": ("symmetric", 0.5), "pair45": ("pairflip", 0.45)}
_SL_CIFAR10 = {"pair45": (0.01, 0.3), "sym50": (0.01, 0.3), "sym20": (0.01, 0.4)}  # (sigua_scale, sigua_rate)
_SL_MNIST = {"pair45": (0.001, 0.7), "sym50": (0.01, 0.3), "sym20": (0.01, 0.4)}
_BC_CIFAR10_WARM_UP = {"pair45": 0, "sym50": 18, "sym20": 0}


def _presets() -> dict[str, dict]:
  presets = {}
  for short, (noise, rate) in _NOISES.items():
    mnist, cifar10 = f"mnist_{noise}_{rate}", f"cifar10_{noise}_{rate}"
    presets[f"sigua_mnist_{short}"] = {**_MNIST_PYTORCH, "dataset": mnist, "forget_rate": rate}
    scale, fraction = _SL_CIFAR10[short]
    presets[f"sigua_sl_cifar10_{short}"] = _sl(_CIFAR10_STEPS, dataset=cifar10, sigua_scale=scale, sigua_rate=fraction)
    scale, fraction = _SL_MNIST[short]
    presets[f"sigua_sl_mnist_{short}"] = _sl(_MNIST_STEPS, dataset=mnist, sigua_scale=scale, sigua_rate=fraction)
    presets[f"sigua_bc_cifar10_{short}"] = _bc(_CIFAR10_STEPS, 20, dataset=cifar10, optimizer="momentum",
                                               momentum=0.9, sigua_warm_up=_BC_CIFAR10_WARM_UP[short])
    presets[f"sigua_bc_mnist_{short}"] = _bc(_MNIST_STEPS, 10, dataset=mnist, optimizer="adam", sigua_warm_up=0)
  return {name: {"method": "sigua", **values} for name, values in presets.items()}


@dataclasses.dataclass(frozen=True)
class Weighting:
  """L = sum_i coefficients_i * loss_i over the global batch; `good` / `bad` mark the two sets."""
  coefficients: tf.Tensor
  good: tf.Tensor
  bad: tf.Tensor


def small_loss_sets(losses: tf.Tensor, forget_rate: tf.Tensor, sigua_rate: float, at_least_one_bad: bool):
  """(good, bad, R, S): ranks [0, R) are good and [R, R + S) bad, R = int((1 - rate) B), S = int((B - R) sigua_rate).

  With `at_least_one_bad` (official code) S = 0 becomes the one example at rank R, if any is forgotten.
  """
  size = tf.size(losses)
  ranks = selection.ascending_ranks(losses)
  remembered = selection.remember_count(forget_rate, size)
  forgotten = size - remembered
  bad_count = selection.fraction_count(forgotten, sigua_rate)
  if at_least_one_bad:
    bad_count = tf.where(bad_count > 0, bad_count, tf.minimum(forgotten, 1))
  good = ranks < remembered
  bad = selection.rank_window(ranks, remembered, remembered + bad_count)
  return good, bad, remembered, bad_count


def _mask_mean(mask: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
  """mask / count, zero for an empty set instead of the reference's NaN."""
  return tf.cast(mask, tf.float32) / tf.cast(tf.maximum(count, 1), tf.float32)


class _Variant:
  """One SIGUA weighting: its per-example loss, forget-rate schedule and coefficients."""

  uses_forget_rate = True

  def __init__(self, method: "Sigua"):
    self.method = method
    self.config = method.config

  def losses(self, labels, logits) -> tf.Tensor:
    return sparse_cross_entropy(labels, logits)

  def forget_rate(self, epoch) -> tf.Tensor:
    return selection.coteaching_forget_rate(epoch, self.method.forget_rate, self.config.num_gradual,
                                            self.config.exponent)

  def weighting(self, losses: tf.Tensor, epoch) -> Weighting:
    raise NotImplementedError


_VARIANTS = Registry("sigua_variant")
_variant = _VARIANTS.register


@_variant("sl")
class _SmallLoss(_Variant):
  """Official SIGUA_SL: mean(good) - sigua_scale * mean(bad)."""

  def weighting(self, losses, epoch):
    good, bad, remembered, bad_count = small_loss_sets(losses, self.forget_rate(epoch), self.config.sigua_rate,
                                                       at_least_one_bad=True)
    coefficients = _mask_mean(good, remembered) - self.config.sigua_scale * _mask_mean(bad, bad_count)
    return Weighting(coefficients, good, bad)


@_variant("pytorch")
class _PytorchSigua(_Variant):
  """pytorch-SIGUA: (sum(good) - bad_weight * sum(bad)) / B with tau * min(epoch / num_gradual, 1)."""

  def forget_rate(self, epoch):
    return selection.gradual_forget_rate(epoch, self.method.forget_rate, self.config.num_gradual)

  def weighting(self, losses, epoch):
    good, bad, _, _ = small_loss_sets(losses, self.forget_rate(epoch), self.config.sigua_rate,
                                      at_least_one_bad=False)
    size = tf.cast(tf.size(losses), tf.float32)
    coefficients = (tf.cast(good, tf.float32) - self.config.bad_weight * tf.cast(bad, tf.float32)) / size
    return Weighting(coefficients, good, bad)


@_variant("bc")
class _BackwardCorrection(_Variant):
  """Official SIGUA_BC: weight -sigua_scale where the backward-corrected loss is negative."""

  uses_forget_rate = False

  def __init__(self, method):
    super().__init__(method)
    self.inverse = inverse_transition(method.context.transition)

  def losses(self, labels, logits):
    targets = tf.gather(tf.constant(self.inverse), tf.cast(labels, tf.int32))
    return soft_cross_entropy(targets, logits)  # not a distribution: the fused op's gradient is wrong

  def weighting(self, losses, epoch):
    size = tf.cast(tf.size(losses), tf.float32)
    warming = tf.cast(epoch, tf.int64) < self.config.sigua_warm_up
    bad = tf.logical_and(losses < 0.0, tf.logical_not(warming))
    coefficients = tf.where(bad, -self.config.sigua_scale, 1.0) / size
    return Weighting(coefficients, tf.logical_not(bad), bad)


def inverse_transition(transition: np.ndarray | None) -> np.ndarray:
  """T^-1 of the true noise process, float32; a UserError when it is unknown or singular."""
  if transition is None:
    raise UserError("--sigua_variant=bc needs the true noise transition matrix, which this dataset does not "
                    "have (real or user-given labels): use --sigua_variant=sl")
  transition = np.asarray(transition, np.float64)
  if np.linalg.cond(transition) > 1e8:
    raise UserError("--sigua_variant=bc needs an invertible noise transition matrix; this noise rate makes it "
                    "singular (e.g. symmetric noise at (K-1)/K): use --sigua_variant=sl")
  return np.linalg.inv(transition).astype(np.float32)


@register_method("sigua")
class Sigua(Method):
  """SIGUA_SL, SIGUA_BC and pytorch-SIGUA on one network (see the module docstring)."""

  @dataclasses.dataclass
  class Config(selection.ForgetScheduleConfig):
    sigua_variant: str = dataclasses.field(default="sl", metadata={"help": (
        "sl: official SIGUA_SL (small-loss selection); bc: official SIGUA_BC (backward correction with the "
        "true transition matrix); pytorch: pytorch-SIGUA weighting (both terms over the batch size).")})
    sigua_rate: float = dataclasses.field(default=0.3, metadata={"range": ranges.FRACTION, "help": (
        "SIGUA (sl, pytorch): fraction of the forgotten examples, taken just above the cut-off, that get "
        "gradient ascent (pytorch-SIGUA uses 0.5).")})
    sigua_scale: float = dataclasses.field(default=0.01, metadata={"range": ranges.NON_NEGATIVE, "help": (
        "SIGUA (sl, bc): weight gamma of the gradient ascent on the bad examples.")})
    bad_weight: float = dataclasses.field(default=0.001, metadata={"range": ranges.NON_NEGATIVE, "help": (
        "SIGUA (pytorch): weight of the bad examples in (sum(good) - bad_weight * sum(bad)) / B.")})
    sigua_warm_up: int = dataclasses.field(default=0, metadata={"range": ranges.at_least(0), "help": (
        "SIGUA (bc): passes over the data with plain backward correction before SIGUA starts.")})

  PRESETS = _presets()
  SCORE_SUSPICIOUS_END = {**Method.SCORE_SUSPICIOUS_END, "selected": "low", "pushed_back": "high",
                          "corrected_loss": "low"}

  def __init__(self, network, context, config=None):
    super().__init__(network, context, config)
    cfg = self.config
    _VARIANTS.check(cfg.sigua_variant)
    if not 0.0 <= cfg.sigua_rate <= 1.0:
      raise UserError(f"--sigua_rate={cfg.sigua_rate} is outside [0, 1]: give the fraction of the forgotten "
                      "examples to push back, e.g. 0.3")
    for name in ("sigua_scale", "bad_weight"):
      if getattr(cfg, name) < 0:
        raise UserError(f"--{name}={getattr(cfg, name)} is negative: give a weight >= 0 (the sign is built in)")
    variant = _VARIANTS[cfg.sigua_variant]
    self.forget_rate = (selection.resolve_forget_rate(cfg.forget_rate, context.noise_ratio)
                        if variant.uses_forget_rate else 0.0)
    self.variant = variant(self)
    self.clean_rows = selection.clean_by_row(context.corrupted)
    if self.variant.uses_forget_rate:
      self.forget_rate_tracker = self.add_metric_tracker("forget_rate", "selection/forget_rate")
    self.bad_share = self.add_metric_tracker("bad_fraction", "selection/bad_fraction")
    self.good_precision = self.bad_clean = None
    if self.clean_rows is not None:
      self.good_precision = self.add_metric_tracker("label_precision", "selection/label_precision")
      self.bad_clean = self.add_metric_tracker("bad_clean_fraction", "selection/bad_clean_fraction")

  def train_step(self, data):
    data = as_batch(data)
    labels = data["label"]
    epoch = self.data_epoch()
    with tf.GradientTape() as tape:
      logits = self.network(data["image"], training=True)
      losses = self.variant.losses(labels, logits)
      all_losses, offset = selection.gather_global(tf.stop_gradient(losses))
      weighting = self.variant.weighting(all_losses, epoch)
      size = tf.shape(losses)[0]
      coefficients = tf.stop_gradient(selection.local_rows(weighting.coefficients, offset, size))
      # This replica's share of the global loss, times the replica count that apply_gradients divides by.
      loss = self.num_replicas * tf.reduce_sum(coefficients * losses)
      total = loss + self.l2_loss()
      scaled = total * self.loss_scale()
    self.apply_gradients(tape.gradient(scaled, self.network.trainable_variables))
    self.update_ema()
    self.record_training(total, labels, logits)
    good = selection.local_rows(weighting.good, offset, size)
    bad = selection.local_rows(weighting.bad, offset, size)
    self._record_selection(epoch, good, bad, data["index"])
    return self.train_results()

  def method_scores(self, batch, logits):
    """SIGUA's own split of the scoring batch at the current epoch: kept for descent (`selected`) or
    pushed back by gradient ascent (`pushed_back`); SIGUA_BC adds its backward-corrected loss."""
    losses = self.variant.losses(batch["label"], logits)
    weighting = self.variant.weighting(losses, self.data_epoch())
    scores = {"selected": tf.cast(weighting.good, tf.float32), "pushed_back": tf.cast(weighting.bad, tf.float32)}
    if not self.variant.uses_forget_rate:
      scores["corrected_loss"] = losses
    return scores

  def _record_selection(self, epoch, good, bad, index) -> None:
    """Diagnostics only: the clean labels never reach the loss."""
    if self.variant.uses_forget_rate:
      self.forget_rate_tracker.update_state(tf.cast(self.variant.forget_rate(epoch), tf.float32))
    self.bad_share.update_state(tf.cast(bad, tf.float32))
    clean = selection.clean_flags(self.clean_rows, index)
    selection.update_clean_fraction(self.good_precision, clean, good)
    selection.update_clean_fraction(self.bad_clean, clean, bad)
