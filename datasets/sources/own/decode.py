"""Image files -> one uint8 array [N, H, W, C] in memory, decoded by TensorFlow.

Files are decoded in a parallel tf.data map; a file TensorFlow cannot decode (not an image, empty,
truncated) stops the load with one line naming it, or is skipped with --skip_bad_images. The
decoded images then get one shape: 3 channels when any image is colour, else 1 (an alpha channel
is dropped), and --image_size N resizes every image to N x N; without it all images must already
share one size. Before the load, a few files tell whether the decoded set fits in the memory this
process may still take (`memory_estimate`); a set that does not fit is decoded to disk instead
(`disk_cache`), or, held in memory by request, stops with one line naming an --image_size that fits.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import math

import numpy as np

from core.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SKIP_FLAG = "--skip_bad_images"
SIZE_FLAG = "--image_size"
STORE_FLAG = "--image_cache"
CACHE_DIR_FLAG = "--image_cache_dir"
STORES = ("auto", "memory", "disk")
# A decoded image is held about three times while a set loads and trains: decoded one by one,
# stacked into one array, and in tf.data's cache.
COPIES = 3
# How many files are decoded up front to estimate the size of the whole set.
SIZE_SAMPLE = 8


@dataclasses.dataclass(frozen=True)
class Decoded:
  images: np.ndarray   # uint8 [M, H, W, C]
  kept: np.ndarray     # int64 [M]: the index in the input list of every decoded file


def is_image_file(name: str) -> bool:
  """An image by its extension, in any case (photo.JPG); hidden files (.DS_Store, ._x.png) never."""
  return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def decode_files(paths: list[str], *, image_size: int, skip_bad: bool, where: str) -> Decoded:
  """Decodes `paths` in order into memory; `where` (e.g. '--dataset=folder') starts every error.
  Whether the set fits is the caller's question (`memory_estimate`)."""
  if not paths:
    raise UserError(f"{where}: no image files to read")
  decoded = _decode_all(paths)
  bad = [i for i in range(len(paths)) if i not in decoded]
  check_bad(where, paths, bad, skip_bad)
  kept = np.array(sorted(decoded), dtype=np.int64)
  images = common_shape([decoded[int(i)] for i in kept], [paths[int(i)] for i in kept],
                        image_size=image_size, where=where)
  return Decoded(images=images, kept=kept)


