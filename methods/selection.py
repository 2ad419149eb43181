"""Shared pieces of the selection methods (SIGUA, PRL): forget-rate schedules, ranking over the
global batch, and label-precision diagnostics.

Ranking runs over the *global* batch: every replica gathers the scores of all replicas, ranks them
the same way and keeps its own rows of the result. A run on N replicas therefore selects exactly
the examples a single device would select from the same global batch.

Rates and counts are computed in float64, as the reference code does in Python, so that
`int((1 - rate) * B)` gives the same count at the boundaries.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from core import ranges
from core.errors import UserError


@dataclasses.dataclass
class ForgetScheduleConfig:
  """The forget-rate flags shared by the small-loss selection methods (SIGUA, PRL)."""
  forget_rate: float | None = dataclasses.field(default=None, metadata={
      "range": ranges.FRACTION_BELOW_ONE, "estimable": True, "help": (
          "Fraction of each batch forgotten once the schedule has ramped up (tau / epsilon); default: the "
          "dataset's nominal noise rate; 'estimate': the noise rate --mode=find_issues estimated.")})
  num_gradual: int = dataclasses.field(default=10, metadata={"range": ranges.at_least(0), "help": (
      "Passes over the data during which the forget rate ramps up linearly from 0.")})
  exponent: float = dataclasses.field(default=1.0, metadata={"range": ranges.positive(), "help": (
      "The ramp of the co-teaching schedule ends at forget_rate**exponent.")})


# ----- forget-rate schedules ------------------------------------------------------------------
def coteaching_forget_rate(epoch, rate: float, num_gradual: int, exponent: float = 1.0) -> tf.Tensor:
  """Co-teaching's `rate_schedule` (SIGUA official, PRL) for the 0-based pass `epoch`.

  The schedule is `rate` everywhere except its first `num_gradual` entries, which are
  `linspace(0, rate**exponent, num_gradual)`. Those codes train epochs 1..N-1, so pass `epoch`
  reads entry `epoch + 1`: the first pass already forgets rate**exponent / (num_gradual - 1).
  """
  index = tf.cast(epoch, tf.float64) + 1.0
  if num_gradual <= 1:  # linspace(0, x, 1) is [0]: only the unread entry 0 is ramped
    return tf.constant(rate, tf.float64) + 0.0 * index
  stop = float(rate) ** exponent
  step = stop / (num_gradual - 1)  # numpy's linspace: k * step, then the last entry set to `stop`
  ramp = tf.where(tf.equal(index, num_gradual - 1), tf.constant(stop, tf.float64), index * step)
  return tf.where(index < num_gradual, ramp, tf.constant(rate, tf.float64))


def gradual_forget_rate(epoch, rate: float, num_gradual: int) -> tf.Tensor:
  """pytorch-SIGUA's `tau * min(epoch / num_gradual, 1)`: the first pass forgets nothing."""
  epoch = tf.cast(epoch, tf.float64)
  if num_gradual <= 0:
    return tf.constant(rate, tf.float64) + 0.0 * epoch
  return rate * tf.minimum(epoch / float(num_gradual), 1.0)


def resolve_forget_rate(configured: float | None, noise_ratio: float, flag: str = "forget_rate") -> float:
  """The configured forget rate, else the dataset's nominal noise rate (as the references assume)."""
  rate = noise_ratio if configured is None else configured
  if not 0.0 <= rate < 1.0:
    raise UserError(f"--{flag}={rate} is outside [0, 1): give the fraction of each batch to forget, "
                    "e.g. the noise rate 0.5")
  return float(rate)


# ----- counts and ranks -----------------------------------------------------------------------
def remember_count(forget_rate: tf.Tensor, batch_size: tf.Tensor) -> tf.Tensor:
  """int((1 - forget_rate) * B): the number of small-score examples kept."""
  remember = 1.0 - tf.cast(forget_rate, tf.float64)
  return tf.cast(tf.floor(remember * tf.cast(batch_size, tf.float64)), tf.int32)


def fraction_count(count: tf.Tensor, fraction: float) -> tf.Tensor:
  """int(count * fraction), in float64 like Python."""
  return tf.cast(tf.floor(tf.cast(count, tf.float64) * float(fraction)), tf.int32)


def ascending_ranks(scores: tf.Tensor) -> tf.Tensor:
  """rank[i] = position of example i when the scores are sorted ascending (ties: lower index first)."""
  order = tf.argsort(tf.stop_gradient(scores), stable=True)
  return tf.math.invert_permutation(order)


def rank_window(ranks: tf.Tensor, start, stop) -> tf.Tensor:
  """Bool mask of the examples whose rank lies in [start, stop)."""
  return tf.logical_and(ranks >= start, ranks < stop)


# ----- global batch across replicas -----------------------------------------------------------
def gather_global(local):
  """(the values of every replica's rows concatenated in replica order, this replica's first row).

  `local` may be a nested structure of tensors with the example axis first. Outside a multi-replica
  run this is the identity with offset 0.
  """
  context = tf.distribute.get_replica_context()
  if context is None or context.num_replicas_in_sync == 1:
    return local, tf.constant(0, tf.int32)
  everything = context.all_gather(local, axis=0)
  first = tf.nest.flatten(local)[0]
  sizes = context.all_gather(tf.shape(first)[:1], axis=0)
  replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
  offset = tf.reduce_sum(tf.where(tf.range(tf.size(sizes)) < replica, sizes, 0))
  return everything, offset


def local_rows(global_values: tf.Tensor, offset: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
  """This replica's rows of a global-batch tensor."""
  return tf.gather(global_values, offset + tf.range(size))


# ----- diagnostics (never part of a loss) -----------------------------------------------------
def clean_by_row(corrupted: np.ndarray | None) -> np.ndarray | None:
  """float32 1/0 by training row: 1 where the training label is the true one."""
  if corrupted is None:
    return None
  return np.logical_not(np.asarray(corrupted, dtype=bool)).astype(np.float32)


def clean_flags(clean_rows: np.ndarray | None, index: tf.Tensor) -> tf.Tensor | None:
  """1/0 per example of the batch: is its training label the true one? None when unknown."""
  if clean_rows is None:
    return None
  return tf.stop_gradient(tf.gather(tf.constant(clean_rows), index))


def update_clean_fraction(metric, clean: tf.Tensor | None, selected: tf.Tensor) -> None:
  """Adds the clean share of the `selected` examples ("label precision", "pure ratio") to `metric`."""
  if metric is None or clean is None:
    return
  metric.update_state(clean, sample_weight=tf.cast(selected, tf.float32))
