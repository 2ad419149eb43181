"""IEG (Zhang et al., CVPR 2020) as the original code runs it (`models/model.py`), per replica batch.

1. Weak and strong views through the network (only the weak pass updates BatchNorm statistics).
2. Label guess g: softmax of the logit-normalised weak and strong logits, averaged, sharpened (T=0.5).
3. MixUp CE: B probe rows drawn with replacement, pooled with the weak and strong rows, mixed with
   lambda = max(m, 1-m), m = u^2/2, one random permutation; xe = L_probe_rows + ce_factor * L_rest.
4. KL consistency between the weak (fixed) and strong predictions, times consistency_factor.
5. Meta step: eps0 = 1/B, lambda0 = grad_eps_init, targets lambda * onehot + (1 - lambda) * g, the
   look-ahead with the optimizer's momentum; w = relu(-dL/deps) normalised, lambda* = 1[dL/dlambda < 0].
6. L = (L1 + L2) / 2 + xe + cs + R, with L1 = mean CE(targets(lambda*)) and L2 = sum w CE(targets(lambda0)).
"""
import dataclasses

import tensorflow as tf

from core import ranges
from core.errors import UserError
from methods import register_method
from methods.base import soft_cross_entropy
from methods.meta import (LookaheadProblem, MetaConfig, MetaMethod, ReplicaUpdate, meta_step, momentum_terms,
                          normalized_weights)

MIXUP_BETA = 0.5  # the original's IEG.beta: m = u^(1/beta) / 2
GUESS_TEMPERATURE = 0.5  # sharpening temperature of guess_label


def logit_norm(logits: tf.Tensor) -> tf.Tensor:
  """z / sqrt(mean(z^2) + 1e-8), the mean over the whole chunk (all rows and classes), as the original."""
  return logits * tf.math.rsqrt(tf.reduce_mean(tf.square(logits)) + 1e-8)


def sharpen(probabilities: tf.Tensor, temperature: float = GUESS_TEMPERATURE) -> tf.Tensor:
  powered = tf.pow(probabilities, 1.0 / temperature)
  return powered / tf.reduce_sum(powered, axis=-1, keepdims=True)


def guess_labels(weak_logits: tf.Tensor, strong_logits: tf.Tensor,
                 temperature: float = GUESS_TEMPERATURE) -> tf.Tensor:
  """Average of the two views' softmax(logit_norm(z)), sharpened; differentiable (the look-ahead uses that)."""
  average = (tf.nn.softmax(logit_norm(weak_logits)) + tf.nn.softmax(logit_norm(strong_logits))) / 2.0
  return sharpen(average, temperature)


def mixed_targets(onehot: tf.Tensor, guessed: tf.Tensor, mixing: tf.Tensor) -> tf.Tensor:
  """lambda_i * onehot(noisy label) + (1 - lambda_i) * guess, per row."""
  mixing = mixing[:, None]
  return mixing * onehot + (1.0 - mixing) * guessed


def choose_labels(mixing_gradient: tf.Tensor) -> tf.Tensor:
  """lambda* = 1 (noisy label) where raising lambda lowers the probe loss, else 0 (the guess)."""
  return tf.cast(mixing_gradient < 0.0, tf.float32)


def mixup_lambda(uniform: tf.Tensor, beta: float = MIXUP_BETA) -> tf.Tensor:
  """The original's "approximate Beta": m = u^(1/beta) / 2, lambda = max(m, 1 - m) in [0.5, 1]."""
  m = tf.pow(uniform, 1.0 / beta) / 2.0
  return tf.maximum(m, 1.0 - m)


def mixup(values: tf.Tensor, mixing: tf.Tensor, permutation: tf.Tensor) -> tf.Tensor:
  """lambda_r * x_r + (1 - lambda_r) * x_perm(r), lambda broadcast over the row's other axes."""
  mixing = tf.reshape(mixing, [-1] + [1] * (len(values.shape) - 1))
  return mixing * values + (1.0 - mixing) * tf.gather(values, permutation)


@dataclasses.dataclass
class MixupDraws:
  probe_index: tf.Tensor  # [B] rows of the probe batch, with replacement
  mixing: tf.Tensor  # [3B] lambda per pooled row
  permutation: tf.Tensor  # [3B] partner of each pooled row