def check_bad(where: str, paths: list[str], bad: list[int], skip_bad: bool) -> None:
  """Stops on files that did not decode, unless they may be skipped (then one warning)."""
  if bad and not skip_bad:
    raise _undecodable(where, paths, bad, f", or pass {SKIP_FLAG} to skip such files")
  if bad:
    logging.getLogger("absl").warning("%s: skipped %d unreadable image file(s) (%s), e.g. %s",
                                      where, len(bad), SKIP_FLAG, paths[bad[0]])
  if len(bad) == len(paths):
    raise UserError(f"{where}: none of the {len(paths)} image files could be decoded")


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
  count: int
  height: int
  width: int
  channels: int
  need: int        # bytes the decoded set takes while it loads and trains
  available: int   # bytes this process may still take

  @property
  def fits(self) -> bool:
    return self.need <= self.available

  def error(self, where: str) -> UserError:
    side = math.isqrt(self.available // (COPIES * self.count * self.channels))
    fix = (f"pass {SIZE_FLAG}={side} or smaller" if side >= 8 else "use fewer images")
    return UserError(f"{where}: {self.count} images of {self.width}x{self.height}x{self.channels} need "
                     f"about {human_size(self.need)} of memory once decoded, more than the {human_size(self.available)} "
                     f"free; {fix}, or pass {STORE_FLAG}=disk to stream them from disk")


def memory_estimate(paths: list[str], *, image_size: int) -> MemoryEstimate | None:
  """The memory `paths` take decoded at the size of the first few files (or `image_size`) against
  what this process may still take; None where that is unknown."""
  available = available_memory_bytes()
  sample = list(_decode_all(paths[:SIZE_SAMPLE]).values())
  if available is None or not sample:
    return None
  channels = 3 if any(image.shape[-1] >= 3 for image in sample) else 1
  height, width = ((image_size, image_size) if image_size else
                   (max(i.shape[0] for i in sample), max(i.shape[1] for i in sample)))
  return MemoryEstimate(len(paths), height, width, channels,
                        decoded_bytes(len(paths), height, width, channels), available)


def decoded_bytes(count: int, height: int, width: int, channels: int) -> int:
  """The memory a decoded set of `count` uint8 images takes while it loads and trains."""
  return COPIES * count * height * width * channels


def available_memory_bytes() -> int | None:
  """Memory this process may still take: the system's MemAvailable, capped by a cgroup limit
  (containers); None where neither can be read."""
  found = []
  try:
    with open("/proc/meminfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          found.append(int(line.split()[1]) * 1024)
  except (OSError, ValueError, IndexError):
    pass
  for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                 ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                  "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
    try:
      with open(limit_file, encoding="utf-8") as f:
        limit = f.read().strip()
      with open(usage_file, encoding="utf-8") as f:
        usage = int(f.read().strip())
    except (OSError, ValueError):
      continue
    if limit.isdigit() and int(limit) < 1 << 60:   # 'max' or a huge number: no limit
      found.append(max(int(limit) - usage, 0))
  return min(found) if found else None


def human_size(size: int) -> str:
  if size >= 2**30:
    return f"{size / 2**30:.1f} GiB"
  return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"


def decode_each(paths: list[str], *, where: str) -> list[np.ndarray]:
  """Every file as it is (uint8 [H, W, 1..4]), in order; one that does not decode is one error."""
  decoded = _decode_all(paths)
  bad = [i for i in range(len(paths)) if i not in decoded]
  if bad:
    raise _undecodable(where, paths, bad, "")
  return [decoded[i] for i in range(len(paths))]


def _undecodable(where: str, paths: list[str], bad: list[int], hint: str) -> UserError:
  more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
  return UserError(f"{where}: cannot decode {paths[bad[0]]}{more}: not a PNG, JPEG, BMP or GIF "
                   f"image, or empty; fix or remove it{hint}")


def _decode_all(paths: list[str]) -> dict[int, np.ndarray]:
  """index -> decoded image [H, W, C] (C in 1..4) of every file TensorFlow can decode."""
  return {int(i): image for i, image in decoded_dataset(paths).as_numpy_iterator()}


def decoded_dataset(paths: list[str]):
  """tf.data of (index, image [H, W, C], C in 1..4) in order; a file that does not decode drops
  out, so its missing index names it."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (slow; only image sources need it)

  def decode(index, path):
    contents = tf.io.read_file(path)
    # JPEG with the accurate integer IDCT (libjpeg's default, as other decoders read it); TF's
    # default fast IDCT is off by a few levels. PNG, BMP, GIF (first frame): decode_image.
    image = tf.cond(tf.io.is_jpeg(contents),
                    lambda: tf.io.decode_jpeg(contents, channels=0, dct_method="INTEGER_ACCURATE"),
                    lambda: tf.io.decode_image(contents, channels=0, expand_animations=False))
    return index, image

  dataset = tf.data.Dataset.from_tensor_slices((np.arange(len(paths), dtype=np.int64), list(paths)))
  dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.ignore_errors()


def common_shape(images: list[np.ndarray], names: list[str], *, image_size: int,
                 where: str) -> np.ndarray:
  """Decoded images of any size and 1-4 channels -> one uint8 [N, H, W, C] array (C = 1 or 3)."""
  target = target_shape([image.shape for image in images], names, image_size=image_size, where=where)
  return to_common_shape(images, target)


def target_shape(shapes: list[tuple[int, ...]], names: list[str], *, image_size: int,
                 where: str) -> tuple[int, int, int]:
  """The one (H, W, C) of a set whose decoded images have `shapes`: C = 3 when any is colour, else
  1; H x W = --image_size, else the size every image must already share."""
  channels = 3 if any(shape[-1] >= 3 for shape in shapes) else 1
  if image_size:
    return int(image_size), int(image_size), channels
  first = tuple(shapes[0][:2])
  other = next((i for i, shape in enumerate(shapes) if tuple(shape[:2]) != first), None)
  if other is not None:
    raise UserError(f"{where}: images differ in size ({names[0]} is {_hw(first)}, "
                    f"{names[other]} is {_hw(shapes[other][:2])}); pass {SIZE_FLAG}=N to resize "
                    "every image to N x N")
  return int(first[0]), int(first[1]), channels


def to_common_shape(images: list[np.ndarray], target: tuple[int, int, int]) -> np.ndarray:
  """Decoded images -> uint8 [N, *target]: channels converted, other sizes resized."""
  images = [_channels(image, target[2]) for image in images]
  out = np.empty((len(images), *target), dtype=np.uint8)
  by_size = collections.defaultdict(list)
  for i, image in enumerate(images):
    by_size[image.shape[:2]].append(i)
  for size, rows in by_size.items():
    batch = np.stack([images[i] for i in rows])
    out[rows] = batch if size == tuple(target[:2]) else _resize(batch, target[:2])
  return out


def _channels(image: np.ndarray, channels: int) -> np.ndarray:
  """[H, W, 1..4] -> [H, W, channels]: alpha dropped, grey repeated into red, green and blue."""
  image = image[..., :1] if image.shape[-1] == 2 else image[..., :3]
  if image.shape[-1] == 1 and channels == 3:
    image = np.repeat(image, 3, axis=-1)
  return image


def _resize(batch: np.ndarray, target: tuple[int, int]) -> np.ndarray:
  """Bilinear, antialiased when shrinking; rounded back to uint8."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  resized = tf.image.resize(tf.convert_to_tensor(batch), target, method="bilinear", antialias=True)
  return np.clip(np.round(resized.numpy()), 0, 255).astype(np.uint8)


def _hw(size) -> str:
  return f"{int(size[1])}x{int(size[0])}"   # width x height, as image viewers print it
