"""The look-ahead ("meta") step shared by L2R and IEG, with two ways to get the meta-gradient.

Both methods ask how one small SGD step on the noisy batch would change the loss on a clean probe
batch, as a function of per-example coefficients c (example weights eps, IEG's label-mixing lambda):

  L_la(theta, c) = sum_i eps_i * l_i(theta, lambda_i) + R(theta)
  theta'(c)      = theta - eta * (mu * m + grad_theta L_la(theta, c))     (m: momentum accumulator)
  meta-gradient  = dL_probe(theta'(c)) / dc  at c = c0

`reverse` differentiates through the look-ahead gradient with nested tapes, as the original code
does. `jvp` uses that mixed partial derivatives commute:

  dL_probe/dc = -eta * d/dc <grad_theta L_la(theta, c), v> = -eta * D_theta[grad_c L_la](theta)[v],
  v = grad L_probe(theta'),

i.e. one forward-mode pass (tangent v) through the batch's forward, with grad_c L_la taken by a tape
that only reaches back to the loss head (for eps: the per-example losses l_i; for lambda:
eps_i * dl_i/dlambda_i). It never builds the second-order graph of the look-ahead gradient.

Every pass here goes through `keras.Model.stateless_call` with the parameters as plain tensors, so
no pass updates the BatchNorm moving statistics: `forward` returns the new non-trainable values and
the caller decides whether to keep them.
"""
import dataclasses
from typing import Any, Callable

import tensorflow as tf

from core import ranges
from core.errors import UserError
from core.registry import Registry
from methods.base import Method, as_batch, sparse_cross_entropy

Tensors = list[tf.Tensor]


@dataclasses.dataclass
class LookaheadProblem:
  """What one meta step needs, as functions of parameter tensors (in `network.trainable_variables` order).

  forward(params) -> outputs: the noisy batch through the network (any nest of tensors).
  batch_loss(outputs, coefficients) -> scalar: the look-ahead loss without R, i.e. sum_i eps_i l_i.
  regularizer(params) -> scalar: R(theta), the coupled L2 of the look-ahead loss.
  probe_loss(params) -> (scalar L_probe incl. its L2 term, probe logits): evaluated at theta'.
  coefficients: c0, one [B] tensor per coefficient vector.
  momentum_terms: mu * m per parameter (held constant), or None for plain SGD.
  batch_gradient_vanishes: c0 makes the batch term of the look-ahead gradient zero (L2R's eps0 = 0).
    theta' then does not depend on the batch, and `jvp` runs the batch forward only once.
  """
  forward: Callable[[Tensors], Any]
  batch_loss: Callable[[Any, Tensors], tf.Tensor]
  regularizer: Callable[[Tensors], tf.Tensor]
  probe_loss: Callable[[Tensors], tuple[tf.Tensor, tf.Tensor]]
  coefficients: Tensors
  step_size: float
  momentum_terms: Tensors | None = None
  batch_gradient_vanishes: bool = False
  # float16: the probe loss is differentiated times this scale (its gradient would underflow), and the
  # coefficient gradients divided by it again. The look-ahead gradient itself is not scaled.
  loss_scale: tf.Tensor | float = 1.0


@dataclasses.dataclass
class MetaStepResult:
  """The meta-gradient and the recorded forward the caller builds its final loss on.

  `tape` is persistent and has recorded `outputs` as a function of `params`: re-enter it
  (`with result.tape:`) to compute the final loss, then call `result.tape.gradient(loss, result.params)`.
  """
  tape: tf.GradientTape
  params: Tensors
  outputs: Any
  coefficient_gradients: Tensors  # dL_probe/dc, one per coefficient vector
  meta_loss: tf.Tensor
  probe_logits: tf.Tensor
  # float16 only: the scaled meta-gradient overflowed. The coefficient gradients are then zero (the
  # step's loss stays finite) and the caller must let the loss-scaled optimizer skip the step.
  overflowed: tf.Tensor | bool = False


_ZERO = tf.UnconnectedGradients.ZERO
# fn(params, problem) -> MetaStepResult, by --meta_grad.
META_GRADIENTS = Registry("meta_grad")
register_meta_gradient = META_GRADIENTS.register
check_meta_grad = META_GRADIENTS.check


