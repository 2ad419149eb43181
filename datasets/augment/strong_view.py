"""IEG's strong view in TensorFlow ops: policy, pad-and-crop, flip, cutout.

CIFAR-size batches (`strong_view`): the policy ('autoaug', 'randaug',
'randaug_per_image' or 'none') runs on the weakly augmented uint8 batch, the result is
mapped to [-1, 1] as x / 127.5 - 1, then every image is zero-padded by `pad`, cropped
at offsets 0..2*pad-1 (the original's `randint(0, 2 * pad)`, so 4 px one way and 3 the
other), flipped with probability 0.5 and gets a `cutout_size` square of zeros. Fills
(policy geometric ops and Cutout, padding, the final cutout) are 0.0 in [-1, 1], i.e.
mid-grey, as in the original; like there, a histogram op (AutoContrast, Equalize,
Invert, Posterize, Solarize) after a geometric op makes its fill opaque, so that fill
keeps the op's image of black instead.

The original reaches uint8 by truncating the weak float image, which lowers the values
1..63 by one; here the policy sees the weak uint8 pixels themselves.

ImageNet-size images (`imagenet_*_view`, one image at a time): Inception random
resized crop, flip, AutoAugment 'v0' and a 16x16 black cutout, as IEG's WebVision code.

All randomness is drawn with stateless ops from `seed`, so the same seed gives the same
views in any run, eager or inside tf.data, and a resumed run continues the stream.
"""
import dataclasses
from typing import Callable, Optional, Tuple

import tensorflow as tf

from core.registry import Registry
from datasets.augment import autoaugment, randaugment
from datasets.augment import levels as augment_levels
from datasets.augment import ops as augment_ops
from datasets.augment import policy as augment_policy

PlanDrawer = Callable[[tf.Tensor, tf.Tensor, Tuple[tf.Tensor, tf.Tensor]],
                      Optional[augment_policy.OpPlan]]
_POLICY_PLANS = Registry("aug_type")  # PlanDrawers by --aug_type
_aug_type = _POLICY_PLANS.register


@_aug_type("autoaug")
def _autoaug_plan(seed, batch_size, image_hw):
  return autoaugment.draw_plan(autoaugment.CIFAR10_POLICY, seed, batch_size, image_hw)


@_aug_type("randaug")
def _randaug_plan(seed, batch_size, image_hw):
  return randaugment.draw_plan(seed, batch_size, image_hw, per_image=False)


@_aug_type("randaug_per_image")
def _randaug_per_image_plan(seed, batch_size, image_hw):
  return randaugment.draw_plan(seed, batch_size, image_hw, per_image=True)


@_aug_type("none")
def _no_policy(seed, batch_size, image_hw):
  return None


AUG_TYPES: Tuple[str, ...] = tuple(_POLICY_PLANS)


check_aug_type = _POLICY_PLANS.check


@dataclasses.dataclass(frozen=True)
class StrongViewPlan:
  """Every random choice of one strong-view batch of B images."""
  policy: Optional[augment_policy.OpPlan]  # None for aug_type 'none'
  crop_offset: tf.Tensor    # int32 [B, 2]: (top, left) of the crop in the padded image
  flip: tf.Tensor           # bool [B]
  cutout_centre: tf.Tensor  # int32 [B, 2]: (row, col)


_CROP_TOP, _CROP_LEFT, _FLIP, _CUTOUT_ROW, _CUTOUT_COL = 300, 301, 302, 303, 304


@tf.autograph.experimental.do_not_convert
def draw_strong_view_plan(seed: tf.Tensor, batch_size: tf.Tensor,
                          image_hw: Tuple[tf.Tensor, tf.Tensor], aug_type: str = "autoaug",
                          *, flip: bool = True, pad: int = 4) -> StrongViewPlan:
  """Draws the policy ops and the crop/flip/cutout choices from a stateless seed."""
  check_aug_type(aug_type)
  seed = augment_policy.as_seed(seed)
  shape = [batch_size]
  crop_high = max(2 * pad, 1)
  return StrongViewPlan(
      policy=_POLICY_PLANS[aug_type](seed, batch_size, image_hw),
      crop_offset=tf.stack([augment_policy.randint(seed, _CROP_TOP, shape, 0, crop_high),
                            augment_policy.randint(seed, _CROP_LEFT, shape, 0, crop_high)],
                           axis=1),
      flip=(augment_policy.uniform(seed, _FLIP, shape) > 0.5) & flip,
      cutout_centre=tf.stack(
          [augment_policy.randint(seed, _CUTOUT_ROW, shape, 0, image_hw[0]),
           augment_policy.randint(seed, _CUTOUT_COL, shape, 0, image_hw[1])], axis=1))


