"""Image augmentation ops in pure TensorFlow that reproduce Pillow's results.

The strong augmentation of IEG was written with Pillow. These ops compute the same
pixels with TensorFlow ops, so they run inside `tf.data` (no `py_function`, no GIL,
checkpointable iterators) on whole batches at once.

Conventions shared by every op:
  * `images` is uint8 `[N, H, W, C]` (a batch) or `[H, W, C]` (one image), C = 1 or 3.
    Float images are accepted too: they are read as values in [0, 255], clipped and
    truncated to uint8 (as `tf.cast` does in the original TF AutoAugment), and the
    result is returned in the input's float dtype.
  * Per-image arguments (factor, degrees, ...) are scalars or `[N]` tensors.
  * Arguments are physical quantities (degrees, pixels, blend factor, bits). How a
    policy "level" maps to them lives in `datasets/augment/levels.py`.
  * Geometric ops reproduce Pillow's `Image.transform` with nearest resampling (pixel
    centres, 16.16 fixed point) through `tf.raw_ops.ImageProjectiveTransformV3`;
    uncovered pixels get `fill_value`.
"""
import functools
import math
from typing import Callable, Optional, Sequence, Union

import tensorflow as tf

Numeric = Union[int, float, tf.Tensor]

# Pillow's integer luma weights (ITU-R 601-2, scaled by 2**16) for RGB -> L.
_LUMA_WEIGHTS = (19595, 38470, 7471)


def image_op(fn: Callable[..., tf.Tensor]) -> Callable[..., tf.Tensor]:
  """Lets a uint8 batch op also take one image ([H, W, C]) or float pixels."""

  @tf.autograph.experimental.do_not_convert  # plain graph code: faster to trace
  @functools.wraps(fn)
  def wrapper(images, *args, **kwargs) -> tf.Tensor:
    images = tf.convert_to_tensor(images)
    input_dtype = images.dtype
    single_image = images.shape.rank == 3
    batch = images[tf.newaxis] if single_image else images
    if input_dtype != tf.uint8:
      batch = tf.cast(tf.clip_by_value(batch, 0, 255), tf.uint8)
    result = fn(batch, *args, **kwargs)
    if input_dtype != tf.uint8:
      result = tf.cast(result, input_dtype)
    return result[0] if single_image else result

  return wrapper