def draw_mixup(seed: tf.Tensor, batch_size, probe_size) -> MixupDraws:
  """The step's MixUp randomness, a stateless function of `seed`."""
  seeds = tf.random.experimental.stateless_split(seed, 3)
  rows = 3 * batch_size
  probe_index = tf.random.stateless_uniform([batch_size], seeds[0], 0, probe_size, tf.int32)
  mixing = mixup_lambda(tf.random.stateless_uniform([rows], seeds[1]))
  permutation = tf.argsort(tf.random.stateless_uniform([rows], seeds[2]))
  return MixupDraws(probe_index, mixing, permutation)


def consistency_kl(weak_logits: tf.Tensor, strong_logits: tf.Tensor) -> tf.Tensor:
  """(1/B) sum_i KL(softmax(sg(z_i)) || softmax(z_hat_i)), written as the original: mean over B x C times C."""
  fixed = tf.stop_gradient(weak_logits)
  q = tf.nn.softmax(fixed)
  per_entry = q * (tf.nn.log_softmax(fixed) - tf.nn.log_softmax(strong_logits))
  return tf.reduce_mean(per_entry) * tf.cast(tf.shape(weak_logits)[-1], per_entry.dtype)


def mixup_cross_entropy(logits: tf.Tensor, targets: tf.Tensor, ce_factor: float) -> tf.Tensor:
  """L_l + ce_factor * L_u over the pooled [probe | weak | strong] rows (B each), each chunk logit-normalised."""
  probe_logits, weak_logits, strong_logits = tf.split(logits, 3, axis=0)
  probe_targets, weak_targets, strong_targets = tf.split(tf.stop_gradient(targets), 3, axis=0)
  labeled = tf.reduce_mean(soft_cross_entropy(probe_targets, logit_norm(probe_logits)))
  unlabeled = tf.reduce_mean(soft_cross_entropy(
      tf.concat([weak_targets, strong_targets], axis=0),
      tf.concat([logit_norm(weak_logits), logit_norm(strong_logits)], axis=0)))
  return labeled + ce_factor * unlabeled