def _to_signed(images: tf.Tensor) -> tf.Tensor:
  """[0, 255] -> [-1, 1] as the original's x / 255 * 2 - 1."""
  return tf.cast(images, tf.float32) / 127.5 - 1.0


def _crop_and_flip_sources(plan: StrongViewPlan, pad: int, height: tf.Tensor,
                           width: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
  """Source row [B, H] and column [B, W] of every output pixel after zero padding by
  `pad`, cropping at `crop_offset` and flipping; sources outside the image are padding."""
  rows = tf.range(height)[tf.newaxis, :] + (plan.crop_offset[:, :1] - pad)
  cols = tf.range(width)[tf.newaxis, :]
  cols = tf.where(plan.flip[:, tf.newaxis], width - 1 - cols, cols)
  return rows, cols + (plan.crop_offset[:, 1:] - pad)


def _check_batch(images: tf.Tensor) -> tf.Tensor:
  images = tf.convert_to_tensor(images)
  if images.dtype != tf.uint8 or images.shape.rank != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"strong_view needs uint8 [B, H, W, 1 or 3] images, got {images.dtype}"
                     f" {images.shape}")
  return images


@tf.autograph.experimental.do_not_convert
def apply_strong_view_plan(images: tf.Tensor, plan: StrongViewPlan, *, pad: int = 4,
                           cutout_size: int = 16) -> tf.Tensor:
  """The strong view of a uint8 batch for already drawn choices; float32 in [-1, 1].

  Crop, flip and every mid-grey pixel (policy fills, padding, cutout) come from one
  gather: each output pixel reads its source pixel, or an extra all-zero pixel. (Masks
  broadcast over channels and tf.where cost several times more on CPU.)
  """
  images = _check_batch(images)
  shape = tf.shape(images)
  batch, height, width = shape[0], shape[1], shape[2]
  rows, cols = _crop_and_flip_sources(plan, pad, height, width)
  keep = (((rows >= 0) & (rows < height))[:, :, tf.newaxis] &
          ((cols >= 0) & (cols < width))[:, tf.newaxis, :])
  if cutout_size > 0:
    keep &= ~augment_ops.square_mask(shape, plan.cutout_centre, cutout_size)
  row_starts = (tf.range(batch)[:, tf.newaxis] * height
                + tf.clip_by_value(rows, 0, height - 1)) * width
  sources = row_starts[:, :, tf.newaxis] + tf.clip_by_value(cols, 0, width - 1)[:, tf.newaxis]
  if plan.policy is not None:
    alpha = tf.fill(tf.concat([shape[:-1], [1]], 0), tf.constant(255, tf.uint8))
    images, alpha = augment_policy.run_plan((images, alpha), plan.policy,
                                            augment_levels.PIL_RGBA_OPS)
    keep &= tf.gather(tf.reshape(alpha, [-1]), sources) > 0
  zero_pixel = batch * height * width  # index of the appended all-zero pixel
  sources = zero_pixel + (sources - zero_pixel) * tf.cast(keep, tf.int32)
  channels = images.shape[-1]
  pixels = tf.concat([tf.reshape(_to_signed(images), [-1, channels]),
                      tf.zeros([1, channels])], axis=0)
  return tf.reshape(tf.gather(pixels, sources), tf.shape(images))


@tf.autograph.experimental.do_not_convert
def strong_view(images: tf.Tensor, seed: tf.Tensor, aug_type: str = "autoaug", *,
                flip: bool = True, cutout_size: int = 16, pad: int = 4) -> tf.Tensor:
  """IEG's strong view of a weakly augmented uint8 batch [B, H, W, C] (C = 1 or 3).

  `seed` is a stateless seed, int32/int64 [2] (the pipeline passes (run seed, step)).
  Returns float32 [B, H, W, C] in [-1, 1]. Traceable inside `tf.data` map functions.
  """
  check_aug_type(aug_type)
  images = _check_batch(images)
  shape = tf.shape(images)
  plan = draw_strong_view_plan(seed, shape[0], (shape[1], shape[2]), aug_type, flip=flip,
                               pad=pad)
  return apply_strong_view_plan(images, plan, pad=pad, cutout_size=cutout_size)


# --- ImageNet-size views (WebVision), one image at a time ------------------------------
_CENTRE_CROP_PADDING = 32
_IMAGENET_CUTOUT_SIZE = 16
# Weak and strong views draw independent crops and flips, as the original's two
# separate preprocessing calls do.
_WEAK_CROP, _WEAK_FLIP = 400, 401
_STRONG_CROP, _STRONG_FLIP, _STRONG_POLICY, _STRONG_CUTOUT = 410, 411, 412, 413


