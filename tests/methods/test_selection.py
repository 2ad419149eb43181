"""Selection helpers (forget-rate schedules, counts, ranks, global batch), co-teaching's lr plan and
its Adam against the formulas of the reference code."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from core.errors import UserError
from ieg import optimizers
from ieg import schedules
from ieg.config import RunConfig
from methods import selection


def coteaching_schedule(rate, num_gradual, exponent, num_epochs):
  """bhanML/SIGUA utils.py and co-teaching main.py, as written there."""
  schedule = np.ones(num_epochs) * rate
  schedule[:num_gradual] = np.linspace(0, rate ** exponent, num_gradual)
  return schedule


@pytest.mark.parametrize("rate, num_gradual, exponent", [
    (0.45, 10, 1.0), (0.5, 5, 1.0), (0.2, 10, 2.0), (0.3, 1, 1.0), (0.3, 0, 1.0), (0.0, 10, 1.0)])
def test_coteaching_forget_rate_reads_the_schedule_at_epoch_plus_one(rate, num_gradual, exponent):
  schedule = coteaching_schedule(rate, num_gradual, exponent, 200)
  epochs = np.arange(199)  # co-teaching trains epochs 1..199 -> our passes 0..198
  got = selection.coteaching_forget_rate(tf.constant(epochs), rate, num_gradual, exponent).numpy()
  np.testing.assert_array_equal(got, schedule[epochs + 1])  # bit-exact: the counts depend on it


def test_gradual_forget_rate_is_pytorch_siguas_reduce_step():
  tau, num_gradual = 0.5, 5
  epochs = np.arange(30)
  expected = [1.0 - (1.0 - tau * min(e / num_gradual, 1)) for e in epochs]
  got = selection.gradual_forget_rate(tf.constant(epochs), tau, num_gradual).numpy()
  np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)
  assert got[0] == 0.0 and got[5] == tau


def test_remember_and_fraction_counts_match_python_int():
  rates = np.concatenate([coteaching_schedule(r, 10, 1.0, 12) for r in (0.2, 0.45, 0.5, 0.8)])
  for batch in (7, 128, 256):
    got = selection.remember_count(tf.constant(rates), batch).numpy()
    np.testing.assert_array_equal(got, [int((1 - r) * batch) for r in rates])
    forgotten = batch - got
    for fraction in (0.3, 0.4, 0.5, 0.7):
      counts = selection.fraction_count(tf.constant(forgotten), fraction).numpy()
      np.testing.assert_array_equal(counts, [int(f * fraction) for f in forgotten])


def test_ascending_ranks_invert_a_stable_sort():
  rng = np.random.default_rng(0)
  scores = rng.integers(0, 5, 40).astype(np.float32)  # many ties
  ranks = selection.ascending_ranks(tf.constant(scores)).numpy()
  expected = np.empty(40, np.int64)
  expected[np.argsort(scores, kind="stable")] = np.arange(40)
  np.testing.assert_array_equal(ranks, expected)
  window = selection.rank_window(tf.constant(ranks), 10, 17).numpy()
  np.testing.assert_array_equal(np.flatnonzero(window), np.sort(np.argsort(scores, kind="stable")[10:17]))


def test_forget_rate_defaults_to_the_noise_rate_and_is_checked():
  assert selection.resolve_forget_rate(None, 0.45) == 0.45
  assert selection.resolve_forget_rate(0.2, 0.45) == 0.2
  with pytest.raises(UserError, match="--forget_rate=1.0"):
    selection.resolve_forget_rate(1.0, 0.0)


def test_global_batch_on_two_replicas_is_the_concatenation_with_offsets(two_cpus):
  strategy = tf.distribute.MirroredStrategy(two_cpus)
  local = [tf.constant([3.0, 1.0, 2.0]), tf.constant([5.0, 4.0, 0.0])]

  def step(values):
    everything, offset = selection.gather_global(values)
    mine = selection.local_rows(everything, offset, tf.size(values))
    return everything, offset, mine

  per_replica = strategy.experimental_distribute_values_from_function(lambda ctx: local[ctx.replica_id_in_sync_group])
  everything, offset, mine = strategy.run(step, args=(per_replica,))
  for replica in range(2):
    np.testing.assert_array_equal(strategy.experimental_local_results(everything)[replica], [3, 1, 2, 5, 4, 0])
    assert int(strategy.experimental_local_results(offset)[replica]) == 3 * replica
    np.testing.assert_array_equal(strategy.experimental_local_results(mine)[replica], local[replica])


def test_clean_fraction_metric_weights_by_selection():
  clean_rows = selection.clean_by_row(np.array([False, True, True, False, False]))
  np.testing.assert_array_equal(clean_rows, [1, 0, 0, 1, 1])
  metric = keras.metrics.Mean()
  clean = selection.clean_flags(clean_rows, tf.constant([0, 1, 3, 4]))
  selection.update_clean_fraction(metric, clean, tf.constant([True, True, False, True]))
  assert float(metric.result()) == pytest.approx(2 / 3)
  assert selection.clean_flags(None, tf.constant([0])) is None


def test_coteaching_linear_plan_equals_the_alpha_plan_at_every_epoch_start():
  steps, n_epoch, start, lr = 7, 200, 80, 1e-3
  cfg = RunConfig(lr_schedule="coteaching_linear", learning_rate=lr, decay_steps=((start - 1) * steps,))
  schedule = schedules.make_schedule(cfg, steps_per_epoch=steps, max_iteration=(n_epoch - 1) * steps)
  alpha_plan = [lr] * n_epoch
  for i in range(start, n_epoch):
    alpha_plan[i] = float(n_epoch - i) / (n_epoch - start) * lr
  got = [float(schedule(d * steps)) for d in range(n_epoch - 1)]
  np.testing.assert_allclose(got, [alpha_plan[d + 1] for d in range(n_epoch - 1)], rtol=1e-5)
  assert float(schedule(n_epoch * steps)) == 0.0


def test_adam_of_the_coteaching_plan_switches_beta1_like_pytorch():
  """PyTorch Adam with betas rewritten to (0.1, 0.999) from step `switch` on, as co-teaching does."""
  switch, lr, eps = 3, 0.01, 1e-8
  schedule = schedules.CoteachingLinear(lr, decay_start=switch, end=1000)
  optimizer = optimizers.make_optimizer("adam", schedule, momentum=0.9)
  assert isinstance(optimizer, optimizers.Beta1SwitchAdam)
  clone = type(optimizer).from_config(optimizer.get_config())
  assert clone.get_config() == optimizer.get_config()  # co-PRL's second optimizer is such a clone
  var = keras.Variable(np.array([0.5, -1.0], np.float32))
  theta, m, v = np.array([0.5, -1.0]), np.zeros(2), np.zeros(2)
  for t in range(1, 7):
    grad = np.array([0.3, -0.2]) * t
    optimizer.apply([tf.constant(grad, tf.float32)], [var])
    beta1 = 0.9 if t - 1 < switch else 0.1
    rate = lr * min(1.0, (1000 - (t - 1)) / (1000 - switch))
    m = beta1 * m + (1 - beta1) * grad
    v = 0.999 * v + 0.001 * grad ** 2
    theta = theta - rate / (1 - beta1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - 0.999 ** t) + eps)
    np.testing.assert_allclose(var.numpy(), theta, rtol=1e-5, atol=1e-6)
