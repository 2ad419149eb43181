"""Every augmentation op against the Pillow reference, on real CIFAR-10 images.

Tolerance: none. The ops reproduce Pillow bit for bit, so every uint8 output pixel must
be equal (geometric ops included: they copy Pillow's fixed-point sampling).
Half of the images carry transparent fill from an earlier TranslateY before the op
under test, so the alpha rules of the original (geometric fill, histogram ops making
pixels opaque, enhance ops keeping them) are checked too. Each op also runs inside
`tf.data.Dataset.map` and must give the eager result.
"""
from typing import Dict, List, Tuple

import numpy as np
import pytest
import tensorflow as tf

from datasets.augment import levels as augment_levels
from datasets.augment import ops as augment_ops
from tests.datasets import reference_pil_augment as ref

pytestmark = pytest.mark.realdata

NUM_IMAGES = 24
# (op, level) cases: a few levels per op, with their extremes where Pillow allows them.
PIL_CASES: List[Tuple[str, int]] = [
    ("Identity", 0), ("AutoContrast", 0), ("Equalize", 0), ("Invert", 0),
    ("Posterize", 1), ("Posterize", 3), ("Posterize", 7), ("Posterize", 9),
    ("Solarize", 0), ("Solarize", 3), ("Solarize", 8), ("Solarize", 10),
    ("Color", 0), ("Color", 5), ("Color", 9), ("Contrast", 0), ("Contrast", 4),
    ("Contrast", 9), ("Brightness", 0), ("Brightness", 6), ("Brightness", 10),
    ("Sharpness", 0), ("Sharpness", 3), ("Sharpness", 9), ("Rotate", 2), ("Rotate", 4),
    ("Rotate", 10), ("ShearX", 3), ("ShearX", 4), ("ShearX", 8), ("ShearY", 4),
    ("ShearY", 7), ("TranslateX", 3), ("TranslateX", 9), ("TranslateY", 1),
    ("TranslateY", 9), ("Cutout", 3), ("Cutout", 4), ("Cutout", 9),
]
PRE_SHIFT = ("TranslateY", 6)  # applied first to the odd-numbered images
# One case per op also runs inside tf.data (building that graph is the slow part).
DATASET_CASES = list(dict(PIL_CASES).items())  # the last (strongest) level of each op


def _case_draws(level: int, num_images: int) -> augment_levels.OpDraws:
  """Alternating signs and spread-out centres (some at the border)."""
  index = np.arange(num_images)
  centres = np.stack([(index * 7) % 32, (index * 13 + 5) % 32], axis=1)
  return augment_levels.OpDraws(
      tf.fill([num_images], level), tf.constant(index % 2 == 0),
      tf.constant(centres, tf.int32))


def _pre_shift_draws(num_images: int) -> Tuple[augment_levels.OpDraws, np.ndarray]:
  fired = np.arange(num_images) % 2 == 1
  draws = augment_levels.OpDraws(tf.fill([num_images], PRE_SHIFT[1]),
                                 tf.zeros([num_images], tf.bool),
                                 tf.zeros([num_images, 2], tf.int32))
  return draws, fired


def _run_cases(colour: tf.Tensor, alpha: tf.Tensor,
               cases: List[Tuple[str, int]] = tuple(PIL_CASES)) -> Dict[str, tf.Tensor]:
  """The cases on one batch: RGBA results stacked along the last axis."""
  num_images = colour.shape[0]
  shift_draws, fired = _pre_shift_draws(num_images)
  shifted = augment_levels.PIL_RGBA_OPS[PRE_SHIFT[0]]((colour, alpha), shift_draws)
  keep = tf.constant(fired)[:, tf.newaxis, tf.newaxis, tf.newaxis]
  start = tuple(tf.where(keep, moved, original) for moved, original in zip(shifted, (colour, alpha)))
  results = {}
  for name, level in cases:
    out_colour, out_alpha = augment_levels.PIL_RGBA_OPS[name](start, _case_draws(level, num_images))
    results[f"{name}/{level}"] = tf.concat([out_colour, out_alpha], axis=-1)
  return results


@pytest.fixture(scope="module")
def images(real_data_dir) -> np.ndarray:
  data = np.load(real_data_dir / "cifar10_subset" / "cifar10_subset.npz")
  return data["x_train"][:NUM_IMAGES]


