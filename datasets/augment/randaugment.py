"""RandAugment as IEG does it (`random_augmentation` in the original).

Two ops are drawn with replacement from 14, each with a level drawn from 1..9 (the
original's `np.random.randint(1, 10)`), and the resulting policy is shared by the whole
batch ("using shared policies are better"); each image still flips its own coin
(p = 0.5) per op and draws its own sign. `per_image=True` draws the two ops and levels
for every image instead, the variant most RandAugment implementations use.
"""
from typing import Tuple

import tensorflow as tf

from datasets.augment import policy as augment_policy

RANDAUGMENT_OPS: Tuple[str, ...] = (
    "Identity", "AutoContrast", "Equalize", "Rotate", "Solarize", "Color", "Contrast",
    "Brightness", "Sharpness", "ShearX", "TranslateX", "TranslateY", "Posterize", "ShearY")
NUM_OPS = 2
OP_PROBABILITY = 0.5
LEVEL_LOW, LEVEL_HIGH = 1, 10  # half-open, like randint: levels 1..9

_OP_DRAW, _LEVEL_DRAW = 200, 201


@tf.autograph.experimental.do_not_convert
def draw_plan(seed: tf.Tensor, batch_size: tf.Tensor, image_hw: Tuple[tf.Tensor, tf.Tensor],
              per_image: bool = False) -> augment_policy.OpPlan:
  """The RandAugment plan: one policy for the batch, or one per image."""
  policy_shape = [batch_size, NUM_OPS] if per_image else [1, NUM_OPS]
  op_index = augment_policy.randint(seed, _OP_DRAW, policy_shape, 0, len(RANDAUGMENT_OPS))
  level = augment_policy.randint(seed, _LEVEL_DRAW, policy_shape, LEVEL_LOW, LEVEL_HIGH)
  plan_shape = [batch_size, NUM_OPS]
  return augment_policy.draw_plan(
      seed, RANDAUGMENT_OPS, tf.broadcast_to(op_index, plan_shape),
      tf.broadcast_to(level, plan_shape), tf.fill(plan_shape, OP_PROBABILITY), image_hw)