def _resize(image: tf.Tensor, size: int) -> tf.Tensor:
  """Bilinear resize to [size, size, 3] float32 (a static shape for the policy ops)."""
  return tf.reshape(tf.image.resize(image, [size, size], method="bilinear"), [size, size, 3])


def _centre_crop(image: tf.Tensor, size: int) -> tf.Tensor:
  """Central crop of size/(size+32) of the shorter side, resized to size x size."""
  shape = tf.shape(image)
  crop = tf.cast(size / (size + _CENTRE_CROP_PADDING) *
                 tf.cast(tf.minimum(shape[0], shape[1]), tf.float32), tf.int32)
  top = (shape[0] - crop + 1) // 2
  left = (shape[1] - crop + 1) // 2
  return _resize(image[top:top + crop, left:left + crop], size)


def _random_resized_crop(image: tf.Tensor, seed: tf.Tensor, size: int) -> tf.Tensor:
  """Inception crop: area 8%-100%, aspect 3/4-4/3, 10 attempts; if the sampler falls
  back to the whole image, a centre crop instead (as the original)."""
  shape = tf.shape(image)
  begin, box_size, _ = tf.image.stateless_sample_distorted_bounding_box(
      shape, bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed,
      min_object_covered=0.1, aspect_ratio_range=(3.0 / 4.0, 4.0 / 3.0),
      area_range=(0.08, 1.0), max_attempts=10, use_image_if_no_bounding_boxes=True)
  whole_image = tf.reduce_all(tf.equal(box_size[:2], shape[:2]))
  return tf.cond(whole_image, lambda: _centre_crop(image, size),
                 lambda: _resize(tf.slice(image, begin, box_size), size))


def _random_flip(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  return tf.image.stateless_random_flip_left_right(image, seed)


def _signed_from_float(image: tf.Tensor) -> tf.Tensor:
  return tf.clip_by_value(image, 0.0, 255.0) / 127.5 - 1.0


def _check_image(image: tf.Tensor) -> tf.Tensor:
  image = tf.convert_to_tensor(image)
  if image.shape.rank != 3:
    raise ValueError(f"ImageNet views take one [H, W, 3] image, got shape {image.shape}")
  return image


@tf.autograph.experimental.do_not_convert
def imagenet_weak_view(image_uint8: tf.Tensor, seed: tf.Tensor, size: int = 224) -> tf.Tensor:
  """Random resized crop + flip of one image; float32 [size, size, 3] in [-1, 1]."""
  image, seed = _check_image(image_uint8), augment_policy.as_seed(seed)
  view = _random_resized_crop(image, augment_policy.sub_seed(seed, _WEAK_CROP), size)
  view = _random_flip(view, augment_policy.sub_seed(seed, _WEAK_FLIP))
  return _signed_from_float(view)


@tf.autograph.experimental.do_not_convert
def imagenet_strong_view(image_uint8: tf.Tensor, seed: tf.Tensor, size: int = 224) -> tf.Tensor:
  """Crop + flip, AutoAugment 'v0', 16x16 black cutout; float32 in [-1, 1]."""
  image, seed = _check_image(image_uint8), augment_policy.as_seed(seed)
  view = _random_resized_crop(image, augment_policy.sub_seed(seed, _STRONG_CROP), size)
  view = _random_flip(view, augment_policy.sub_seed(seed, _STRONG_FLIP))
  # As the original: truncate to uint8, then the policy on the single image.
  batch = tf.cast(tf.clip_by_value(view, 0.0, 255.0), tf.uint8)[tf.newaxis]
  plan = autoaugment.draw_plan(autoaugment.IMAGENET_V0_POLICY,
                               augment_policy.sub_seed(seed, _STRONG_POLICY), 1, (size, size))
  (batch,) = augment_policy.run_plan((batch,), plan, augment_levels.IMAGENET_V0_OPS)
  cutout_seed = augment_policy.sub_seed(seed, _STRONG_CUTOUT)
  centre = augment_policy.randint(cutout_seed, 0, [1, 2], 0, size)
  batch = augment_ops.cutout(batch, centre, _IMAGENET_CUTOUT_SIZE, fill_value=0)
  return _signed_from_float(tf.cast(batch[0], tf.float32))


@tf.autograph.experimental.do_not_convert
def imagenet_eval_view(image_uint8: tf.Tensor, size: int = 224) -> tf.Tensor:
  """Centre crop (size/(size+32) of the shorter side) resized; float32 in [-1, 1]."""
  return _signed_from_float(_centre_crop(tf.cast(_check_image(image_uint8), tf.float32), size))
