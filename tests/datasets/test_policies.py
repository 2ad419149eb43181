"""The policy tables, the random draws, and the full strong view against Pillow.

The strong view is compared with the per-image Pillow reference fed the very draws the
TensorFlow plan made (sub-policy steps, coins, signs, crop offsets, flips, cutout
centres). Tolerance: 1e-6 in [-1, 1] (float32 here, float64 in the reference); the
uint8 pixels behind it are identical.
"""
import collections
from typing import List

import numpy as np
import pytest
import tensorflow as tf

from core.errors import UserError
from datasets.augment import autoaugment, randaugment, strong_view
from datasets.augment import levels as augment_levels
from datasets.augment import policy as augment_policy
from tests.datasets import reference_pil_augment as ref

# augment.md's coverage table: op -> (slots of 190, sub-policies containing it of 95,
# expected applications per image = sum of probabilities / 95, levels used).
EXPECTED_OP_TABLE = {
    "Equalize": (40, 34, 0.222, {0, 1, 2, 4, 5, 6, 7, 8, 9}),
    "AutoContrast": (35, 33, 0.215, {0, 1, 2, 3, 4, 5, 6, 8, 9}),
    "Solarize": (24, 23, 0.104, {0, 1, 2, 3, 4, 5, 6, 8}),
    "TranslateY": (23, 17, 0.144, {0, 3, 4, 6, 7, 9}),
    "Color": (13, 12, 0.066, {0, 2, 3, 4, 6, 7, 8, 9}),
    "Brightness": (13, 13, 0.051, {0, 1, 2, 3, 6, 7, 8, 9}),
    "Sharpness": (7, 6, 0.038, {1, 3, 5, 6, 9}),
    "ShearY": (7, 7, 0.022, {2, 3, 5, 7, 8}),
    "Invert": (6, 6, 0.011, {0, 3, 6, 7}),
    "Contrast": (6, 6, 0.023, {1, 4, 5, 6, 7}),
    "TranslateX": (4, 3, 0.018, {0, 8, 9}),
    "ShearX": (4, 4, 0.005, {0, 3, 4}),
    "Rotate": (3, 3, 0.017, {0, 2, 7}),
    "Cutout": (3, 3, 0.011, {3, 4}),
    "Posterize": (2, 2, 0.003, {3, 7}),
}
POLICY_AUG_TYPES = ("autoaug", "randaug", "randaug_per_image")


@pytest.fixture(scope="module")
def images(real_data_dir) -> np.ndarray:
  data = np.load(real_data_dir / "cifar10_subset" / "cifar10_subset.npz")
  return data["x_train"][:64]


# --- The tables ------------------------------------------------------------------------

def test_cifar_policy_table_matches_augment_md():
  policy = autoaugment.CIFAR10_POLICY
  assert len(policy) == 95 and all(len(sub_policy) == 2 for sub_policy in policy)
  steps = [step for sub_policy in policy for step in sub_policy]
  assert sum(prob == 0.0 for _, prob, _ in steps) == 13
  assert sum(prob for _, prob, _ in steps) / 95 == pytest.approx(0.95, abs=1e-3)
  found = {}
  for name in {name for name, _, _ in steps}:
    slots = [(prob, level) for op, prob, level in steps if op == name]
    containing = sum(any(op == name for op, _, _ in sub_policy) for sub_policy in policy)
    found[name] = (len(slots), containing, round(sum(p for p, _ in slots) / 95, 3),
                   {level for _, level in slots})
  assert found == EXPECTED_OP_TABLE


def test_randaugment_uses_iegs_fourteen_ops():
  assert randaugment.RANDAUGMENT_OPS == (
      "Identity", "AutoContrast", "Equalize", "Rotate", "Solarize", "Color", "Contrast",
      "Brightness", "Sharpness", "ShearX", "TranslateX", "TranslateY", "Posterize", "ShearY")
  assert (randaugment.NUM_OPS, randaugment.OP_PROBABILITY) == (2, 0.5)


def test_imagenet_v0_policy_is_complete():
  policy = autoaugment.IMAGENET_V0_POLICY
  assert len(policy) == 25 and all(len(sub_policy) == 2 for sub_policy in policy)
  assert set(autoaugment.policy_op_names(policy)) <= set(augment_levels.IMAGENET_V0_OPS)


# --- The random draws ------------------------------------------------------------------