def meta_step(kind: str, variables, problem: LookaheadProblem) -> MetaStepResult:
  """Runs the look-ahead and returns dL_probe/dc with the `kind` implementation ('reverse' or 'jvp')."""
  params = [tf.convert_to_tensor(v) for v in variables]
  result = META_GRADIENTS.lookup(kind)(params, problem)
  if isinstance(problem.loss_scale, float) and problem.loss_scale == 1.0:
    return result
  grads = [g / problem.loss_scale for g in result.coefficient_gradients]
  overflowed = tf.logical_not(tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads]
                                            + [tf.math.is_finite(result.meta_loss)]))
  return dataclasses.replace(result, coefficient_gradients=[tf.where(overflowed, tf.zeros_like(g), g) for g in grads],
                             meta_loss=tf.where(overflowed, tf.zeros_like(result.meta_loss), result.meta_loss),
                             overflowed=overflowed)


def lookahead_parameters(params: Tensors, grads: Tensors, step_size: float,
                         momentum_terms: Tensors | None) -> Tensors:
  """theta' = theta - eta * (mu * m + g), the original's `meta_momentum_update` step."""
  if momentum_terms is None:
    return [p - step_size * g for p, g in zip(params, grads)]
  return [p - step_size * (tf.stop_gradient(m) + g) for p, g, m in zip(params, grads, momentum_terms)]


def _probe_gradient(problem: LookaheadProblem, lookahead: Tensors):
  with tf.GradientTape() as tape:
    tape.watch(lookahead)
    meta_loss, probe_logits = problem.probe_loss(lookahead)
    scaled = meta_loss * problem.loss_scale
  return tape.gradient(scaled, lookahead, unconnected_gradients=_ZERO), meta_loss, probe_logits


@register_meta_gradient("reverse")
def reverse_meta_gradient(params: Tensors, problem: LookaheadProblem) -> MetaStepResult:
  """Second-order reverse mode: d theta'/dc transposed against v, through the look-ahead gradient."""
  coefficients = problem.coefficients
  outer = tf.GradientTape(persistent=True)
  with outer:
    outer.watch(params)
    outer.watch(coefficients)
    with tf.GradientTape() as inner:
      inner.watch(params)
      outputs = problem.forward(params)
      lookahead_loss = problem.batch_loss(outputs, coefficients) + problem.regularizer(params)
    grads = inner.gradient(lookahead_loss, params, unconnected_gradients=_ZERO)
    lookahead = lookahead_parameters(params, grads, problem.step_size, problem.momentum_terms)
  probe_grads, meta_loss, probe_logits = _probe_gradient(problem, lookahead)
  coefficient_gradients = outer.gradient(lookahead, coefficients, output_gradients=probe_grads,
                                         unconnected_gradients=_ZERO)
  return MetaStepResult(outer, params, outputs, coefficient_gradients, meta_loss, probe_logits)


@register_meta_gradient("jvp")
def jvp_meta_gradient(params: Tensors, problem: LookaheadProblem) -> MetaStepResult:
  """Forward mode: -eta * JVP of grad_c L_la along v = grad L_probe(theta').

  In general the batch forward runs twice: once on the returned tape (for the look-ahead gradient
  and the final loss) and once under the forward accumulator. Both passes see the same parameters
  and non-trainable state, hence the same batch statistics (and dropout masks). When the batch term
  of the look-ahead gradient vanishes, theta' is known before the batch forward, which then runs
  once, under the tape and the accumulator together.
  """
  if problem.batch_gradient_vanishes:
    lookahead = lookahead_parameters(params, _gradient(problem.regularizer, params), problem.step_size,
                                     problem.momentum_terms)
    probe_grads, meta_loss, probe_logits = _probe_gradient(problem, lookahead)
    tape = tf.GradientTape(persistent=True)
    with tape:
      tape.watch(params)
      outputs, directional = _batch_jvp(params, probe_grads, problem)
  else:
    tape = tf.GradientTape(persistent=True)
    with tape:
      tape.watch(params)
      outputs = problem.forward(params)
      lookahead_loss = problem.batch_loss(outputs, problem.coefficients) + problem.regularizer(params)
    grads = tape.gradient(lookahead_loss, params, unconnected_gradients=_ZERO)
    lookahead = lookahead_parameters(params, grads, problem.step_size, problem.momentum_terms)
    probe_grads, meta_loss, probe_logits = _probe_gradient(problem, lookahead)
    _, directional = _batch_jvp(params, probe_grads, problem)
  coefficient_gradients = [-problem.step_size * d for d in directional]
  return MetaStepResult(tape, params, outputs, coefficient_gradients, meta_loss, probe_logits)


