"""From a policy's integer level (0..10) to an op call, in the two conventions IEG uses.

* `PIL_RGBA_OPS`: the CIFAR AutoAugment and RandAugment ops of IEG's Pillow code, on
  the state (colour, alpha): uint8 [N, H, W, C] pixels and a uint8 [N, H, W, 1] alpha
  (255 = image, 0 = fill). The original runs on RGBA images and turns transparent
  pixels into mid-grey at the end: geometric ops leave transparent black, the policy
  Cutout paints transparent (125, 122, 113), the histogram ops (AutoContrast, Equalize,
  Invert, Posterize, Solarize) go through RGB and so make every pixel opaque again, and
  the enhance ops keep the alpha.
* `IMAGENET_V0_OPS`: the TF AutoAugment ('v0') level mapping on the state (images,),
  plain uint8 images with geometric fills of 128 (grey), as IEG's WebVision strong view.

Every entry is `fn(state, draws) -> state`, where `draws` holds the per-image level
and the random sign/centre drawn by the policy.
"""
from typing import Callable, Dict, NamedTuple, Optional, Sequence, Tuple

import tensorflow as tf

from datasets.augment import ops

MAX_LEVEL = 10


class OpDraws(NamedTuple):
  """Per-image inputs of a level op (all with leading dimension N)."""
  level: tf.Tensor   # int32 [N], 0..MAX_LEVEL
  negate: tf.Tensor  # bool [N]: use the negative angle/shear/shift
  centre: tf.Tensor  # int32 [N, 2]: (row, col) of the policy Cutout square


State = Tuple[tf.Tensor, ...]
LevelOp = Callable[[State, OpDraws], State]
PIL_RGBA_OPS: Dict[str, LevelOp] = {}
IMAGENET_V0_OPS: Dict[str, LevelOp] = {}


def _add(registry: Dict[str, LevelOp], name: str, fn: LevelOp) -> None:
  # Plain graph code: skipping AutoGraph's source conversion makes tracing much faster.
  registry[name] = tf.autograph.experimental.do_not_convert(fn)


def _register(registry: Dict[str, LevelOp], name: str):
  def decorator(fn: LevelOp) -> LevelOp:
    _add(registry, name, fn)
    return fn
  return decorator


def _by_level(values: Sequence[float], level: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
  """Looks the argument up in a table indexed by level (exact Python arithmetic)."""
  table = tf.constant(values, dtype)
  return tf.gather(table, tf.clip_by_value(level, 0, MAX_LEVEL))


def _signed(value: tf.Tensor, negate: tf.Tensor) -> tf.Tensor:
  return tf.where(negate, -value, value)


def _levels(fn: Callable[[int], float]) -> list:
  return [fn(level) for level in range(MAX_LEVEL + 1)]


# --- Pillow convention (augmentation_transforms.py / randaugment.py) -------------------
# int_parameter(level, m) = int(level * m / 10); float_parameter = level * m / 10.
_PIL_ROTATE_DEGREES = _levels(lambda level: int(level * 30 / MAX_LEVEL))
_PIL_POSTERIZE_BITS = _levels(lambda level: 4 - int(level * 4 / MAX_LEVEL))
_PIL_SOLARIZE_THRESHOLD = _levels(lambda level: 256 - int(level * 256 / MAX_LEVEL))
_PIL_ENHANCE_FACTOR = _levels(lambda level: float(level) * 1.8 / MAX_LEVEL + 0.1)
_PIL_SHEAR = _levels(lambda level: float(level) * 0.3 / MAX_LEVEL)
_PIL_TRANSLATE_PIXELS = _levels(lambda level: int(level * 10 / MAX_LEVEL))
_PIL_CUTOUT_SIZE = _levels(lambda level: int(level * 20 / MAX_LEVEL))
# The policy Cutout's colour in the original; for one channel, its Pillow luma.
_PIL_CUTOUT_RGB = (125, 122, 113)
_PIL_CUTOUT_L = (125 * 19595 + 122 * 38470 + 113 * 7471 + 0x8000) >> 16


def _opaque(colour: tf.Tensor, alpha: tf.Tensor) -> State:
  """The RGB round trip of the histogram ops: every pixel becomes opaque."""
  return colour, tf.fill(tf.shape(alpha), tf.constant(255, tf.uint8))


def _pil_histogram_op(op: Callable[..., tf.Tensor],
                      argument_table: Optional[Sequence[int]] = None) -> LevelOp:
  def apply(state, draws):
    colour, alpha = state
    if argument_table is None:
      return _opaque(op(colour), alpha)
    return _opaque(op(colour, _by_level(argument_table, draws.level, tf.int32)), alpha)
  return apply


def _pil_enhance_op(op: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]) -> LevelOp:
  def apply(state, draws):
    colour, alpha = state
    return op(colour, _by_level(_PIL_ENHANCE_FACTOR, draws.level, tf.float32)), alpha
  return apply


# Pillow affine coefficients of each geometric op, from (signed amount, image shape).
_COEFFICIENTS = {
    "Rotate": lambda degrees, shape: ops.rotation_coefficients(degrees, shape[1], shape[2]),
    "ShearX": lambda shear, shape: ops.shear_x_coefficients(shear),
    "ShearY": lambda shear, shape: ops.shear_y_coefficients(shear),
    "TranslateX": lambda pixels, shape: ops.translate_x_coefficients(pixels),
    "TranslateY": lambda pixels, shape: ops.translate_y_coefficients(pixels),
}


def _pil_geometric_op(name: str, table: Sequence[float]) -> LevelOp:
  """Moves colour and alpha alike; uncovered pixels become transparent black."""
  def apply(state, draws):
    amount = _signed(_by_level(table, draws.level, tf.float64), draws.negate)
    coefficients = _COEFFICIENTS[name](amount, tf.shape(state[0]))
    return tuple(ops.pil_affine(image, coefficients, fill_value=0) for image in state)
  return apply