@register_method("ieg")
class IEG(MetaMethod):
  """Meta re-weighting and re-labelling with label guessing, MixUp and consistency."""

  needs_probe = True
  needs_strong_view = True

  @dataclasses.dataclass
  class Config(MetaConfig):
    meta_momentum: float = dataclasses.field(
        default=0.9, metadata={"range": ranges.FRACTION_BELOW_ONE, "help": "Momentum mu of IEG's look-ahead: theta' = theta - eta (mu m + g), m the "
                                       "optimizer's accumulator (0 with --optimizer=adam)."})
    ce_factor: float = dataclasses.field(
        default=5.0, metadata={"range": ranges.positive(), "help": "IEG: weight p of the MixUp cross-entropy on the noisy (unlabeled) rows; > 0."})
    consistency_factor: float = dataclasses.field(
        default=20.0, metadata={"range": ranges.NON_NEGATIVE, "help": "IEG: weight k of the KL consistency between weak and strong views."})
    grad_eps_init: float = dataclasses.field(
        default=0.9, metadata={"range": ranges.FRACTION, "help": "IEG: initial label-mixing lambda of the meta step and the fixed lambda of "
                                       "the weighted loss term."})

  def __init__(self, network, context, config=None):
    super().__init__(network, context, config)
    cfg = self.config
    if not cfg.ce_factor > 0:
      raise UserError(f"--ce_factor={cfg.ce_factor} is invalid for --method=ieg: the label guess comes from the MixUp "
                      "loss, so give a positive weight (default 5)")
    if cfg.consistency_factor < 0:
      raise UserError(f"--consistency_factor={cfg.consistency_factor} is invalid: give a weight >= 0 (default 20)")
    if not 0.0 <= cfg.grad_eps_init <= 1.0:
      raise UserError(f"--grad_eps_init={cfg.grad_eps_init} is outside [0, 1]: give a mixing weight such as 0.9")
    if cfg.meta_momentum < 0:
      raise UserError(f"--meta_momentum={cfg.meta_momentum} is invalid: give a momentum >= 0 (default 0.9)")
    self.add_metric_tracker("xe_loss", "loss/xemin")
    self.add_metric_tracker("cs_loss", "loss/consistency")

  def compute_update(self, data, seed):
    cfg = self.config
    images, labels = data["image"], data["label"]
    strong_images = data["image_strong"] if "image_strong" in data else images  # --aug_type=none
    state = self.network_state()
    onehot = tf.one_hot(labels, self.context.num_classes)
    batch_size = tf.shape(labels)[0]
    initial_mixing = tf.fill([batch_size], tf.constant(cfg.grad_eps_init, tf.float32))
    initial_weights = tf.fill([batch_size], 1.0 / tf.cast(batch_size, tf.float32))

    def forward(params):
      weak_logits, new_state = self.run_network(params, state, images)
      strong_logits, _ = self.run_network(params, state, strong_images)
      return {"weak": weak_logits, "strong": strong_logits, "state": new_state}

    def batch_loss(outputs, coefficients):
      weights, mixing = coefficients
      guessed = guess_labels(outputs["weak"], outputs["strong"])  # not stopped, as in the original look-ahead
      return tf.reduce_sum(weights * soft_cross_entropy(mixed_targets(onehot, guessed, mixing), outputs["weak"]))

    variables = self.network.trainable_variables
    problem = LookaheadProblem(
        forward=forward, batch_loss=batch_loss, regularizer=self.l2_loss, probe_loss=self.probe_loss_fn(data, state),
        coefficients=[initial_weights, initial_mixing], step_size=cfg.meta_stepsize,
        momentum_terms=momentum_terms(self.optimizer, variables, cfg.meta_momentum), loss_scale=self.loss_scale())
    result = meta_step(cfg.meta_grad, variables, problem)
    weight_gradient, mixing_gradient = result.coefficient_gradients
    weights = normalized_weights(weight_gradient)
    chosen = tf.stop_gradient(choose_labels(mixing_gradient))

    with result.tape:
      weak_logits, strong_logits = result.outputs["weak"], result.outputs["strong"]
      guessed = tf.stop_gradient(guess_labels(weak_logits, strong_logits))
      chosen_loss = tf.reduce_mean(soft_cross_entropy(mixed_targets(onehot, guessed, chosen), weak_logits))
      weighted_loss = tf.reduce_sum(
          weights * soft_cross_entropy(mixed_targets(onehot, guessed, initial_mixing), weak_logits))
      xe_loss = self.mixup_loss(result.params, state, data, images, strong_images, guessed, seed)
      cs_loss = cfg.consistency_factor * consistency_kl(weak_logits, strong_logits)
      loss = (chosen_loss + weighted_loss) / 2.0 + xe_loss + cs_loss + self.l2_loss(result.params)
      scaled = loss * self.loss_scale()
    grads = result.tape.gradient(scaled, result.params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    stats = {**self.meta_stats(result, data), "xe_loss": xe_loss, "cs_loss": cs_loss}
    return ReplicaUpdate(grads=grads, network_state=result.outputs["state"], loss=loss, logits=weak_logits,
                         weights=weights, stats=stats, label_choice=chosen, alignment=-weight_gradient,
                         overflowed=result.overflowed)

  def mixup_loss(self, params, state, data, images, strong_images, guessed, seed) -> tf.Tensor:
    """MixUp over [B probe rows drawn with replacement | weak | strong] with targets [onehot | g | g]."""
    batch_size = tf.shape(images)[0]
    draws = draw_mixup(seed, batch_size, tf.shape(data["probe_label"])[0])
    probe_images = tf.gather(data["probe_image"], draws.probe_index)
    probe_targets = tf.one_hot(tf.gather(data["probe_label"], draws.probe_index), self.context.num_classes)
    pooled_images = tf.concat([probe_images, images, strong_images], axis=0)
    pooled_targets = tf.concat([probe_targets, guessed, guessed], axis=0)
    mixed_images = mixup(pooled_images, draws.mixing, draws.permutation)
    mixed_labels = mixup(pooled_targets, draws.mixing, draws.permutation)
    logits, _ = self.run_network(params, state, mixed_images)
    return mixup_cross_entropy(logits, mixed_labels, self.config.ce_factor)
