"""AutoAugment as IEG uses it: the policy tables as data, and drawing a plan from them.

`CIFAR10_POLICY` is IEG's `cifar10_policies()`: 95 sub-policies of two
(op, probability, level) steps each, the "good policies" of the AutoAugment search
(4 lists of exp0, 7 of exp1, 8 of exp2, five sub-policies per list, in that order).
Every image gets its own uniformly drawn sub-policy, which is what the shipped code does
(`POOL = None`); each step fires independently with its probability.

`IMAGENET_V0_POLICY` is TF AutoAugment's 'v0' policy (25 sub-policies), used by IEG's
WebVision strong view.
"""
from typing import Tuple

import tensorflow as tf

from datasets.augment import policy as augment_policy

Step = Tuple[str, float, int]
SubPolicy = Tuple[Step, Step]

CIFAR10_POLICY: Tuple[SubPolicy, ...] = (
    # exp0_0
    (("Invert", 0.1, 7), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, 8), ("Equalize", 0.9, 2)),
    # exp0_1
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, 3)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, 2), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, 8), ("Invert", 0.1, 3)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, 1)),
    # exp0_2
    (("Solarize", 0.4, 5), ("AutoContrast", 0.0, 2)),
    (("TranslateY", 0.7, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, 0), ("Solarize", 0.4, 3)),
    (("Equalize", 0.7, 5), ("Invert", 0.1, 3)),
    (("TranslateY", 0.7, 9), ("TranslateY", 0.7, 9)),
    # exp0_3
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, 1)),
    (("TranslateY", 0.8, 9), ("TranslateY", 0.9, 9)),
    (("AutoContrast", 0.8, 0), ("TranslateY", 0.7, 9)),
    (("TranslateY", 0.2, 7), ("Color", 0.9, 6)),
    (("Equalize", 0.7, 6), ("Color", 0.4, 9)),
    # exp1_0
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, 5), ("Equalize", 0.5, 1)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    # exp1_1
    (("Brightness", 0.3, 7), ("AutoContrast", 0.5, 8)),
    (("AutoContrast", 0.9, 4), ("AutoContrast", 0.5, 6)),
    (("Solarize", 0.3, 5), ("Equalize", 0.6, 5)),
    (("TranslateY", 0.2, 4), ("Sharpness", 0.3, 3)),
    (("Brightness", 0.0, 8), ("Color", 0.8, 8)),
    # exp1_2
    (("Solarize", 0.2, 6), ("Color", 0.8, 6)),
    (("Solarize", 0.2, 6), ("AutoContrast", 0.8, 1)),
    (("Solarize", 0.4, 1), ("Equalize", 0.6, 5)),
    (("Brightness", 0.0, 0), ("Solarize", 0.5, 2)),
    (("AutoContrast", 0.9, 5), ("Brightness", 0.5, 3)),
    # exp1_3
    (("Contrast", 0.7, 5), ("Brightness", 0.0, 2)),
    (("Solarize", 0.2, 8), ("Solarize", 0.1, 5)),
    (("Contrast", 0.5, 1), ("TranslateY", 0.2, 9)),
    (("AutoContrast", 0.6, 5), ("TranslateY", 0.0, 9)),
    (("AutoContrast", 0.9, 4), ("Equalize", 0.8, 4)),
    # exp1_4
    (("Brightness", 0.0, 7), ("Equalize", 0.4, 7)),
    (("Solarize", 0.2, 5), ("Equalize", 0.7, 5)),
    (("Equalize", 0.6, 8), ("Color", 0.6, 2)),
    (("Color", 0.3, 7), ("Color", 0.2, 4)),
    (("AutoContrast", 0.5, 2), ("Solarize", 0.7, 2)),
    # exp1_5
    (("AutoContrast", 0.2, 0), ("Equalize", 0.1, 0)),
    (("ShearY", 0.6, 5), ("Equalize", 0.6, 5)),
    (("Brightness", 0.9, 3), ("AutoContrast", 0.4, 1)),
    (("Equalize", 0.8, 8), ("Equalize", 0.7, 7)),
    (("Equalize", 0.7, 7), ("Solarize", 0.5, 0)),
    # exp1_6
    (("Equalize", 0.8, 4), ("TranslateY", 0.8, 9)),
    (("TranslateY", 0.8, 9), ("TranslateY", 0.6, 9)),
    (("TranslateY", 0.9, 0), ("TranslateY", 0.5, 9)),
    (("AutoContrast", 0.5, 3), ("Solarize", 0.3, 4)),
    (("Solarize", 0.5, 3), ("Equalize", 0.4, 4)),
    # exp2_0
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, 7), ("AutoContrast", 0.4, 8)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, 3)),
    # exp2_1
    (("AutoContrast", 0.1, 5), ("Brightness", 0.0, 0)),
    (("Cutout", 0.2, 4), ("Equalize", 0.1, 1)),
    (("Equalize", 0.7, 7), ("AutoContrast", 0.6, 4)),
    (("Color", 0.1, 8), ("ShearY", 0.2, 3)),
    (("ShearY", 0.4, 2), ("Rotate", 0.7, 0)),
    # exp2_2
    (("ShearY", 0.1, 3), ("AutoContrast", 0.9, 5)),
    (("TranslateY", 0.3, 6), ("Cutout", 0.3, 3)),
    (("Equalize", 0.5, 0), ("Solarize", 0.6, 6)),
    (("AutoContrast", 0.3, 5), ("Rotate", 0.2, 7)),
    (("Equalize", 0.8, 2), ("Invert", 0.4, 0)),
    # exp2_3
    (("Equalize", 0.9, 5), ("Color", 0.7, 0)),
    (("Equalize", 0.1, 1), ("ShearY", 0.1, 3)),
    (("AutoContrast", 0.7, 3), ("Equalize", 0.7, 0)),
    (("Brightness", 0.5, 1), ("Contrast", 0.1, 7)),
    (("Contrast", 0.1, 4), ("Solarize", 0.6, 5)),
    # exp2_4
    (("Solarize", 0.2, 3), ("ShearX", 0.0, 0)),
    (("TranslateX", 0.3, 0), ("TranslateX", 0.6, 0)),
    (("Equalize", 0.5, 9), ("TranslateY", 0.6, 7)),
    (("ShearX", 0.1, 0), ("Sharpness", 0.5, 1)),
    (("Equalize", 0.8, 6), ("Invert", 0.3, 6)),
    # exp2_5
    (("AutoContrast", 0.3, 9), ("Cutout", 0.5, 3)),
    (("ShearX", 0.4, 4), ("AutoContrast", 0.9, 2)),
    (("ShearX", 0.0, 3), ("Posterize", 0.0, 3)),
    (("Solarize", 0.4, 3), ("Color", 0.2, 4)),
    (("Equalize", 0.1, 4), ("Equalize", 0.7, 6)),
    # exp2_6
    (("Equalize", 0.3, 8), ("AutoContrast", 0.4, 3)),
    (("Solarize", 0.6, 4), ("AutoContrast", 0.7, 6)),
    (("AutoContrast", 0.2, 9), ("Brightness", 0.4, 8)),
    (("Equalize", 0.1, 0), ("Equalize", 0.0, 6)),
    (("Equalize", 0.8, 4), ("Equalize", 0.0, 4)),
    # exp2_7
    (("Equalize", 0.5, 5), ("AutoContrast", 0.1, 2)),
    (("Solarize", 0.5, 5), ("AutoContrast", 0.9, 5)),
    (("AutoContrast", 0.6, 1), ("AutoContrast", 0.7, 8)),
    (("Equalize", 0.2, 0), ("AutoContrast", 0.1, 2)),
    (("Equalize", 0.6, 9), ("Equalize", 0.4, 4)),
)

