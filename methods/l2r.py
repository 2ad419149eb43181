"""Learning to Reweight (Ren et al. 2018) as IEG's code runs it (`models/l2rmodel.py`).

Per replica batch of B examples with per-example cross-entropy c_i:
  look-ahead  theta' = theta - eta * grad(sum_i eps_i c_i + R(theta)) at eps = 0 (no momentum),
  weights     w = relu(-dL_probe(theta')/deps) / (sum_i relu(...) + 1e-5),
  update      L = sum_i w_i c_i + R(theta).
L_probe is the mean probe cross-entropy plus the L2 term on theta'.
"""
import tensorflow as tf

from methods import register_method
from methods.base import sparse_cross_entropy
from methods.meta import LookaheadProblem, MetaMethod, ReplicaUpdate, meta_step, normalized_weights


@register_method("l2r")
class L2R(MetaMethod):
  """Example weights from one look-ahead SGD step on the clean probe batch; weighted CE."""

  def compute_update(self, data, seed):
    del seed  # deterministic given the batch
    images, labels = data["image"], data["label"]
    state = self.network_state()

    def forward(params):
      logits, new_state = self.run_network(params, state, images)
      return {"logits": logits, "state": new_state}

    def batch_loss(outputs, coefficients):
      return tf.reduce_sum(coefficients[0] * sparse_cross_entropy(labels, outputs["logits"]))

    problem = LookaheadProblem(
        forward=forward, batch_loss=batch_loss, regularizer=self.l2_loss,
        probe_loss=self.probe_loss_fn(data, state), coefficients=[tf.zeros_like(labels, tf.float32)],
        step_size=self.config.meta_stepsize, batch_gradient_vanishes=True, loss_scale=self.loss_scale())
    result = meta_step(self.config.meta_grad, self.network.trainable_variables, problem)
    weight_gradient = result.coefficient_gradients[0]
    weights = normalized_weights(weight_gradient)
    with result.tape:
      logits = result.outputs["logits"]
      loss = tf.reduce_sum(weights * sparse_cross_entropy(labels, logits)) + self.l2_loss(result.params)
      scaled = loss * self.loss_scale()
    grads = result.tape.gradient(scaled, result.params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return ReplicaUpdate(grads=grads, network_state=result.outputs["state"], loss=loss, logits=logits,
                         weights=weights, stats=self.meta_stats(result, data), alignment=-weight_gradient,
                         overflowed=result.overflowed)
