"""PRL (Liu et al., ICML 2021): drop the examples whose gradient is largest, update on the rest.

Each step scores the global batch, keeps the R = int((1 - eps_e) B) smallest scores and re-forwards
the kept examples for the update, as the official `loss.py` does. `--prl_variant` chooses:
- `prl_l`: score ||softmax(z_i) - onehot(y_i)||^2, the squared gradient norm of the cross-entropy
  with respect to the logits (cheap; works with BatchNorm).
- `prl_g`: score sum_params ||d loss_i / d theta||^2, exact per-example gradient norms from one
  vectorised Jacobian (needs a network without BatchNorm, e.g. cnn9_gn or resnet32_gn).
- `co_prl_l` / `co_prl_g`: two networks score the batch and each trains on the other's kept set
  (co-teaching exchange), each with its own optimizer.
eps_e follows co-teaching's schedule (linear ramp over `num_gradual` passes, read at pass + 1).
"""
import dataclasses

import keras
import tensorflow as tf

import networks
from core.errors import UserError
from core.registry import Registry
from methods import register_method
from methods import selection
from methods.base import Method, as_batch, sparse_cross_entropy


def loss_layer_scores(network, images, labels, training: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
  """PRL-L: (||softmax(z) - onehot(y)||^2 per example, logits), from a training-mode forward."""
  logits = network(images, training=training)
  onehot = tf.one_hot(tf.cast(labels, tf.int32), tf.shape(logits)[-1], dtype=logits.dtype)
  scores = tf.reduce_sum(tf.square(tf.nn.softmax(logits) - onehot), axis=-1)
  return tf.stop_gradient(scores), logits


def gradient_norm_scores(network, images, labels, training: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
  """PRL-G: (sum over all trainable variables of ||d CE_i / d v||^2 per example, logits).

  The Jacobian of the per-example losses is vectorised (pfor) over the examples of one forward, so
  the dropout masks are those of that forward. Exact when no layer couples the examples (no BatchNorm);
  memory grows as batch size x parameters.
  """
  variables = network.trainable_variables
  with tf.GradientTape() as tape:
    logits = network(images, training=training)
    losses = sparse_cross_entropy(labels, logits)
  jacobians = tape.jacobian(losses, variables, experimental_use_pfor=True)
  size = tf.shape(losses)[0]
  squares = [tf.reduce_sum(tf.reshape(tf.square(j), [size, -1]), axis=1) for j in jacobians if j is not None]
  return tf.stop_gradient(tf.add_n(squares)), logits


_SCORERS = {"loss_layer": loss_layer_scores, "gradient": gradient_norm_scores}


@dataclasses.dataclass(frozen=True)
class Variant:
  scorer: str
  co_teaching: bool


VARIANTS = Registry("prl_variant")
VARIANTS.update({
    "prl_l": Variant("loss_layer", co_teaching=False),
    "co_prl_l": Variant("loss_layer", co_teaching=True),
    "prl_g": Variant("gradient", co_teaching=False),
    "co_prl_g": Variant("gradient", co_teaching=True),
})

# Co-teaching's base settings (PRL's main.py builds on them): Adam 1e-3, batch 128, epochs 1..199,
# lr constant until epoch 80 then linear to 0 with beta1 0.1, num_gradual 10, no weight decay.
_CIFAR10_STEPS = 50000 // 128
_COTEACHING = dict(optimizer="adam", learning_rate=1e-3, lr_schedule="coteaching_linear",
                   decay_steps=(79 * _CIFAR10_STEPS,), batch_size=128, max_epoch=199, eval_freq=_CIFAR10_STEPS,
                   use_ema=False, probe_dataset_hold_ratio=0.0, weight_decay=0.0, grad_clip_norm=None,
                   num_gradual=10, exponent=1.0, prl_divide_by_kept=True)
# The seed's MNIST protocol, shared with the SIGUA presets: 30 epochs, batch 256, Adam 1e-3, clip 5.
_MNIST_SEED = dict(network_name="mnist_cnn", optimizer="adam", learning_rate=1e-3, lr_schedule="constant",
                   batch_size=256, max_epoch=30, eval_freq=234, use_ema=False, probe_dataset_hold_ratio=0.0,
                   weight_decay=0.0, grad_clip_norm=5.0, prl_variant="prl_l", num_gradual=5)
_NOISES = {"sym20": ("symmetric", 0.2), "sym50": ("symmetric", 0.5), "pair45": ("pairflip", 0.45)}


def _presets() -> dict[str, dict]:
  presets = {}
  for short, (noise, rate) in _NOISES.items():
    cifar10 = {"dataset": f"cifar10_{noise}_{rate}", "forget_rate": rate}
    presets[f"prl_cifar10_{short}"] = {**_COTEACHING, **cifar10, "network_name": "cnn9", "prl_variant": "co_prl_l"}
    presets[f"prl_g_cifar10_{short}"] = {**_COTEACHING, **cifar10, "network_name": "resnet32_gn",
                                         "prl_variant": "co_prl_g"}
    presets[f"prl_mnist_{short}"] = {**_MNIST_SEED, "dataset": f"mnist_{noise}_{rate}", "forget_rate": rate}
  return {name: {"method": "prl", **values} for name, values in presets.items()}


def clone_optimizer(optimizer: keras.optimizers.Optimizer, name: str) -> keras.optimizers.Optimizer:
  """A fresh optimizer of the same kind and schedule, with its own state (and its own loss scale)."""
  if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
    return type(optimizer)(clone_optimizer(optimizer.inner_optimizer, name), name="loss_scaled_" + name)
  config = {**optimizer.get_config(), "name": name}
  return type(optimizer).from_config(config)


@register_method("prl")
class Prl(Method):
  """PRL-L, PRL-G and their co-teaching versions (see the module docstring)."""

  @dataclasses.dataclass
  class Config(selection.ForgetScheduleConfig):
    prl_variant: str = dataclasses.field(default="prl_l", metadata={"help": (
        "prl_l: score by the loss-layer gradient norm; prl_g: by the full per-example gradient norm (no "
        "BatchNorm); co_prl_l / co_prl_g: two networks that train on each other's kept examples.")})
    prl_divide_by_kept: bool = dataclasses.field(default=False, metadata={"help": (
        "PRL: divide the mean loss of the kept examples once more by their count, as the official code "
        "does (a rescaling that Adam mostly absorbs).")})

  PRESETS = _presets()
  SCORE_SUSPICIOUS_END = {**Method.SCORE_SUSPICIOUS_END, "prl_score": "high", "selected": "low"}

  def __init__(self, network, context, config=None):
    super().__init__(network, context, config)
    cfg = self.config
    self.variant = VARIANTS.lookup(cfg.prl_variant)
    self.forget_rate = selection.resolve_forget_rate(cfg.forget_rate, context.noise_ratio)
    self.peer_network = self.peer_optimizer = None
    if self.variant.co_teaching:
      if context.make_network is None:
        raise UserError(f"--prl_variant={cfg.prl_variant} trains two networks, but this run cannot build a "
                        "second one: use --prl_variant=prl_l or prl_g")
      self.peer_network = context.make_network()
      self.peer_top1 = keras.metrics.SparseCategoricalAccuracy(name="peer_top1")
    if self.variant.scorer == "gradient":
      for net in self.trained_networks:
        if networks.has_batch_norm(net):
          raise UserError(f"--prl_variant={cfg.prl_variant} needs per-example gradients, which BatchNorm couples "
                          f"across the batch: use a network without BatchNorm (--network_name=cnn9_gn or "
                          "resnet32_gn) or --prl_variant=prl_l")
    self.clean_rows = selection.clean_by_row(context.corrupted)
    self.forget_rate_tracker = self.add_metric_tracker("forget_rate", "selection/forget_rate")
    precision = [None] * len(self.trained_networks)  # per network: clean share of the examples it keeps
    if self.clean_rows is not None:
      precision[0] = self.add_metric_tracker("label_precision", "selection/label_precision")
      if self.peer_network is not None:
        precision[1] = self.add_metric_tracker("peer_label_precision", "selection/peer_label_precision")
    self.precision = precision

  @property
  def trained_networks(self) -> list:
    return [self.network] + ([self.peer_network] if self.peer_network is not None else [])

  # ----- Keras plumbing ------------------------------------------------------------------------
  def compile(self, optimizer="rmsprop", **kwargs):
    super().compile(optimizer=optimizer, **kwargs)
    if self.peer_network is not None:
      # Both built now, inside the caller's strategy scope, so a checkpoint can be restored before
      # training; each on its own network only (a later build on all trainable variables is a no-op).
      self.optimizer.build(self.network.trainable_variables)
      self.peer_optimizer = clone_optimizer(self.optimizer, "peer_" + self.optimizer.name)
      self.peer_optimizer.build(self.peer_network.trainable_variables)

  def checkpoint_variables(self) -> dict[str, list]:
    groups = super().checkpoint_variables()
    if self.peer_optimizer is not None:
      groups["peer_optimizer"] = list(self.peer_optimizer.variables)
    return groups

  def test_step(self, data):
    results = super().test_step(data)
    if self.peer_network is not None:
      batch = as_batch(data)
      self.peer_top1.update_state(batch["label"], self.peer_network(batch["image"], training=False))
      results["peer_top1"] = self.peer_top1.result()
    return results

  def method_scores(self, batch, logits):
    """PRL's score of each example under the network's inference weights (`prl_score`, the loss-layer or
    full gradient norm) and whether it falls in the kept set of the scoring batch at the current epoch."""
    del logits
    scores, _ = _SCORERS[self.variant.scorer](self.network, batch["image"], batch["label"], training=False)
    kept_count = tf.maximum(selection.remember_count(self.forget_rate_at(self.data_epoch()), tf.size(scores)), 1)
    return {"prl_score": scores, "selected": tf.cast(selection.ascending_ranks(scores) < kept_count, tf.float32)}

  # ----- one step ------------------------------------------------------------------------------
  def forget_rate_at(self, epoch) -> tf.Tensor:
    return selection.coteaching_forget_rate(epoch, self.forget_rate, self.config.num_gradual, self.config.exponent)

  def kept_sets(self, scores: list[tf.Tensor], forget_rate) -> tuple[list[tf.Tensor], tf.Tensor]:
    """(per network: bool mask of this replica's kept rows, the global kept count R)."""
    all_scores, offset = selection.gather_global(scores)
    kept_count = tf.maximum(selection.remember_count(forget_rate, tf.size(all_scores[0])), 1)
    size = tf.shape(scores[0])[0]
    keeps = [selection.local_rows(selection.ascending_ranks(s) < kept_count, offset, size) for s in all_scores]
    return keeps, kept_count

  def train_step(self, data):
    data = as_batch(data)
    images, labels = data["image"], data["label"]
    epoch = self.data_epoch()
    forget_rate = self.forget_rate_at(epoch)
    scorer = _SCORERS[self.variant.scorer]
    scored = [scorer(net, images, labels) for net in self.trained_networks]
    keeps, kept_count = self.kept_sets([s for s, _ in scored], forget_rate)
    # Co-teaching exchange: each network learns from the examples its peer kept.
    train_sets = keeps[::-1] if self.variant.co_teaching else keeps
    optimizers = [self.optimizer, self.peer_optimizer]
    totals = [self.train_on_kept(net, opt, images, labels, keep, kept_count)
              for net, opt, keep in zip(self.trained_networks, optimizers, train_sets)]
    self.update_ema()
    self.record_training(totals[0], labels, scored[0][1])
    self.forget_rate_tracker.update_state(tf.cast(forget_rate, tf.float32))
    clean = selection.clean_flags(self.clean_rows, data["index"])
    for metric, keep in zip(self.precision, keeps):
      selection.update_clean_fraction(metric, clean, keep)
    return self.train_results()

  def train_on_kept(self, network, optimizer, images, labels, keep, kept_count) -> tf.Tensor:
    """Re-forwards this replica's kept rows and applies one update: mean CE over the global kept set."""
    rows = tf.where(keep)[:, 0]
    kept_images, kept_labels = tf.gather(images, rows), tf.gather(labels, rows)
    denominator = tf.cast(kept_count, tf.float32)
    if self.config.prl_divide_by_kept:
      denominator = denominator * denominator
    variables = network.trainable_variables

    def kept_loss_sum():
      return tf.reduce_sum(sparse_cross_entropy(kept_labels, network(kept_images, training=True)))

    with tf.GradientTape() as tape:
      # A replica may keep none of its rows; an empty forward would feed NaN into BatchNorm statistics.
      loss_sum = tf.cond(tf.size(rows) > 0, kept_loss_sum, lambda: tf.constant(0.0))
      loss = self.num_replicas * loss_sum / denominator  # apply_gradients divides by the replica count
      total = loss + self.l2_loss(variables)
      scaled = total * self.loss_scale(optimizer)
    grads = tape.gradient(scaled, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    self.apply_gradients(grads, variables, optimizer)
    return total