def _gradient(fn: Callable[[Tensors], tf.Tensor], params: Tensors) -> Tensors:
  with tf.GradientTape() as tape:
    tape.watch(params)
    value = fn(params)
  return tape.gradient(value, params, unconnected_gradients=_ZERO)


def _batch_jvp(params: Tensors, tangents: Tensors, problem: LookaheadProblem):
  """(batch outputs, D_theta[grad_c batch_loss](theta)[tangents]) from one forward-mode pass."""
  coefficients = problem.coefficients
  with tf.autodiff.ForwardAccumulator(params, tangents) as accumulator:
    with tf.GradientTape() as head_tape:  # reaches only from the loss back to c: the loss head
      head_tape.watch(coefficients)
      outputs = problem.forward(params)
      batch_loss = problem.batch_loss(outputs, coefficients)
    loss_by_coefficient = head_tape.gradient(batch_loss, coefficients, unconnected_gradients=_ZERO)
  return outputs, accumulator.jvp(loss_by_coefficient, unconnected_gradients=_ZERO)


def normalized_weights(weight_gradient: tf.Tensor) -> tf.Tensor:
  """w = max(-dL_probe/deps, 0) / (sum + 1e-5), over this replica's batch (all zero if none is positive)."""
  raw = tf.nn.relu(-weight_gradient)
  return tf.stop_gradient(raw / (tf.reduce_sum(raw) + 1e-5))


def momentum_terms(optimizer, variables, momentum: float) -> Tensors | None:
  """mu * (TF1 momentum accumulator) per variable; None (no momentum term) without an accumulator (Adam)."""
  optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # under float16 loss scaling
  accumulator = getattr(optimizer, "accumulator", None)
  if accumulator is None or not momentum:
    return None
  return [momentum * tf.stop_gradient(tf.convert_to_tensor(accumulator(v))) for v in variables]


# ----- the Keras side shared by L2R and IEG ---------------------------------------------------

@dataclasses.dataclass
class MetaConfig:
  """Hyper-parameters of the look-ahead, shared by L2R and IEG (original names and defaults)."""
  meta_stepsize: float = dataclasses.field(
      default=0.1, metadata={"range": ranges.positive(), "help": "Step size eta of the look-ahead step (constant; not the LR schedule)."})
  meta_grad: str = dataclasses.field(
      default="jvp", metadata={"help": "Meta-gradient: jvp (forward mode, cheaper) or reverse (nested tapes, "
                                       "as the original); both give the same weights."})


@dataclasses.dataclass
class ReplicaUpdate:
  """One replica's share of a step: gradients of its mean loss, the weak pass's BN state, logs."""
  grads: Tensors
  network_state: Tensors
  loss: tf.Tensor
  logits: tf.Tensor
  weights: tf.Tensor
  stats: dict[str, tf.Tensor]
  label_choice: tf.Tensor | None = None  # IEG's lambda* (1: noisy label, 0: guessed label)
  alignment: tf.Tensor | None = None  # -dL_probe/deps per example: the weight before relu and normalising
  overflowed: tf.Tensor | bool = False  # float16: the meta step overflowed (see MetaStepResult)


_MIXING_STREAM = 11  # random stream of a method's in-step draws (IEG's MixUp), apart from the data streams


def replica_seed(seed: int, step, replica_id) -> tf.Tensor:
  """A stateless seed for (run seed, step, replica): resumable, and different on every replica."""
  base = tf.random.experimental.stateless_fold_in(tf.constant([seed, _MIXING_STREAM], tf.int64),
                                                  tf.cast(step, tf.int64))
  return tf.random.experimental.stateless_fold_in(base, tf.cast(replica_id, tf.int64))