@pytest.fixture(scope="module")
def pillow_results(images) -> Dict[str, np.ndarray]:
  _, fired = _pre_shift_draws(len(images))
  results = {}
  for name, level in PIL_CASES:
    draws = _case_draws(level, len(images))
    outputs = []
    for i, image in enumerate(images):
      steps = [ref.Step(PRE_SHIFT[0], PRE_SHIFT[1], bool(fired[i])),
               ref.Step(name, level, True, bool(draws.negate[i]),
                        tuple(int(v) for v in draws.centre[i]))]
      outputs.append(ref.apply_steps_rgba(image, steps))
    results[f"{name}/{level}"] = np.stack(outputs)
  return results


def _opaque_state(images: np.ndarray) -> Tuple[tf.Tensor, tf.Tensor]:
  return tf.constant(images), tf.fill(list(images.shape[:3]) + [1], tf.constant(255, tf.uint8))


@pytest.fixture(scope="module")
def eager_results(images) -> Dict[str, np.ndarray]:
  return {key: value.numpy() for key, value in _run_cases(*_opaque_state(images)).items()}


@pytest.fixture(scope="module")
def dataset_results(images) -> Dict[str, np.ndarray]:
  dataset = tf.data.Dataset.from_tensors(_opaque_state(images)).map(
      lambda colour, alpha: _run_cases(colour, alpha, DATASET_CASES))
  return {key: value.numpy() for key, value in next(iter(dataset)).items()}


@pytest.mark.parametrize("case", [f"{name}/{level}" for name, level in PIL_CASES])
def test_op_matches_pillow_exactly(case, eager_results, pillow_results):
  ours, theirs = eager_results[case], pillow_results[case]
  assert ours.shape == theirs.shape and ours.dtype == np.uint8
  differing = np.argwhere(ours != theirs)
  assert differing.size == 0, f"{case}: {len(differing)} values differ, first at {differing[:3]}"


@pytest.mark.parametrize("case", [f"{name}/{level}" for name, level in DATASET_CASES])
def test_op_inside_tf_data_equals_eager(case, eager_results, dataset_results):
  np.testing.assert_array_equal(dataset_results[case], eager_results[case])


def test_cases_cover_every_op_of_both_policies():
  from datasets.augment import autoaugment, randaugment  # pylint: disable=import-outside-toplevel
  used = set(autoaugment.policy_op_names(autoaugment.CIFAR10_POLICY))
  used |= set(randaugment.RANDAUGMENT_OPS)
  assert used <= {name for name, _ in PIL_CASES} <= set(augment_levels.PIL_RGBA_OPS)


# --- The plain ops: one image, float input, grayscale, neutral arguments -------------

PLAIN_OPS = {
    "auto_contrast": (augment_ops.auto_contrast, None),
    "equalize": (augment_ops.equalize, None),
    "invert": (augment_ops.invert, None),
    "posterize": (augment_ops.posterize, 2),
    "solarize": (augment_ops.solarize, 97),
    "color": (augment_ops.color, 1.54),
    "contrast": (augment_ops.contrast, 0.46),
    "brightness": (augment_ops.brightness, 1.72),
    "sharpness": (augment_ops.sharpness, 0.28),
    "rotate": (augment_ops.rotate, -17.0),
}


def _call(name: str, images):
  fn, argument = PLAIN_OPS[name]
  return fn(images) if argument is None else fn(images, argument)


@pytest.mark.parametrize("name", sorted(PLAIN_OPS))
def test_single_image_and_float_input_match_batch(name, images):
  batch = _call(name, tf.constant(images[:4])).numpy()
  single = _call(name, tf.constant(images[2])).numpy()
  as_float = _call(name, tf.constant(images[:4], tf.float32))
  np.testing.assert_array_equal(single, batch[2])
  assert as_float.dtype == tf.float32 and as_float.shape == batch.shape
  np.testing.assert_array_equal(as_float.numpy(), batch.astype(np.float32))


@pytest.mark.parametrize("name", sorted(PLAIN_OPS))
def test_grayscale_matches_pillow_l_mode(name, images):
  gray = images[:8, :, :, 1:2]  # one real channel as an L image
  ours = _call(name, tf.constant(gray)).numpy()
  theirs = np.stack([ref.pil_op_rgb(image, name, PLAIN_OPS[name][1]) for image in gray])
  assert ours.shape == gray.shape
  np.testing.assert_array_equal(ours, theirs)