@_register(PIL_RGBA_OPS, "Identity")
def _pil_identity(state, draws):
  return state


for _name, _op, _table in (
    ("AutoContrast", ops.auto_contrast, None), ("Equalize", ops.equalize, None),
    ("Invert", ops.invert, None), ("Posterize", ops.posterize, _PIL_POSTERIZE_BITS),
    ("Solarize", ops.solarize, _PIL_SOLARIZE_THRESHOLD)):
  _add(PIL_RGBA_OPS, _name, _pil_histogram_op(_op, _table))

for _name, _op in (("Color", ops.color), ("Contrast", ops.contrast),
                   ("Brightness", ops.brightness), ("Sharpness", ops.sharpness)):
  _add(PIL_RGBA_OPS, _name, _pil_enhance_op(_op))

for _name, _table in (("Rotate", _PIL_ROTATE_DEGREES), ("ShearX", _PIL_SHEAR),
                     ("ShearY", _PIL_SHEAR), ("TranslateX", _PIL_TRANSLATE_PIXELS),
                     ("TranslateY", _PIL_TRANSLATE_PIXELS)):
  _add(PIL_RGBA_OPS, _name, _pil_geometric_op(_name, _table))


@_register(PIL_RGBA_OPS, "Cutout")
def _pil_cutout(state, draws):
  colour, alpha = state
  size = _by_level(_PIL_CUTOUT_SIZE, draws.level, tf.int32)
  paint = _PIL_CUTOUT_RGB if colour.shape[-1] == 3 else (_PIL_CUTOUT_L,)
  return (ops.cutout(colour, draws.centre, size, fill_value=paint),
          ops.cutout(alpha, draws.centre, size, fill_value=0))


# --- TF AutoAugment convention (policy 'v0', ImageNet size) -----------------------------
_V0_GREY = 128
_V0_ROTATE_DEGREES = _levels(lambda level: level / MAX_LEVEL * 30.0)
# The original shifts by 8 - bits with tf.bitwise, which clamps the shift to 7, so
# "0 bits" (level < 2.5) really keeps 1 bit.
_V0_POSTERIZE_BITS = _levels(lambda level: max(int(level / MAX_LEVEL * 4), 1))
_V0_SOLARIZE_THRESHOLD = _levels(lambda level: int(level / MAX_LEVEL * 256))
_V0_SOLARIZE_ADDITION = _levels(lambda level: int(level / MAX_LEVEL * 110))
_V0_ENHANCE_FACTOR = _levels(lambda level: level / MAX_LEVEL * 1.8 + 0.1)
_V0_SHEAR = _levels(lambda level: level / MAX_LEVEL * 0.3)
_V0_TRANSLATE_PIXELS = _levels(lambda level: level / MAX_LEVEL * 250.0)
_V0_CUTOUT_SIZE = _levels(lambda level: 2 * int(level / MAX_LEVEL * 100))


def _v0_op(op: Callable[..., tf.Tensor], argument_table: Optional[Sequence[float]] = None,
           dtype: tf.DType = tf.int32) -> LevelOp:
  def apply(state, draws):
    (images,) = state
    if argument_table is None:
      return (op(images),)
    return (op(images, _by_level(argument_table, draws.level, dtype)),)
  return apply


def _v0_geometric_op(op: Callable[..., tf.Tensor], table: Sequence[float]) -> LevelOp:
  def apply(state, draws):
    (images,) = state
    amount = _signed(_by_level(table, draws.level, tf.float64), draws.negate)
    return (op(images, amount, fill_value=_V0_GREY),)
  return apply


@_register(IMAGENET_V0_OPS, "Identity")
def _v0_identity(state, draws):
  return state


for _name, _op, _table, _dtype in (
    ("AutoContrast", ops.auto_contrast, None, tf.int32),
    ("Equalize", ops.equalize, None, tf.int32),
    ("Invert", ops.invert, None, tf.int32),
    ("Posterize", ops.posterize, _V0_POSTERIZE_BITS, tf.int32),
    ("Solarize", ops.solarize, _V0_SOLARIZE_THRESHOLD, tf.int32),
    ("SolarizeAdd", ops.solarize_add, _V0_SOLARIZE_ADDITION, tf.int32),
    ("Color", ops.color, _V0_ENHANCE_FACTOR, tf.float32),
    ("Contrast", ops.contrast, _V0_ENHANCE_FACTOR, tf.float32),
    ("Brightness", ops.brightness, _V0_ENHANCE_FACTOR, tf.float32),
    ("Sharpness", ops.sharpness, _V0_ENHANCE_FACTOR, tf.float32)):
  _add(IMAGENET_V0_OPS, _name, _v0_op(_op, _table, _dtype))

for _name, _op, _table in (("Rotate", ops.rotate, _V0_ROTATE_DEGREES),
                           ("ShearX", ops.shear_x, _V0_SHEAR),
                           ("ShearY", ops.shear_y, _V0_SHEAR),
                           ("TranslateX", ops.translate_x, _V0_TRANSLATE_PIXELS),
                           ("TranslateY", ops.translate_y, _V0_TRANSLATE_PIXELS)):
  _add(IMAGENET_V0_OPS, _name, _v0_geometric_op(_op, _table))


@_register(IMAGENET_V0_OPS, "Cutout")
def _v0_cutout(state, draws):
  (images,) = state
  size = _by_level(_V0_CUTOUT_SIZE, draws.level, tf.int32)
  return (ops.cutout(images, draws.centre, size, fill_value=_V0_GREY),)
