"""Independent Pillow/numpy reference of IEG's strong augmentation, one image at a time.

It follows the original pipeline step by step: the uint8 image becomes an RGBA Pillow
image, every policy op runs on it as the original does (histogram ops drop to RGB and
come back opaque; geometric ops leave transparent black; the policy Cutout paints
transparent (125, 122, 113)), transparent pixels become 0.0 in [-1, 1], then zero pad +
random crop, horizontal flip and a zeroed square. The tests compare the TensorFlow ops
with it, and scripts/benchmark_augment.py times it as the speed baseline.

Randomness comes in as explicit arguments (the step list, crop offset, flip, centres),
so a test can feed the exact draws the TensorFlow plan made. `random_*` helpers draw
them the way the original does for the benchmark.
"""
import random
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

LevelFunction = Callable[[Image.Image, int, bool, Tuple[int, int]], Image.Image]
PIL_LEVEL_OPS: Dict[str, LevelFunction] = {}


def _level_op(name: str):
  def register(fn: LevelFunction) -> LevelFunction:
    PIL_LEVEL_OPS[name] = fn
    return fn
  return register


def _scaled_int(level: int, maximum: float) -> int:
  return int(level * maximum / 10)


def _scaled_float(level: int, maximum: float) -> float:
  return float(level) * maximum / 10


def _opaque(fn: Callable[[Image.Image], Image.Image]) -> Callable[[Image.Image], Image.Image]:
  """Runs an RGB-only ImageOps function; the result comes back fully opaque."""
  return lambda img: fn(img.convert("RGB")).convert("RGBA")


@_level_op("Identity")
def _identity(img, level, negate, centre):
  return img


@_level_op("AutoContrast")
def _auto_contrast(img, level, negate, centre):
  return _opaque(ImageOps.autocontrast)(img)


@_level_op("Equalize")
def _equalize(img, level, negate, centre):
  return _opaque(ImageOps.equalize)(img)


@_level_op("Invert")
def _invert(img, level, negate, centre):
  return _opaque(ImageOps.invert)(img)


@_level_op("Posterize")
def _posterize(img, level, negate, centre):
  bits = 4 - _scaled_int(level, 4)
  return _opaque(lambda rgb: ImageOps.posterize(rgb, bits))(img)


@_level_op("Solarize")
def _solarize(img, level, negate, centre):
  threshold = 256 - _scaled_int(level, 256)
  return _opaque(lambda rgb: ImageOps.solarize(rgb, threshold))(img)


def _enhancer(enhance_class) -> LevelFunction:
  def apply(img, level, negate, centre):
    return enhance_class(img).enhance(_scaled_float(level, 1.8) + 0.1)
  return apply


for _name, _class in (("Color", ImageEnhance.Color), ("Contrast", ImageEnhance.Contrast),
                      ("Brightness", ImageEnhance.Brightness),
                      ("Sharpness", ImageEnhance.Sharpness)):
  PIL_LEVEL_OPS[_name] = _enhancer(_class)


def _signed(value, negate: bool):
  return -value if negate else value


@_level_op("Rotate")
def _rotate(img, level, negate, centre):
  return img.rotate(_signed(_scaled_int(level, 30), negate))


def _affine(img: Image.Image, coefficients) -> Image.Image:
  return img.transform(img.size, Image.AFFINE, coefficients)


@_level_op("ShearX")
def _shear_x(img, level, negate, centre):
  return _affine(img, (1, _signed(_scaled_float(level, 0.3), negate), 0, 0, 1, 0))


@_level_op("ShearY")
def _shear_y(img, level, negate, centre):
  return _affine(img, (1, 0, 0, _signed(_scaled_float(level, 0.3), negate), 1, 0))


@_level_op("TranslateX")
def _translate_x(img, level, negate, centre):
  return _affine(img, (1, 0, _signed(_scaled_int(level, 10), negate), 0, 1, 0))


@_level_op("TranslateY")
def _translate_y(img, level, negate, centre):
  return _affine(img, (1, 0, 0, 0, 1, _signed(_scaled_int(level, 10), negate)))