def test_color_is_identity_on_grayscale(images):
  gray = tf.constant(images[:4, :, :, :1])
  np.testing.assert_array_equal(augment_ops.color(gray, 0.1).numpy(), gray.numpy())


NEUTRAL_LEVEL_ZERO = ["Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY", "Solarize",
                      "Cutout", "Identity"]


@pytest.mark.parametrize("name", NEUTRAL_LEVEL_ZERO)
def test_level_zero_leaves_image_unchanged(name, images):
  colour, alpha = _opaque_state(images)
  out_colour, out_alpha = augment_levels.PIL_RGBA_OPS[name]((colour, alpha),
                                                            _case_draws(0, len(images)))
  np.testing.assert_array_equal(out_colour.numpy(), images)
  np.testing.assert_array_equal(out_alpha.numpy(), alpha.numpy())


def test_neutral_arguments_leave_image_unchanged(images):
  batch = tf.constant(images)
  for result in (augment_ops.color(batch, 1.0), augment_ops.contrast(batch, 1.0),
                 augment_ops.brightness(batch, 1.0), augment_ops.sharpness(batch, 1.0),
                 augment_ops.posterize(batch, 8), augment_ops.solarize(batch, 256),
                 augment_ops.rotate(batch, 0.0), augment_ops.shear_x(batch, 0.0),
                 augment_ops.translate_y(batch, 0.0),
                 augment_ops.cutout(batch, tf.zeros([len(images), 2], tf.int32), 0)):
    np.testing.assert_array_equal(result.numpy(), images)


def test_solarize_add_matches_numpy(images):
  ours = augment_ops.solarize_add(tf.constant(images), 77, threshold=128).numpy()
  pixels = images.astype(np.int32)
  expected = np.where(pixels < 128, np.minimum(pixels + 77, 255), pixels)
  np.testing.assert_array_equal(ours, expected)


def test_geometric_fill_value_and_per_image_arguments(images):
  shifts = tf.constant([3.0, -5.0])
  ours = augment_ops.translate_x(tf.constant(images[:2]), shifts, fill_value=128).numpy()
  np.testing.assert_array_equal(ours[0, :, :-3], images[0, :, 3:])
  np.testing.assert_array_equal(ours[0, :, -3:], np.full_like(ours[0, :, -3:], 128))
  np.testing.assert_array_equal(ours[1, :, 5:], images[1, :, :-5])
  np.testing.assert_array_equal(ours[1, :, :5], np.full_like(ours[1, :, :5], 128))


# --- ImageNet 'v0' level convention ----------------------------------------------------

def _v0(name: str, level: int, images: np.ndarray, negate: bool = False) -> np.ndarray:
  draws = augment_levels.OpDraws(tf.fill([len(images)], level),
                                 tf.fill([len(images)], negate),
                                 tf.zeros([len(images), 2], tf.int32))
  (result,) = augment_levels.IMAGENET_V0_OPS[name]((tf.constant(images),), draws)
  return result.numpy()


def test_v0_levels_follow_tf_autoaugment(images):
  from PIL import Image, ImageOps  # pylint: disable=import-outside-toplevel
  sample = images[:6]
  pil = lambda fn: np.stack([np.asarray(fn(Image.fromarray(image))) for image in sample])
  # Solarize: threshold = int(level / 10 * 256) (level 3 -> 76, not 256 - 76).
  np.testing.assert_array_equal(_v0("Solarize", 3, sample),
                                pil(lambda img: ImageOps.solarize(img, 76)))
  # Posterize level 2 -> 0 bits, which the original's clamped shift turns into 1 bit.
  np.testing.assert_array_equal(_v0("Posterize", 2, sample),
                                pil(lambda img: ImageOps.posterize(img, 1)))
  np.testing.assert_array_equal(_v0("Posterize", 6, sample),
                                pil(lambda img: ImageOps.posterize(img, 2)))
  # Rotate: level / 10 * 30 degrees with grey (128) fill.
  np.testing.assert_array_equal(
      _v0("Rotate", 7, sample),
      pil(lambda img: img.rotate(21.0, fillcolor=(128, 128, 128))))
  # Translate: level / 10 * 250 pixels: level 1 moves 25 px, the rest is grey.
  shifted = _v0("TranslateY", 1, sample, negate=True)
  np.testing.assert_array_equal(shifted[:, 25:], sample[:, :7])
  assert (shifted[:, :25] == 128).all()