IMAGENET_V0_POLICY: Tuple[SubPolicy, ...] = (
    (("Equalize", 0.8, 1), ("ShearY", 0.8, 4)),
    (("Color", 0.4, 9), ("Equalize", 0.6, 3)),
    (("Color", 0.4, 1), ("Rotate", 0.6, 8)),
    (("Solarize", 0.8, 3), ("Equalize", 0.4, 7)),
    (("Solarize", 0.4, 2), ("Solarize", 0.6, 2)),
    (("Color", 0.2, 0), ("Equalize", 0.8, 8)),
    (("Equalize", 0.4, 8), ("SolarizeAdd", 0.8, 3)),
    (("ShearX", 0.2, 9), ("Rotate", 0.6, 8)),
    (("Color", 0.6, 1), ("Equalize", 1.0, 2)),
    (("Invert", 0.4, 9), ("Rotate", 0.6, 0)),
    (("Equalize", 1.0, 9), ("ShearY", 0.6, 3)),
    (("Color", 0.4, 7), ("Equalize", 0.6, 0)),
    (("Posterize", 0.4, 6), ("AutoContrast", 0.4, 7)),
    (("Solarize", 0.6, 8), ("Color", 0.6, 9)),
    (("Solarize", 0.2, 4), ("Rotate", 0.8, 9)),
    (("Rotate", 1.0, 7), ("TranslateY", 0.8, 9)),
    (("ShearX", 0.0, 0), ("Solarize", 0.8, 4)),
    (("ShearY", 0.8, 0), ("Color", 0.6, 4)),
    (("Color", 1.0, 0), ("Rotate", 0.6, 2)),
    (("Equalize", 0.8, 4), ("Equalize", 0.0, 8)),
    (("Equalize", 1.0, 4), ("AutoContrast", 0.6, 2)),
    (("ShearY", 0.4, 7), ("SolarizeAdd", 0.6, 7)),
    (("Posterize", 0.8, 2), ("Solarize", 0.6, 10)),
    (("Solarize", 0.6, 8), ("Equalize", 0.6, 1)),
    (("Color", 0.8, 6), ("Rotate", 0.4, 5)),
)


def policy_op_names(policy: Tuple[SubPolicy, ...]) -> Tuple[str, ...]:
  """The distinct op names of a policy, in order of first use."""
  return tuple(dict.fromkeys(name for sub_policy in policy for name, _, _ in sub_policy))


_SUB_POLICY_DRAW = 100


@tf.autograph.experimental.do_not_convert
def draw_plan(policy: Tuple[SubPolicy, ...], seed: tf.Tensor, batch_size: tf.Tensor,
              image_hw: Tuple[tf.Tensor, tf.Tensor]) -> augment_policy.OpPlan:
  """A uniformly drawn sub-policy for every image, with its coins, signs and centres."""
  op_names = policy_op_names(policy)
  op_index = tf.constant([[op_names.index(name) for name, _, _ in sub] for sub in policy],
                         tf.int32)
  probability = tf.constant([[prob for _, prob, _ in sub] for sub in policy], tf.float32)
  level = tf.constant([[level for _, _, level in sub] for sub in policy], tf.int32)
  chosen = augment_policy.randint(seed, _SUB_POLICY_DRAW, [batch_size], 0, len(policy))
  return augment_policy.draw_plan(
      seed, op_names, tf.gather(op_index, chosen), tf.gather(level, chosen),
      tf.gather(probability, chosen), image_hw)