@_level_op("Cutout")
def _policy_cutout(img, level, negate, centre):
  size = _scaled_int(level, 20)
  if size <= 0:
    return img
  pixels = np.array(img)
  top, left = max(0, centre[0] - size // 2), max(0, centre[1] - size // 2)
  # The original indexes Pillow's pixel map as [row_draw, col_draw] = [x, y]; both draws
  # are uniform over a square image, so painting rows/cols here has the same law.
  pixels[top:centre[0] + size // 2, left:centre[1] + size // 2] = (125, 122, 113, 0)
  return Image.fromarray(pixels, "RGBA")


class Step(NamedTuple):
  """One policy op for one image, with the random draws already made."""
  name: str
  level: int
  fire: bool
  negate: bool = False
  centre: Tuple[int, int] = (0, 0)


def apply_steps_rgba(image: np.ndarray, steps: Sequence[Step]) -> np.ndarray:
  """Runs the fired steps on a uint8 RGB image; returns the uint8 RGBA result."""
  img = Image.fromarray(image).convert("RGBA")
  for step in steps:
    if step.fire:
      img = PIL_LEVEL_OPS[step.name](img, step.level, step.negate, step.centre)
  return np.asarray(img)


def rgba_to_signed_float(rgba: np.ndarray) -> np.ndarray:
  """x / 127.5 - 1 on the colour channels; transparent pixels become 0.0 (mid-grey)."""
  result = rgba[..., :3].astype(np.float64) / 255.0 * 2.0 - 1.0
  result[rgba[..., 3] == 0] = 0.0
  return result


def rgba_to_signed_float_getdata(img: Image.Image) -> np.ndarray:
  """The original's slower unwrap through `getdata()`, for a faithful benchmark."""
  width, height = img.size
  rgba = np.array(img.getdata()).reshape((height, width, 4))
  return rgba_to_signed_float(rgba)


def pad_crop_flip_cutout(image: np.ndarray, crop_offset: Tuple[int, int], flip: bool,
                         cutout_centre: Tuple[int, int], pad: int = 4,
                         cutout_size: int = 16) -> np.ndarray:
  """Zero pad + crop at `crop_offset` (top, left), optional left-right flip, and a
  zeroed [c - size//2, c + size//2) square, all in [-1, 1] space."""
  height, width = image.shape[:2]
  padded = np.zeros((height + 2 * pad, width + 2 * pad, image.shape[2]), image.dtype)
  padded[pad:pad + height, pad:pad + width] = image
  top, left = crop_offset
  result = padded[top:top + height, left:left + width]
  if flip:
    result = result[:, ::-1]
  result = result.copy()
  if cutout_size > 0:
    half = cutout_size // 2
    row, col = cutout_centre
    result[max(0, row - half):row + half, max(0, col - half):col + half] = 0.0
  return result


def strong_view(image: np.ndarray, steps: Sequence[Step], crop_offset: Tuple[int, int],
                flip: bool, cutout_centre: Tuple[int, int], pad: int = 4,
                cutout_size: int = 16) -> np.ndarray:
  """The full per-image strong view in [-1, 1] (float64)."""
  signed = rgba_to_signed_float(apply_steps_rgba(image, steps))
  return pad_crop_flip_cutout(signed, crop_offset, flip, cutout_centre, pad, cutout_size)


# --- Random draws in the original's manner, for the benchmark ---------------------------

def _random_step(name: str, probability: float, level: int, py_random: random.Random,
                 np_random: np.random.RandomState, size: int) -> Step:
  fire = py_random.random() < probability
  if not fire:
    return Step(name, level, False)
  negate = py_random.random() > 0.5
  centre = (0, 0)
  if name == "Cutout":
    centre = (int(np_random.randint(0, size)), int(np_random.randint(0, size)))
  return Step(name, level, fire, negate, centre)


def random_strong_view(image: np.ndarray, subpolicy: Sequence[Tuple[str, float, int]],
                       py_random: random.Random, np_random: np.random.RandomState,
                       faithful_unwrap: bool = False) -> np.ndarray:
  """One image through `subpolicy`, then pad-4 crop, flip and Cutout16, as the original."""
  size = image.shape[0]
  steps = [_random_step(name, prob, level, py_random, np_random, size)
           for name, prob, level in subpolicy]
  if faithful_unwrap:
    img = Image.fromarray(image).convert("RGBA")
    for step in steps:
      if step.fire:
        img = PIL_LEVEL_OPS[step.name](img, step.level, step.negate, step.centre)
    signed = rgba_to_signed_float_getdata(img)
  else:
    signed = rgba_to_signed_float(apply_steps_rgba(image, steps))
  crop = (int(np_random.randint(0, 8)), int(np_random.randint(0, 8)))
  flip = bool(np_random.rand() > 0.5)
  centre = (int(np_random.randint(0, size)), int(np_random.randint(0, size)))
  return pad_crop_flip_cutout(signed, crop, flip, centre).astype(np.float32)


def random_autoaug_batch(images: np.ndarray, policy: Sequence[Sequence[Tuple[str, float, int]]],
                         py_random: random.Random, np_random: np.random.RandomState,
                         faithful_unwrap: bool = False) -> np.ndarray:
  """A new random sub-policy for every image (the original's shipped behaviour)."""
  return np.stack([
      random_strong_view(image, policy[np_random.randint(len(policy))], py_random, np_random,
                         faithful_unwrap) for image in images])


def random_randaug_batch(images: np.ndarray, op_names: Sequence[str], py_random: random.Random,
                         np_random: np.random.RandomState,
                         faithful_unwrap: bool = False) -> np.ndarray:
  """Two ops (with replacement), levels 1..9, p = 0.5, shared by the whole batch."""
  subpolicy: List[Tuple[str, float, int]] = [
      (str(name), 0.5, int(level))
      for name, level in zip(np_random.choice(op_names, 2), np_random.randint(1, 10, 2))]
  return np.stack([random_strong_view(image, subpolicy, py_random, np_random, faithful_unwrap)
                   for image in images])


def pil_op_rgb(image: np.ndarray, name: str, argument: Optional[float] = None) -> np.ndarray:
  """A physical op on a plain RGB or L image (no alpha), for the op-level tests."""
  img = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  enhancers = {"color": ImageEnhance.Color, "contrast": ImageEnhance.Contrast,
               "brightness": ImageEnhance.Brightness, "sharpness": ImageEnhance.Sharpness}
  if name in enhancers:
    result = enhancers[name](img).enhance(argument)
  elif name == "auto_contrast":
    result = ImageOps.autocontrast(img)
  elif name == "equalize":
    result = ImageOps.equalize(img)
  elif name == "invert":
    result = ImageOps.invert(img)
  elif name == "posterize":
    result = ImageOps.posterize(img, int(argument))
  elif name == "solarize":
    result = ImageOps.solarize(img, int(argument))
  elif name == "rotate":
    result = img.rotate(argument)
  else:
    raise KeyError(name)
  array = np.asarray(result)
  return array[..., np.newaxis] if array.ndim == 2 else array
