"""Runs augmentation policies on a batch: the random draws as a plan, then the ops.

A policy run is split in two so that tests (and a resumed run) can see exactly what was
drawn: `OpPlan` holds every random choice (which op, level, whether it fires, sign,
centre) for every image and slot, drawn with stateless ops from a seed; `run_plan`
applies it. In each slot the batch is split by op, every op runs once on its group and
the groups are stitched back, so the work follows the ops that fire, whether the batch
shares one policy (RandAugment) or every image has its own (AutoAugment).
"""
import dataclasses
from typing import Dict, Tuple

import tensorflow as tf

from datasets.augment.levels import LevelOp, OpDraws, State


@dataclasses.dataclass(frozen=True)
class OpPlan:
  """Random choices for S op slots of N images (tensors with leading dims [N, S])."""
  op_names: Tuple[str, ...]  # what op_index refers to
  op_index: tf.Tensor        # int32 [N, S]
  level: tf.Tensor           # int32 [N, S]
  fire: tf.Tensor            # bool [N, S]
  negate: tf.Tensor          # bool [N, S]
  centre: tf.Tensor          # int32 [N, S, 2]


def as_seed(seed) -> tf.Tensor:
  """A stateless seed as int64 [2]; int32 and int64 seeds with equal values agree."""
  return tf.cast(tf.reshape(tf.convert_to_tensor(seed), [2]), tf.int64)


def sub_seed(seed: tf.Tensor, purpose: int) -> tf.Tensor:
  """An independent seed for one kind of draw, so adding draws never shifts others."""
  return tf.random.experimental.stateless_fold_in(as_seed(seed), purpose)


def uniform(seed: tf.Tensor, purpose: int, shape) -> tf.Tensor:
  """Floats in [0, 1), like Python's random.random()."""
  return tf.random.stateless_uniform(shape, sub_seed(seed, purpose), dtype=tf.float32)


def randint(seed: tf.Tensor, purpose: int, shape, low, high) -> tf.Tensor:
  """Integers in [low, high), like numpy's randint(low, high)."""
  return tf.random.stateless_uniform(
      shape, sub_seed(seed, purpose), minval=low, maxval=high, dtype=tf.int32)


# Purposes of the draws made here (callers use their own, from 100 on).
_FIRE, _NEGATE, _CENTRE_ROW, _CENTRE_COL = 1, 2, 3, 4


@tf.autograph.experimental.do_not_convert
def draw_plan(seed: tf.Tensor, op_names: Tuple[str, ...], op_index: tf.Tensor,
              level: tf.Tensor, probability: tf.Tensor,
              image_hw: Tuple[tf.Tensor, tf.Tensor]) -> OpPlan:
  """Completes a plan: each op fires with its probability (uniform < p, as the original)
  and gets a random sign (u > 0.5 means negative) and a uniform Cutout centre."""
  shape = tf.shape(op_index)
  rows = randint(seed, _CENTRE_ROW, shape, 0, image_hw[0])
  cols = randint(seed, _CENTRE_COL, shape, 0, image_hw[1])
  return OpPlan(
      op_names=tuple(op_names),
      op_index=tf.cast(op_index, tf.int32),
      level=tf.cast(level, tf.int32),
      fire=uniform(seed, _FIRE, shape) < tf.cast(probability, tf.float32),
      negate=uniform(seed, _NEGATE, shape) > 0.5,
      centre=tf.stack([rows, cols], axis=-1))


@tf.autograph.experimental.do_not_convert
def run_plan(state: State, plan: OpPlan, registry: Dict[str, LevelOp]) -> State:
  """Applies the plan's slots in order to `state` (the registry's image tensors).

  The slots run in a tf.while_loop, so each op's graph is built once, not once per slot:
  that halves the graph and the time to trace it.
  """
  unknown = [name for name in plan.op_names if name not in registry]
  if unknown:
    raise ValueError(f"ops {unknown} have no implementation in this convention")

  def apply_slot(slot, *images):
    def column(values):
      return tf.gather(values, slot, axis=1)
    draws = OpDraws(column(plan.level), column(plan.negate), column(plan.centre))
    return (slot + 1,) + _apply_grouped(images, plan.op_names, registry,
                                        column(plan.op_index), draws, column(plan.fire))

  num_slots = tf.shape(plan.op_index)[1]
  results = tf.while_loop(lambda slot, *images: slot < num_slots, apply_slot,
                          (tf.constant(0),) + tuple(state))
  return tuple(results[1:])


def _apply_grouped(state: State, op_names: Tuple[str, ...], registry: Dict[str, LevelOp],
                   op_index: tf.Tensor, draws: OpDraws, fire: tf.Tensor) -> State:
  """Splits the batch by op (plus one group left as is), runs each op once, restitches."""
  num_ops = len(op_names)
  groups = tf.where(fire, op_index, num_ops)
  positions = tf.dynamic_partition(tf.range(tf.shape(groups)[0]), groups, num_ops + 1)
  state_groups = [tf.dynamic_partition(tensor, groups, num_ops + 1) for tensor in state]
  results = []
  for group, name in enumerate(op_names):
    group_draws = OpDraws(*(tf.gather(values, positions[group]) for values in draws))
    group_state = tuple(parts[group] for parts in state_groups)
    results.append(registry[name](group_state, group_draws))
  results.append(tuple(parts[num_ops] for parts in state_groups))
  return tuple(
      tf.ensure_shape(tf.dynamic_stitch(positions, [result[i] for result in results]),
                      tensor.shape)
      for i, tensor in enumerate(state))