def test_autoaug_draws_uniform_sub_policies_and_fires_with_their_probabilities():
  num_images = 40000
  plan = autoaugment.draw_plan(autoaugment.CIFAR10_POLICY, tf.constant([3, 4]), num_images,
                               (32, 32))
  names = np.array(plan.op_names)[plan.op_index.numpy()]
  levels, fire = plan.level.numpy(), plan.fire.numpy()
  # Sub-policies are identified by their (op, level) pairs; duplicates count together.
  table = collections.Counter(tuple((name, level) for name, _, level in sub)
                              for sub in autoaugment.CIFAR10_POLICY)
  drawn = collections.Counter(zip(map(tuple, zip(names[:, 0], levels[:, 0])),
                                  map(tuple, zip(names[:, 1], levels[:, 1]))))
  assert set(drawn) == set(table)
  for signature, copies in table.items():
    expected = num_images * copies / 95
    assert abs(drawn[signature] - expected) < 5 * np.sqrt(expected), signature
  assert fire.sum() / num_images == pytest.approx(0.95, abs=0.02)
  for name, (_, _, expected_rate, _) in EXPECTED_OP_TABLE.items():
    assert (fire & (names == name)).sum() / num_images == pytest.approx(expected_rate, abs=0.012)
  assert plan.negate.numpy().mean() == pytest.approx(0.5, abs=0.02)
  centres = plan.centre.numpy()
  assert centres.min() == 0 and centres.max() == 31


def test_probability_zero_never_fires_and_one_always_does():
  policy = ((("Rotate", 0.0, 5), ("Equalize", 1.0, 0)),)
  plan = autoaugment.draw_plan(policy, tf.constant([8, 1]), 5000, (32, 32))
  assert not plan.fire.numpy()[:, 0].any() and plan.fire.numpy()[:, 1].all()


def test_randaug_shares_two_ops_with_levels_one_to_nine_across_the_batch():
  draw = tf.function(lambda seed: (lambda plan: (plan.op_index, plan.level))(
      randaugment.draw_plan(seed, 16, (32, 32))))
  ops_seen, levels_seen, repeats = set(), set(), 0
  for step in range(300):
    op_index, level = (values.numpy() for values in draw(tf.constant([5, step])))
    assert (op_index == op_index[0]).all() and (level == level[0]).all()
    ops_seen.update(op_index[0].tolist())
    levels_seen.update(level[0].tolist())
    repeats += op_index[0, 0] == op_index[0, 1]
  assert ops_seen == set(range(14))
  assert levels_seen == set(range(1, 10))
  assert 5 <= repeats <= 45  # drawn with replacement: about 300 / 14


def test_randaug_per_image_draws_its_own_ops():
  plan = randaugment.draw_plan(tf.constant([5, 6]), 500, (32, 32), per_image=True)
  op_index, level = plan.op_index.numpy(), plan.level.numpy()
  assert len(np.unique(op_index)) == 14 and set(np.unique(level)) == set(range(1, 10))
  assert plan.fire.numpy().mean() == pytest.approx(0.5, abs=0.03)


def test_crop_flip_and_cutout_draws_cover_the_original_ranges():
  plan = strong_view.draw_strong_view_plan(tf.constant([1, 1]), 5000, (32, 32), "none")
  offsets = plan.crop_offset.numpy()
  assert offsets.min() == 0 and offsets.max() == 7  # randint(0, 8): never 8
  assert plan.flip.numpy().mean() == pytest.approx(0.5, abs=0.03)
  centres = plan.cutout_centre.numpy()
  assert centres.min() == 0 and centres.max() == 31
  no_flip = strong_view.draw_strong_view_plan(tf.constant([1, 1]), 100, (32, 32), "none",
                                              flip=False)
  assert not no_flip.flip.numpy().any()


# --- The full strong view --------------------------------------------------------------

def _reference_views(images: np.ndarray, plan: strong_view.StrongViewPlan) -> np.ndarray:
  views = []
  for i, image in enumerate(images):
    steps: List[ref.Step] = []
    if plan.policy is not None:
      policy = plan.policy
      for slot in range(policy.op_index.shape[1]):
        steps.append(ref.Step(policy.op_names[int(policy.op_index[i, slot])],
                              int(policy.level[i, slot]), bool(policy.fire[i, slot]),
                              bool(policy.negate[i, slot]),
                              tuple(int(v) for v in policy.centre[i, slot])))
    views.append(ref.strong_view(image, steps, tuple(plan.crop_offset[i].numpy()),
                                 bool(plan.flip[i]), tuple(plan.cutout_centre[i].numpy())))
  return np.stack(views)


@pytest.mark.realdata
@pytest.mark.parametrize("aug_type", strong_view.AUG_TYPES)
def test_strong_view_matches_pillow_reference(aug_type, images):
  # RandAugment draws one policy per batch: several small batches let it vary.
  num_batches = 4 if aug_type == "randaug" else 1
  for step, batch in enumerate(np.split(images, num_batches)):
    plan = strong_view.draw_strong_view_plan(tf.constant([11, step]), len(batch), (32, 32),
                                             aug_type)
    ours = strong_view.apply_strong_view_plan(tf.constant(batch), plan).numpy()
    np.testing.assert_allclose(ours, _reference_views(batch, plan), rtol=0, atol=1e-6)


@pytest.mark.realdata
def test_grayscale_strong_view_matches_pillow_on_one_channel(images):
  gray = images[:32, 2:30, 2:30, 1:2]  # 28 x 28 x 1, like the digit datasets
  plan = strong_view.draw_strong_view_plan(tf.constant([2, 9]), 32, (28, 28), "autoaug",
                                           flip=False)
  ours = strong_view.apply_strong_view_plan(tf.constant(gray), plan).numpy()
  # On a grey RGB image every op acts on each channel alike; the green channel also
  # matches our one-channel Cutout paint (122).
  theirs = _reference_views(np.repeat(gray, 3, axis=-1), plan)[..., 1:2]
  assert ours.shape == gray.shape
  np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