class MetaMethod(Method):
  """A method whose update depends on a look-ahead step against a clean probe batch.

  Subclasses implement `compute_update(data, seed) -> ReplicaUpdate` for one replica batch; the
  step applies it, keeps the BatchNorm statistics of the weak-view pass only, updates the EMA and
  logs the original summaries (loss/meta, acc/meta, weights/zeroratio) plus the weight mean/std.
  """

  needs_probe = True
  Config = MetaConfig

  def __init__(self, network, context, config=None):
    super().__init__(network, context, config)
    check_meta_grad(self.config.meta_grad)
    if not self.config.meta_stepsize > 0:
      raise UserError(f"--meta_stepsize={self.config.meta_stepsize} is invalid: give a positive step size, e.g. 0.1")
    self.add_metric_tracker("meta_loss", "loss/meta")
    self.add_metric_tracker("meta_acc", "acc/meta")
    self.add_metric_tracker("zero_ratio", "weights/zeroratio")
    self.add_metric_tracker("weight_mean", "weights/mean")
    self.add_metric_tracker("weight_std", "weights/std")

  SCORE_SUSPICIOUS_END = {**Method.SCORE_SUSPICIOUS_END, "meta_weight": "low", "probe_alignment": "low",
                          "label_choice": "low"}

  def compile(self, *args, **kwargs):
    super().compile(*args, **kwargs)
    # IEG's look-ahead reads the momentum accumulators before the first update: create them now.
    self.optimizer.build(self.network.trainable_variables)

  def compute_update(self, data: dict, seed: tf.Tensor) -> ReplicaUpdate:
    raise NotImplementedError

  def train_step(self, data):
    data = as_batch(data)
    context = tf.distribute.get_replica_context()
    replica_id = context.replica_id_in_sync_group if context is not None else 0
    update = self.compute_update(data, replica_seed(self.context.seed, self.optimizer.iterations, replica_id))
    grads = update.grads
    if update.overflowed is not False:  # non-finite gradients make the loss-scaled optimizer skip and halve its scale
      grads = [tf.where(update.overflowed, tf.constant(float("inf"), g.dtype), g) for g in grads]
    self.apply_gradients(grads)
    for variable, value in zip(self.network.non_trainable_variables, update.network_state):
      variable.assign(value)
    self.update_ema()
    self.record_training(update.loss, data["label"], update.logits)
    weights = update.weights
    stats = {"zero_ratio": tf.reduce_mean(tf.cast(weights <= 0.0, tf.float32)),
             "weight_mean": tf.reduce_mean(weights), "weight_std": tf.math.reduce_std(weights), **update.stats}
    # A skipped (overflowing float16) step has no meta statistics: it leaves their period means alone.
    counted = None if update.overflowed is False else 1.0 - tf.cast(update.overflowed, tf.float32)
    for name, value in stats.items():
      self.extra_metrics[name].update_state(value, sample_weight=counted)
    return self.train_results()

  def method_scores(self, batch, logits):
    """The look-ahead's verdict on each example against the probe batch the report attaches.

    meta_weight: w_i times the batch size (1: an equal share, 0: dropped); probe_alignment: the raw
    -dL_probe/deps_i before clipping at zero; label_choice (IEG): 1 where the noisy label is kept, 0
    where the guess replaces it. The report's batches have no augmentation (the strong view is the
    image itself) and the meta step's parameter update is discarded (graph pruning drops it).
    """
    del logits
    if "probe_image" not in batch:
      return {}
    update = self.compute_update(batch, replica_seed(self.context.seed, self.optimizer.iterations, 0))
    scores = {"meta_weight": update.weights * tf.cast(tf.shape(update.weights)[0], update.weights.dtype),
              "probe_alignment": update.alignment}
    if update.label_choice is not None:
      scores["label_choice"] = update.label_choice
    return scores

  # ----- pieces for subclasses ----------------------------------------------------------------
  def network_state(self) -> Tensors:
    """The current non-trainable values (BN statistics, dropout seeds) as tensors for stateless calls."""
    return [tf.convert_to_tensor(v) for v in self.network.non_trainable_variables]

  def run_network(self, params: Tensors, state: Tensors, images: tf.Tensor):
    """A training-mode pass at `params`: (logits, new non-trainable values); nothing is assigned."""
    return self.network.stateless_call(params, state, images, training=True)

  def probe_loss_fn(self, data: dict, state: Tensors) -> Callable[[Tensors], tuple[tf.Tensor, tf.Tensor]]:
    """L_probe(theta') = mean CE on the probe batch + the L2 term on theta' (batch statistics, no BN update)."""
    def probe_loss(params):
      logits, _ = self.run_network(params, state, data["probe_image"])
      return tf.reduce_mean(sparse_cross_entropy(data["probe_label"], logits)) + self.l2_loss(params), logits
    return probe_loss

  def meta_stats(self, result: MetaStepResult, data: dict) -> dict[str, tf.Tensor]:
    correct = tf.equal(tf.argmax(result.probe_logits, axis=-1, output_type=tf.int32),
                       tf.cast(data["probe_label"], tf.int32))
    return {"meta_loss": result.meta_loss, "meta_acc": tf.reduce_mean(tf.cast(correct, tf.float32))}
