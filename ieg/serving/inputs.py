"""Your images for --mode=predict: a folder (searched recursively), a CSV with a `path` column, or an
.npz with `x`, as uint8 [N, H, W, C] at the run's image shape.

Image files are read by `datasets.sources.own.decode`, as the folder and CSV sources read them.
"""
import csv
import os

import numpy as np
import tensorflow as tf

from core.errors import UserError
from datasets.sources.own import decode



def load_images(paths: list[str], image_shape: tuple[int, int, int]) -> np.ndarray:
  """The image files at `paths`, decoded as the folder and CSV sources decode them, fitted to `image_shape`."""
  return _stack([fit_to_shape(image, image_shape) for image in decode.decode_each(paths, where="--predict_input")],
                image_shape)


class ImageFileBatches:
  """Image files decoded a slice at a time (`batches[a:b]`, fitted to the run's image shape), so a
  large --predict_input is never in memory whole; a file that does not decode stops the slice
  that reads it with one line naming it."""

  def __init__(self, paths: list[str], image_shape: tuple[int, int, int]):
    self.paths, self.image_shape = list(paths), tuple(image_shape)

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, rows: slice) -> np.ndarray:
    return load_images(self.paths[rows], self.image_shape)


def fit_to_shape(image, image_shape: tuple[int, int, int]) -> np.ndarray:
  """uint8 [h, w, c] with c in 1..4 -> uint8 [H, W, C]: alpha dropped, grey <-> RGB, area-averaged resize."""
  height, width, channels = image_shape
  image = tf.convert_to_tensor(image)
  if image.shape.rank == 2:
    image = image[..., None]
  image = image[..., :3] if image.shape[-1] in (3, 4) else image[..., :1]  # alpha (RGBA, grey+alpha) dropped
  if image.shape[-1] == 3 and channels == 1:
    image = tf.image.rgb_to_grayscale(image)
  elif image.shape[-1] == 1 and channels == 3:
    image = tf.image.grayscale_to_rgb(image)
  if tuple(image.shape[:2]) != (height, width):
    resized = tf.image.resize(tf.cast(image, tf.float32), [height, width], antialias=True)
    image = tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)
  return image.numpy()


def read_inputs(path: str, image_shape: tuple[int, int, int]) -> tuple[str, list[str], np.ndarray]:
  """(key column name, one key per image, uint8 images [N, H, W, C]) from a folder, a .csv or an .npz;
  the images of a folder or a .csv come as `ImageFileBatches`, read when sliced."""
  if not os.path.exists(path):
    raise UserError(f"--predict_input={path} does not exist: give a folder of images, a .csv or an .npz")
  if os.path.isdir(path):
    return "path", *_folder(path, image_shape)
  reader = READERS.get(os.path.splitext(path)[1].lower())
  if reader is None:
    raise UserError(f"--predict_input={path} is neither a folder, a .csv nor an .npz: give one of those")
  return reader(path, image_shape)


def _folder(folder: str, image_shape) -> tuple[list[str], np.ndarray]:
  found = []
  for root, _, names in os.walk(folder):
    found += [os.path.join(root, n) for n in names if decode.is_image_file(n)]
  keys = sorted(os.path.relpath(p, folder).replace(os.sep, "/") for p in found)
  if not keys:
    raise UserError(f"--predict_input={folder} holds no images (*.png, *.jpg, *.jpeg, *.bmp, *.gif)")
  return keys, ImageFileBatches([os.path.join(folder, k) for k in keys], image_shape)


def _csv(path: str, image_shape) -> tuple[str, list[str], np.ndarray]:
  try:
    with open(path, newline="", encoding="utf-8") as f:
      reader = csv.DictReader(f)
      rows = list(reader)
      columns = reader.fieldnames or []
  except (OSError, UnicodeDecodeError, csv.Error) as e:
    raise UserError(f"cannot read --predict_input={path} ({e}): give a UTF-8 CSV with a path column") from e
  if "path" not in columns:
    raise UserError(f"--predict_input={path} has no `path` column (it has {', '.join(columns) or 'none'}): "
                    "give one image path per row, relative to the CSV")
  if not rows:
    raise UserError(f"--predict_input={path} lists no images: give one image path per row under `path`")
  keys = [row["path"] or "" for row in rows]
  base = os.path.dirname(os.path.abspath(path))
  files = [os.path.join(base, key) for key in keys]
  for key, file in zip(keys, files):
    if not key or not os.path.isfile(file):
      raise UserError(f"{path}: the image {file} does not exist (paths are relative to the CSV)")
  return "path", keys, ImageFileBatches(files, image_shape)


def _npz(path: str, image_shape) -> tuple[str, list[str], np.ndarray]:
  try:
    with np.load(path, allow_pickle=False) as arrays:
      if "x" not in arrays:
        raise UserError(f"--predict_input={path} has no array x: save the images as x (uint8 [N, H, W, C])")
      x = arrays["x"]
  except (OSError, ValueError) as e:
    raise UserError(f"cannot read --predict_input={path} ({e}): give an .npz with x (uint8 [N, H, W, C])") from e
  if x.dtype != np.uint8 or x.ndim not in (3, 4) or len(x) == 0:
    raise UserError(f"--predict_input={path}: x is {x.dtype} {list(x.shape)}, not uint8 [N, H, W, C] with N > 0")
  if x.ndim == 4 and tuple(x.shape[1:]) == tuple(image_shape):
    images = x
  else:
    images = _stack([fit_to_shape(image, image_shape) for image in x], image_shape)
  return "index", [str(i) for i in range(len(x))], images


READERS = {".csv": _csv, ".npz": _npz}


def _stack(images: list[np.ndarray], image_shape) -> np.ndarray:
  return np.stack(images).reshape(-1, *image_shape) if images else np.zeros((0, *image_shape), np.uint8)