@pytest.mark.realdata
def test_strong_view_in_tf_data_equals_eager(images):
  seed = tf.constant([4, 2], tf.int64)
  batch = tf.constant(images[:16])
  dataset = tf.data.Dataset.from_tensors(batch).map(
      lambda x: {aug: strong_view.strong_view(x, seed, aug) for aug in strong_view.AUG_TYPES})
  in_graph = next(iter(dataset))
  for aug_type in strong_view.AUG_TYPES:
    np.testing.assert_array_equal(in_graph[aug_type].numpy(),
                                  strong_view.strong_view(batch, seed, aug_type).numpy())


@pytest.mark.realdata
@pytest.mark.parametrize("aug_type", POLICY_AUG_TYPES)
def test_same_seed_same_view_other_seed_other_view(aug_type, images):
  batch = tf.constant(images[:16])
  first = strong_view.strong_view(batch, tf.constant([7, 1], tf.int32), aug_type).numpy()
  again = strong_view.strong_view(batch, tf.constant([7, 1], tf.int64), aug_type).numpy()
  other = strong_view.strong_view(batch, tf.constant([7, 2], tf.int32), aug_type).numpy()
  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other)
  assert first.dtype == np.float32 and first.shape == (16, 32, 32, 3)
  assert first.min() >= -1.0 and first.max() <= 1.0


@pytest.mark.realdata
def test_no_policy_no_pad_no_flip_no_cutout_is_the_plain_image(images):
  batch = images[:8]
  out = strong_view.strong_view(tf.constant(batch), tf.constant([0, 0]), "none", flip=False,
                                cutout_size=0, pad=0).numpy()
  np.testing.assert_allclose(out, batch / 127.5 - 1.0, rtol=0, atol=1e-6)


def test_probability_zero_leaves_images_unchanged():
  images = np.random.RandomState(0).randint(0, 256, [8, 32, 32, 3]).astype(np.uint8)
  batch = tf.constant(images)
  opaque = tf.fill([8, 32, 32, 1], tf.constant(255, tf.uint8))
  zero = tf.zeros([8, 2], tf.int32)
  plan = augment_policy.draw_plan(
      tf.constant([1, 2]), randaugment.RANDAUGMENT_OPS, zero + 3, zero + 9,
      tf.zeros([8, 2]), (32, 32))  # Rotate, level 9, probability 0
  colour, alpha = augment_policy.run_plan((batch, opaque), plan, augment_levels.PIL_RGBA_OPS)
  np.testing.assert_array_equal(colour.numpy(), images)
  np.testing.assert_array_equal(alpha.numpy(), opaque.numpy())


def test_unknown_aug_type_is_a_user_error():
  with pytest.raises(UserError, match="--aug_type=autoaugment is not known: choose one of autoaug, randaug, "
                                      "randaug_per_image, none"):
    strong_view.strong_view(tf.zeros([2, 32, 32, 3], tf.uint8), tf.constant([0, 0]),
                            "autoaugment")


# --- ImageNet-size views ---------------------------------------------------------------

@pytest.fixture(scope="module")
def large_image(images) -> np.ndarray:
  from PIL import Image  # pylint: disable=import-outside-toplevel
  return np.asarray(Image.fromarray(images[0]).resize((300, 260), Image.BILINEAR))


@pytest.mark.realdata
def test_imagenet_eval_view_is_the_padded_centre_crop(large_image):
  ours = strong_view.imagenet_eval_view(tf.constant(large_image)).numpy()
  crop = int(224 / 256 * 260)  # 227 of the shorter side, centred
  top, left = (260 - crop + 1) // 2, (300 - crop + 1) // 2
  window = large_image[top:top + crop, left:left + crop].astype(np.float32)
  expected = tf.image.resize(window, [224, 224]).numpy() / 127.5 - 1.0
  np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5)


@pytest.mark.realdata
def test_imagenet_train_views_are_seeded_and_in_range(large_image):
  image = tf.constant(large_image)
  seeds = [tf.constant([1, 5]), tf.constant([1, 5]), tf.constant([1, 6])]
  dataset = tf.data.Dataset.from_tensor_slices(tf.stack(seeds)).map(
      lambda seed: (strong_view.imagenet_weak_view(image, seed),
                    strong_view.imagenet_strong_view(image, seed)))
  for kind, views in zip(("weak", "strong"), zip(*dataset)):
    first, again, other = (view.numpy() for view in views)
    assert first.shape == (224, 224, 3) and first.dtype == np.float32, kind
    assert first.min() >= -1.0 and first.max() <= 1.0, kind
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other), kind
  eager = strong_view.imagenet_strong_view(image, seeds[0]).numpy()
  np.testing.assert_array_equal(eager, next(iter(dataset))[1].numpy())