def _per_image(value: Numeric, images: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
  """Broadcasts a scalar or [N] argument to [N, 1, 1, 1] for pixel arithmetic."""
  value = tf.cast(value, dtype)
  value = tf.broadcast_to(value, tf.shape(images)[:1])
  return tf.reshape(value, [-1, 1, 1, 1])


def _to_uint8(values: tf.Tensor) -> tf.Tensor:
  """Clips to [0, 255] and truncates, as Pillow's blend and point tables do."""
  return tf.cast(tf.clip_by_value(values, 0, 255), tf.uint8)


def _luma(images: tf.Tensor) -> tf.Tensor:
  """Pillow's RGB -> L conversion as float32 [N, H, W, 1]; L images pass through.

  L = (19595 R + 38470 G + 7471 B + 2**15) >> 16; the weighted sums stay below 2**24,
  so a float32 matrix product computes them exactly (and faster than integer ops).
  """
  pixels = tf.cast(images, tf.float32)
  if images.shape[-1] == 1:
    return pixels
  weights = tf.constant([[_LUMA_WEIGHTS[0]], [_LUMA_WEIGHTS[1]], [_LUMA_WEIGHTS[2]]],
                        tf.float32)
  sums = tf.linalg.matmul(tf.reshape(pixels, [-1, 3]), weights)
  luma = tf.floor((sums + 32768.0) * (1.0 / 65536.0))
  return tf.reshape(luma, tf.concat([tf.shape(images)[:-1], [1]], 0))


def _blend(degenerate: tf.Tensor, images: tf.Tensor, factor: Numeric) -> tf.Tensor:
  """`Image.blend(degenerate, image, factor)`: float32 interpolation, then truncation."""
  factor = _per_image(factor, images, tf.float32)
  degenerate = tf.cast(degenerate, tf.float32)
  blended = degenerate + factor * (tf.cast(images, tf.float32) - degenerate)
  return _to_uint8(blended)


def _table_index(images: tf.Tensor) -> tf.Tensor:
  """Index of every pixel value in a flat [N * C * 256] stack of per-channel tables,
  as int32 [N, H * W * C] (broadcasts laid out along fast axes: they are much cheaper)."""
  shape = tf.shape(images)
  pixels = tf.reshape(tf.cast(images, tf.int32), [shape[0], -1])
  channel_offset = tf.tile(tf.range(shape[3]) * 256, [shape[1] * shape[2]])
  image_offset = tf.range(shape[0]) * (shape[3] * 256)
  return pixels + channel_offset[tf.newaxis, :] + image_offset[:, tf.newaxis]


def _channel_histograms(table_index: tf.Tensor, num_channels: int) -> tf.Tensor:
  """256-bin histograms of every channel of every image: int32 [N, C, 256]."""
  bins = tf.shape(table_index)[0] * num_channels * 256
  counts = tf.math.bincount(tf.reshape(table_index, [-1]), minlength=bins, maxlength=bins)
  return tf.reshape(counts, [-1, num_channels, 256])


def _apply_tables(images: tf.Tensor, tables: tf.Tensor,
                  table_index: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Maps every pixel through its image's and channel's table (tables: [N, C, 256])."""
  if table_index is None:
    table_index = _table_index(images)
  flat_tables = tf.cast(tf.reshape(tables, [-1, 1]), tf.uint8)
  # gather_nd is about twice as fast as gather for single-element lookups.
  mapped = tf.gather_nd(flat_tables, table_index[..., tf.newaxis])
  return tf.reshape(mapped, tf.shape(images))


@image_op
def identity(images: tf.Tensor) -> tf.Tensor:
  """RandAugment's no-op."""
  return tf.identity(images)


@image_op
def invert(images: tf.Tensor) -> tf.Tensor:
  """255 - x."""
  return tf.constant(255, tf.uint8) - images


@image_op
def posterize(images: tf.Tensor, bits: Numeric) -> tf.Tensor:
  """Keeps the `bits` (0..8) most significant bits of every channel value."""
  bits = tf.clip_by_value(_per_image(bits, images, tf.int32), 0, 8)
  mask = tf.bitwise.bitwise_and(tf.bitwise.left_shift(255, 8 - bits), 255)
  return tf.bitwise.bitwise_and(images, tf.cast(mask, tf.uint8))


@image_op
def solarize(images: tf.Tensor, threshold: Numeric) -> tf.Tensor:
  """Inverts values >= threshold (threshold 256 leaves the image unchanged)."""
  threshold = _per_image(threshold, images, tf.int32)
  pixels = tf.cast(images, tf.int32)
  # Arithmetic selects: tf.where is several times slower than this on CPU.
  return tf.cast(pixels + tf.cast(pixels >= threshold, tf.int32) * (255 - 2 * pixels),
                 tf.uint8)


@image_op
def solarize_add(images: tf.Tensor, addition: Numeric, threshold: Numeric = 128) -> tf.Tensor:
  """Adds `addition` (clipped to [0, 255]) to values below the threshold."""
  addition = _per_image(addition, images, tf.int32)
  threshold = _per_image(threshold, images, tf.int32)
  pixels = tf.cast(images, tf.int32)
  return _to_uint8(pixels + tf.cast(pixels < threshold, tf.int32) * addition)


@image_op
def auto_contrast(images: tf.Tensor) -> tf.Tensor:
  """Stretches each channel to [0, 255] (Pillow `ImageOps.autocontrast`, cutoff 0)."""
  low = tf.cast(tf.reduce_min(images, axis=[1, 2]), tf.float64)[..., tf.newaxis]
  high = tf.cast(tf.reduce_max(images, axis=[1, 2]), tf.float64)[..., tf.newaxis]
  # Pillow's lookup table, in float64 so that Python's arithmetic (and truncation) is
  # reproduced bit for bit; flat channels (high == low) keep their values.
  scale = 255.0 / tf.maximum(high - low, 1.0)
  values = tf.range(256, dtype=tf.float64)
  stretched = tf.clip_by_value(tf.floor(values * scale + (-low * scale)), 0.0, 255.0)
  tables = tf.where(high > low, stretched, values)
  return _apply_tables(images, tf.cast(tables, tf.int32))


@image_op
def equalize(images: tf.Tensor) -> tf.Tensor:
  """Histogram equalisation per channel (Pillow `ImageOps.equalize`)."""
  table_index = _table_index(images)
  histograms = _channel_histograms(table_index, images.shape[-1])
  used_bins = tf.reduce_sum(tf.cast(histograms > 0, tf.int32), axis=-1)
  last_used = 255 - tf.argmax(tf.reverse(histograms, [-1]) > 0, axis=-1, output_type=tf.int32)
  last_count = tf.gather(histograms, last_used, batch_dims=2)
  step = (tf.reduce_sum(histograms, axis=-1) - last_count) // 255
  safe_step = tf.maximum(step, 1)[..., tf.newaxis]
  tables = (safe_step // 2 + tf.cumsum(histograms, axis=-1, exclusive=True)) // safe_step
  keep = ((used_bins <= 1) | (step == 0))[..., tf.newaxis]
  tables = tf.where(keep, tf.range(256), tf.clip_by_value(tables, 0, 255))
  return _apply_tables(images, tables, table_index)


@image_op
def color(images: tf.Tensor, factor: Numeric) -> tf.Tensor:
  """Blends with the grey version (factor 0: grey, 1: unchanged); identity for C=1."""
  if images.shape[-1] == 1:
    return tf.identity(images)
  # Broadcasting once, not inside the blend's three ops, is markedly cheaper.
  degenerate = tf.broadcast_to(_luma(images), tf.shape(images))
  return _blend(degenerate, images, factor)


@image_op
def contrast(images: tf.Tensor, factor: Numeric) -> tf.Tensor:
  """Blends with a flat image at the rounded mean luma."""
  luma = tf.cast(_luma(images), tf.float64)  # float64: an exact mean for any image size
  mean = tf.floor(tf.reduce_mean(luma, axis=[1, 2, 3], keepdims=True) + 0.5)
  return _blend(tf.broadcast_to(mean, tf.shape(images)), images, factor)


@image_op
def brightness(images: tf.Tensor, factor: Numeric) -> tf.Tensor:
  """Blends with black (factor 0: black, 1: unchanged)."""
  return _blend(tf.zeros_like(images), images, factor)


@image_op
def sharpness(images: tf.Tensor, factor: Numeric) -> tf.Tensor:
  """Blends with Pillow's SMOOTH-filtered image (3x3 kernel, border pixels kept)."""
  pixels = tf.cast(images, tf.float32)
  # SMOOTH is [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13: a 3x3 box sum plus 4x the centre.
  # The sums are exact integers and sum/13 never sits on a rounding tie, so this is
  # Pillow's rounded result exactly.
  row_sums = pixels[:, :, :-2] + pixels[:, :, 1:-1] + pixels[:, :, 2:]
  centre = pixels[:, 1:-1, 1:-1]
  sums = row_sums[:, :-2] + row_sums[:, 1:-1] + row_sums[:, 2:] + 4.0 * centre
  smoothed = tf.floor((2.0 * sums + 13.0) / 26.0)
  # Pillow keeps the outermost rows and columns, where the blend is then the identity.
  degenerate = tf.pad(smoothed, [[0, 0], [1, 1], [1, 1], [0, 0]]) + pixels * _border(images)
  return _blend(degenerate, images, factor)


def _border(images: tf.Tensor) -> tf.Tensor:
  """float32 [1, H, W, 1]: 1 on the outermost rows and columns, 0 inside."""
  shape = tf.shape(images)
  edge_rows = tf.pad(tf.zeros([shape[1] - 2]), [[1, 1]], constant_values=1.0)
  edge_cols = tf.pad(tf.zeros([shape[2] - 2]), [[1, 1]], constant_values=1.0)
  border = tf.maximum(edge_rows[:, tf.newaxis], edge_cols[tf.newaxis, :])
  return border[tf.newaxis, :, :, tf.newaxis]


def _tf_transforms(coefficients: tf.Tensor) -> tf.Tensor:
  """Pillow affine coefficients [N, 6] -> ImageProjectiveTransformV3 transforms [N, 8].

  Pillow samples output pixel (x, y) at its centre, source x = a(x+.5) + b(y+.5) + c
  (y likewise), and for images under 32768 px does it in 16.16 fixed point: every
  coefficient is rounded to a multiple of 2**-16 and the source is floored. TensorFlow
  maps integer (x, y) and rounds to nearest; with the same rounded coefficients and the
  constant term lowered by half a pixel (less half a fixed-point unit, so no value ever
  sits on a rounding tie), it selects exactly Pillow's source pixels.
  """
  # Columns (a, b, c, d, e, f) -> (a, b, c + a/2 + b/2, d, e, f + d/2 + e/2).
  centred = tf.linalg.matmul(coefficients, tf.constant(
      [[1, 0, .5, 0, 0, 0], [0, 1, .5, 0, 0, 0], [0, 0, 1, 0, 0, 0],
       [0, 0, 0, 1, 0, .5], [0, 0, 0, 0, 1, .5], [0, 0, 0, 0, 0, 1]], tf.float64))
  fixed_point = tf.floor(centred * 65536.0 + 0.5) / 65536.0  # Pillow's FIX(v)
  to_rounding = -0.5 + 2.0**-17
  transforms = fixed_point + tf.constant([0, 0, to_rounding, 0, 0, to_rounding], tf.float64)
  return tf.cast(tf.pad(transforms, [[0, 0], [0, 2]]), tf.float32)


@image_op
def pil_affine(images: tf.Tensor, coefficients: tf.Tensor, fill_value: Numeric = 0) -> tf.Tensor:
  """Pillow's `transform(size, AFFINE, (a, b, c, d, e, f), NEAREST)`, with per-image
  coefficients [N, 6] (or one [6] row for all); uncovered pixels get `fill_value`."""
  coefficients = tf.cast(coefficients, tf.float64)
  coefficients = tf.broadcast_to(tf.reshape(coefficients, [-1, 6]),
                                 tf.stack([tf.shape(images)[0], 6]))
  return tf.raw_ops.ImageProjectiveTransformV3(
      images=images, transforms=_tf_transforms(coefficients),
      output_shape=tf.shape(images)[1:3], fill_value=tf.cast(fill_value, tf.float32),
      interpolation="NEAREST", fill_mode="CONSTANT")


def _affine_rows(amount: Numeric, column: int) -> tf.Tensor:
  """Identity coefficients (1, 0, 0, 0, 1, 0) with `amount` [N] in one column."""
  amount = tf.reshape(tf.cast(amount, tf.float64), [-1, 1])
  return tf.constant([1, 0, 0, 0, 1, 0], tf.float64) + amount * tf.one_hot(
      column, 6, dtype=tf.float64)


def rotation_coefficients(degrees: Numeric, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
  """Pillow's `Image.rotate(degrees)` (counter-clockwise about the centre) as [N, 6]."""
  degrees = tf.math.floormod(tf.reshape(tf.cast(degrees, tf.float64), [-1]), 360.0)
  radians = -degrees * (math.pi / 180.0)
  cos, sin = tf.cos(radians), tf.sin(radians)
  centre_x = tf.cast(width, tf.float64) / 2.0
  centre_y = tf.cast(height, tf.float64) / 2.0
  c = -cos * centre_x - sin * centre_y + centre_x
  f = sin * centre_x - cos * centre_y + centre_y
  return tf.stack([cos, sin, c, -sin, cos, f], axis=1)


def shear_x_coefficients(shear: Numeric) -> tf.Tensor:
  """(1, shear, 0, 0, 1, 0): rows slide horizontally."""
  return _affine_rows(shear, 1)


def shear_y_coefficients(shear: Numeric) -> tf.Tensor:
  """(1, 0, 0, shear, 1, 0): columns slide vertically."""
  return _affine_rows(shear, 3)


def translate_x_coefficients(pixels: Numeric) -> tf.Tensor:
  """(1, 0, pixels, 0, 1, 0): positive `pixels` moves content left."""
  return _affine_rows(pixels, 2)


def translate_y_coefficients(pixels: Numeric) -> tf.Tensor:
  """(1, 0, 0, 0, 1, pixels): positive `pixels` moves content up."""
  return _affine_rows(pixels, 5)


def rotate(images: tf.Tensor, degrees: Numeric, fill_value: Numeric = 0) -> tf.Tensor:
  """Rotates counter-clockwise about the image centre (Pillow `Image.rotate`)."""
  shape = tf.shape(images)
  return pil_affine(images, rotation_coefficients(degrees, shape[-3], shape[-2]), fill_value)


def shear_x(images: tf.Tensor, shear: Numeric, fill_value: Numeric = 0) -> tf.Tensor:
  return pil_affine(images, shear_x_coefficients(shear), fill_value)


def shear_y(images: tf.Tensor, shear: Numeric, fill_value: Numeric = 0) -> tf.Tensor:
  return pil_affine(images, shear_y_coefficients(shear), fill_value)


def translate_x(images: tf.Tensor, pixels: Numeric, fill_value: Numeric = 0) -> tf.Tensor:
  return pil_affine(images, translate_x_coefficients(pixels), fill_value)


def translate_y(images: tf.Tensor, pixels: Numeric, fill_value: Numeric = 0) -> tf.Tensor:
  return pil_affine(images, translate_y_coefficients(pixels), fill_value)


def square_mask(shape: tf.Tensor, centre: tf.Tensor, size: Numeric) -> tf.Tensor:
  """Bool [N, H, W]: rows/cols in [centre - size//2, centre + size//2), clipped.

  `shape` is the [N, H, W, ...] shape, `centre` int [N, 2] (or one [2] for all) as
  (row, col). This is the original cutout's square; an odd size loses one row/column,
  as there.
  """
  centre = tf.broadcast_to(tf.reshape(tf.cast(centre, tf.int32), [-1, 2]),
                           tf.stack([shape[0], 2]))
  half = tf.reshape(tf.broadcast_to(tf.cast(size, tf.int32), shape[:1]) // 2, [-1, 1])
  rows = tf.range(shape[1])[tf.newaxis, :]
  cols = tf.range(shape[2])[tf.newaxis, :]
  in_rows = (rows >= centre[:, :1] - half) & (rows < centre[:, :1] + half)
  in_cols = (cols >= centre[:, 1:] - half) & (cols < centre[:, 1:] + half)
  return in_rows[:, :, tf.newaxis] & in_cols[:, tf.newaxis, :]


@image_op
def cutout(images: tf.Tensor, centre: tf.Tensor, size: Numeric,
           fill_value: Union[Numeric, Sequence[int]] = 0) -> tf.Tensor:
  """Paints a `size` x `size` square around `centre` (int [N, 2], row/col) with
  `fill_value` (a scalar or one value per channel); size 0 leaves the image as is."""
  hole = tf.cast(square_mask(tf.shape(images), centre, size), tf.uint8)[..., tf.newaxis]
  fill = tf.cast(tf.broadcast_to(tf.cast(fill_value, tf.int32), [images.shape[-1]]), tf.uint8)
  return images * (1 - hole) + fill * hole
