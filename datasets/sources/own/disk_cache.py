"""Image files decoded once into a file on disk (`core.disk_images`), for sets larger than memory.

Two passes over the files in tf.data. The first decodes every file and keeps only its shape, which
fixes the set's one shape exactly as in memory (`decode.target_shape`); the second decodes again
and writes each chunk, converted to that shape, in place. Only a chunk is ever in memory.

The file's name is a digest of the paths, their sizes and modification times, --image_size and
--skip_bad_images; an index beside it names the files kept and the shape. A later run on unchanged
files (another fold, a resumed run, a second method) reads both without decoding anything. The
image file is written under a temporary name and renamed when complete, after its index: an
interrupted decode never leaves a file that looks finished.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil

import numpy as np

from core.disk_images import DiskImages
from core.errors import UserError
from datasets.sources.own import decode

CHUNK = 512        # images converted and written at a time
SUFFIX = ".uint8"          # the images, raw row-major uint8
INDEX_SUFFIX = ".json"     # which files they are and their shape


def decode_to_disk(paths: list[str], *, image_size: int, skip_bad: bool, where: str,
                   cache_dir: str) -> decode.Decoded:
  """`decode.decode_files`, with the images in a file under `cache_dir` instead of memory."""
  base = os.path.join(cache_dir, cache_name(paths, image_size=image_size, skip_bad=skip_bad))
  index = read_index(base)
  if index is not None:
    kept, target = np.asarray(index["kept"], np.int64), tuple(index["shape"])
    logging.getLogger("absl").info("%s: reading the decoded images from %s", where, base + SUFFIX)
    decode.check_bad(where, paths, sorted(set(range(len(paths))) - set(kept.tolist())), skip_bad)
  else:
    shapes = {int(i): tuple(int(s) for s in shape) for i, shape in _shapes(paths)}
    bad = [i for i in range(len(paths)) if i not in shapes]
    decode.check_bad(where, paths, bad, skip_bad)
    kept = np.array(sorted(shapes), dtype=np.int64)
    target = decode.target_shape([shapes[int(i)] for i in kept], [paths[int(i)] for i in kept],
                                 image_size=image_size, where=where)
    write_images(_decoded_in_order(paths, kept, where), len(kept), target, base, where,
                 {"kept": kept.tolist()})
  return decode.Decoded(images=DiskImages(base + SUFFIX, target, len(kept)), kept=kept)


def cache_name(paths: list[str], *, image_size: int, skip_bad: bool) -> str:
  """A name that changes when any file (its path, size or modification time), --image_size or
  --skip_bad_images changes."""
  digest = hashlib.sha256(json.dumps([int(image_size), bool(skip_bad)]).encode())
  for path in paths:
    try:
      stat = os.stat(path)
      digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    except OSError:
      digest.update(f"{path}\0missing\n".encode())
  return f"images_{len(paths)}_{digest.hexdigest()[:20]}"


def read_index(base: str) -> dict | None:
  """The index of a complete earlier write of base + SUFFIX ('count', 'shape' and what the writer
  added), or None."""
  try:
    with open(base + INDEX_SUFFIX, encoding="utf-8") as f:
      index = json.load(f)
    index["shape"] = tuple(int(s) for s in index["shape"])
    complete = os.path.getsize(base + SUFFIX) == int(index["count"]) * int(np.prod(index["shape"]))
  except (OSError, ValueError, KeyError, TypeError):
    return None
  return index if complete and len(index["shape"]) == 3 else None


def _shapes(paths: list[str]):
  """(index, shape) of every file that decodes, in order; no image is kept."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return decode.decoded_dataset(paths).map(
      lambda index, image: (index, tf.shape(image)), num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True).as_numpy_iterator()


def _decoded_in_order(paths: list[str], kept: np.ndarray, where: str):
  """The kept files decoded again, in order; one that decoded before and does not now is an error."""
  count = 0
  for index, image in decode.decoded_dataset([paths[int(i)] for i in kept]).as_numpy_iterator():
    if int(index) != count:
      break
    yield image
    count += 1
  if count != len(kept):
    raise UserError(f"{where}: {paths[int(kept[count])]} changed while it was read (it no longer "
                    "decodes); fix it and run again")


def write_images(images, count: int, target: tuple[int, int, int], base: str, where: str,
                 index: dict) -> None:
  """Writes `count` images ([H, W, 1..4] each, any size: converted to `target` a chunk at a time)
  to base + SUFFIX and `index` (with count and shape) beside it; the image file appears last,
  complete, under its final name."""
  path = base + SUFFIX
  size = count * int(np.prod(target))
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    free = shutil.disk_usage(os.path.dirname(path)).free
  except OSError as e:
    raise UserError(f"{where}: cannot use {os.path.dirname(path)} for the decoded images "
                    f"({e.strerror or e}): pass {decode.CACHE_DIR_FLAG}=DIR, a folder you can write") from None
  if size > free:
    raise UserError(f"{where}: the decoded images need {decode.human_size(size)} on disk and "
                    f"{os.path.dirname(path)} has {decode.human_size(free)} free: pass "
                    f"{decode.CACHE_DIR_FLAG}=DIR on a larger disk, or a smaller {decode.SIZE_FLAG}")
  logging.getLogger("absl").info("%s: decoding %d images of %dx%dx%d (%s) to %s", where, count,
                                 target[1], target[0], target[2], decode.human_size(size), path)
  partial = f"{path}.{os.getpid()}.partial"
  out = np.memmap(partial, dtype=np.uint8, mode="w+", shape=(count, *target))
  try:
    written, chunk = 0, []
    for image in images:
      chunk.append(image)
      if len(chunk) == CHUNK:
        out[written:written + CHUNK] = decode.to_common_shape(chunk, target)
        written, chunk = written + CHUNK, []
    if chunk:
      out[written:written + len(chunk)] = decode.to_common_shape(chunk, target)
      written += len(chunk)
    if written != count:
      raise UserError(f"{where}: read {written} images where {count} were counted; the data changed "
                      "while it was read: run again")
    out.flush()
    del out
    index_partial = f"{base}{INDEX_SUFFIX}.{os.getpid()}.partial"
    with open(index_partial, "w", encoding="utf-8") as f:
      json.dump({**index, "count": count, "shape": list(target)}, f)
    os.replace(index_partial, base + INDEX_SUFFIX)
    os.replace(partial, path)
  finally:
    if os.path.exists(partial):
      os.remove(partial)
