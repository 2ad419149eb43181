"""Clothing1M (Xiao et al., CVPR 2015): 1M web images of 14 clothing classes with noisy labels.

The official release unpacked into `<data_dir>/clothing1m/`: the `images/` folder and the label
files, either next to it or in `annotations/`:
  noisy_label_kv.txt, noisy_train_key_list.txt   the noisy training set (`images/0/00/x.jpg 4`)
  clean_label_kv.txt, clean_train_key_list.txt   clean labels; the clean training keys
  clean_val_key_list.txt, clean_test_key_list.txt   the clean validation and test splits
  category_names_eng.txt                          class names (optional)

Two names: `clothing1m` trains on every noisy training image (ABSGD); `clothing1m_balanced`
draws a fresh class-balanced subset of at most 18,976 images per class every epoch (SLN's
`num_per_class`; the smallest class has about that many). A clean probe set, when a method asks
for one, is drawn class-balanced from the clean training keys. Training images get SLN's and
ABSGD's view (resize to 256, random 224 crop, flip); evaluation their centre crop.
"""
from __future__ import annotations

import os

import numpy as np

from core.errors import UserError
from datasets.sources import image_files
from datasets.sources.registry import KIND_IMAGE_FILES, register_source

FOLDER = "clothing1m"
NUM_CLASSES = 14
IMAGE_SIZE = 224
SLN_EXAMPLES_PER_CLASS = 18976
NOISY_LABELS, NOISY_TRAIN = "noisy_label_kv.txt", "noisy_train_key_list.txt"
CLEAN_LABELS, CLEAN_TRAIN = "clean_label_kv.txt", "clean_train_key_list.txt"
CLEAN_VAL, CLEAN_TEST = "clean_val_key_list.txt", "clean_test_key_list.txt"
CATEGORY_NAMES = "category_names_eng.txt"
REQUIRED = (NOISY_LABELS, NOISY_TRAIN, CLEAN_LABELS, CLEAN_VAL, CLEAN_TEST)
CLASS_NAMES = ["T-Shirt", "Shirt", "Knitwear", "Chiffon", "Sweater", "Hoodie", "Windbreaker",
               "Jacket", "Downcoat", "Suit", "Shawl", "Dress", "Vest", "Underwear"]
HOMEPAGE = "https://github.com/Cysu/noisy_label"


def _annotation_folder(root: str) -> str | None:
  for folder in (root, os.path.join(root, "annotations")):
    if all(os.path.isfile(os.path.join(folder, f)) for f in REQUIRED):
      return folder
  return None


def _split(keys: list[str], table: dict[str, int], root: str, what: str) -> image_files.ImageFiles:
  missing = [k for k in keys if k not in table]
  if missing:
    raise UserError(f"{root}: {len(missing)} {what} keys have no label (e.g. {missing[0]}); the "
                    "label files do not belong together")
  labels = image_files.check_labels([table[k] for k in keys], NUM_CLASSES, f"{root} ({what})")
  paths = np.asarray([os.path.join(root, k) for k in keys], dtype=object)
  image_files.check_some_exist(paths, f"{root} ({what} images)",
                               f"Unpack images/*.tar into {root}/images/.")
  return image_files.ImageFiles(labels=labels, paths=paths)


def load_clothing1m(data_dir: str | None, examples_per_class_per_epoch: int | None, *,
                    use_imagenet_as_eval: bool = False) -> image_files.FileSource:
  if use_imagenet_as_eval:
    raise UserError("--use_imagenet_as_eval applies to webvisionmini only; Clothing1M is evaluated "
                    "on its clean test split")
  root = os.path.join(data_dir or "<data_dir>", FOLDER)
  folder = _annotation_folder(root) if data_dir else None
  if folder is None:
    raise UserError(
        f"--dataset: Clothing1M needs the official release in {root}/: the images/ folder and "
        f"{', '.join(REQUIRED)} (next to images/ or in annotations/); ask the authors for it "
        f"({HOMEPAGE})" + ("" if data_dir else ", and pass --data_dir") + ".")
  noisy = image_files.read_key_label_table(os.path.join(folder, NOISY_LABELS))
  clean = image_files.read_key_label_table(os.path.join(folder, CLEAN_LABELS))
  read = lambda name: image_files.read_key_list(os.path.join(folder, name))  # noqa: E731
  clean_train = None
  if os.path.isfile(os.path.join(folder, CLEAN_TRAIN)):
    clean_train = _split(read(CLEAN_TRAIN), clean, root, "clean training")
  names = CLASS_NAMES
  if os.path.isfile(os.path.join(folder, CATEGORY_NAMES)):
    with open(os.path.join(folder, CATEGORY_NAMES), encoding="utf-8") as f:
      listed = [line.strip() for line in f if line.strip()]
    names = listed if len(listed) == NUM_CLASSES else names
  return image_files.FileSource(
      train=_split(read(NOISY_TRAIN), noisy, root, "noisy training"),
      val=_split(read(CLEAN_VAL), clean, root, "clean validation"),
      test=_split(read(CLEAN_TEST), clean, root, "clean test"),
      num_classes=NUM_CLASSES, class_names=list(names), clean_train=clean_train,
      probe_hint=f"Add {CLEAN_TRAIN} to the label files in {folder}/.",
      image_size=IMAGE_SIZE, train_view="resize_crop",
      examples_per_class_per_epoch=examples_per_class_per_epoch)


register_source("clothing1m", kind=KIND_IMAGE_FILES, real_noise=True)(
    lambda data_dir, **options: load_clothing1m(data_dir, None, **options))
register_source("clothing1m_balanced", kind=KIND_IMAGE_FILES, real_noise=True)(
    lambda data_dir, **options: load_clothing1m(data_dir, SLN_EXAMPLES_PER_CLASS, **options))
