"""WebVision-mini as IEG uses it: the Google images of the first 50 WebVision classes, 224 px.

Files under `<data_dir>/webvisionmini/` (or `<data_dir>/webvisionmini-google/`, IEG's folder name),
in either layout:
- the official WebVision 1.0 release (resized images): `info/train_filelist_google.txt` and
  `info/val_filelist.txt` (`<path> <label>` lines; the first 50 classes are kept), the training
  images under their listed paths (`google/q0001/...`), the validation images in `val_images_256/`,
  class names from `info/synsets.txt` when present;
- class folders: `train/<class>/*.jpg` and `val/<class>/*.jpg` (the first 50 folders in sorted
  order; WebVision's classes are ImageNet's synsets, so synset folder names sort into its order).

The clean probe set is IEG's TFRecord of ImageNet training images,
`probe_<n>/imagenet2012-probe.tfrecord-1-of-1` (features `image/encoded`, `image/label`; probe_500
= 10 per class, preferred when there are several). With `use_imagenet_as_eval` the test set is the
ImageNet validation images of the first 50 classes, from `<data_dir>/imagenet/val/<synset>/` (the
usual class-folder layout of ILSVRC2012 val); otherwise the WebVision validation images are the
test set.
"""
from __future__ import annotations

import glob
import os

from core.errors import UserError
from datasets.sources import image_files
from datasets.sources.registry import KIND_IMAGE_FILES, register_source

NAME = "webvisionmini"
FOLDERS = ("webvisionmini", "webvisionmini-google")
NUM_CLASSES = 50
IMAGE_SIZE = 224
TRAIN_LIST, VAL_LIST = os.path.join("info", "train_filelist_google.txt"), os.path.join("info", "val_filelist.txt")
SYNSETS = os.path.join("info", "synsets.txt")
VAL_IMAGES = "val_images_256"
PROBE_FILE = "imagenet2012-probe.tfrecord-1-of-1"
DEFAULT_PROBE_FOLDER = "probe_500"
IMAGENET_VAL = os.path.join("imagenet", "val")
WEBVISION_URL = "https://data.vision.ee.ethz.ch/cvl/webvision/download.html"
IEG_PROBE_URL = "https://storage.googleapis.com/gresearch/ieg/webvisionmini2.zip"


def _root(data_dir: str | None) -> str:
  if data_dir:
    for folder in FOLDERS:
      if os.path.isdir(os.path.join(data_dir, folder)):
        return os.path.join(data_dir, folder)
  return os.path.join(data_dir or "<data_dir>", FOLDERS[0])


def _layout_help(root: str) -> str:
  return (f"Put WebVision 1.0 (resized images, {WEBVISION_URL}) into {root}/: {TRAIN_LIST}, "
          f"{VAL_LIST}, the google/ images and {VAL_IMAGES}/; or class folders {root}/train/<class>/ "
          f"and {root}/val/<class>/ for the first {NUM_CLASSES} classes.")


def _from_lists(root: str):
  train_paths, train_labels = image_files.read_path_label_list(os.path.join(root, TRAIN_LIST), root)
  val_paths, val_labels = image_files.read_path_label_list(
      os.path.join(root, VAL_LIST), os.path.join(root, VAL_IMAGES))
  keep, keep_val = train_labels < NUM_CLASSES, val_labels < NUM_CLASSES
  names = None
  if os.path.isfile(os.path.join(root, SYNSETS)):
    names = image_files.read_key_list(os.path.join(root, SYNSETS))[:NUM_CLASSES]
  return ((train_paths[keep], train_labels[keep]), (val_paths[keep_val], val_labels[keep_val]),
          names if names and len(names) == NUM_CLASSES else None)


def _from_folders(root: str):
  classes = image_files.sorted_subfolders(os.path.join(root, "train"))[:NUM_CLASSES]
  val_classes = image_files.sorted_subfolders(os.path.join(root, "val"))[:NUM_CLASSES]
  if len(classes) < NUM_CLASSES:
    raise UserError(f"{root}/train/ has {len(classes)} class folders, needs {NUM_CLASSES}. "
                    + _layout_help(root))
  if val_classes != classes:
    raise UserError(f"{root}/val/ must hold the same first {NUM_CLASSES} class folders as train/ "
                    f"(train/ starts {classes[0]}, val/ has {len(val_classes)} folders"
                    + (f" starting {val_classes[0]})" if val_classes else ")"))
  train = image_files.class_folder_images(os.path.join(root, "train"), classes)
  val = image_files.class_folder_images(os.path.join(root, "val"), classes)
  return train, val, classes


def _probe(root: str):
  folders = sorted(glob.glob(os.path.join(root, "probe_*", PROBE_FILE)))
  if not folders:
    return None
  preferred = [f for f in folders if os.path.basename(os.path.dirname(f)) == DEFAULT_PROBE_FOLDER]
  if not preferred and len(folders) > 1:
    raise UserError(f"{root}: several probe sets ({', '.join(os.path.dirname(f) for f in folders)}) "
                    f"and no {DEFAULT_PROBE_FOLDER}/; keep the one to use")
  path = (preferred or folders)[0]
  labels = image_files.check_labels(
      image_files.read_record_labels((path,), "image/label", path), NUM_CLASSES, path)
  return image_files.ImageFiles(labels=labels, record_files=(path,))


def _imagenet_val(data_dir: str | None, class_names: list[str] | None) -> image_files.ImageFiles:
  folder = os.path.join(data_dir or "<data_dir>", IMAGENET_VAL)
  if not data_dir or not os.path.isdir(folder):
    raise UserError(f"--use_imagenet_as_eval: the ImageNet validation images go into {folder}/<synset>/ "
                    "(ILSVRC2012 val sorted into one folder per class, as for torchvision's "
                    "ImageFolder); not found" + ("" if data_dir else ", and pass --data_dir"))
  synsets = image_files.sorted_subfolders(folder)[:NUM_CLASSES]
  if len(synsets) < NUM_CLASSES:
    raise UserError(f"{folder}: {len(synsets)} class folders, needs the first {NUM_CLASSES} "
                    "ImageNet synsets (n01440764 ...)")
  if class_names is not None and list(class_names) != synsets:
    raise UserError(f"{folder}: its first {NUM_CLASSES} synsets ({synsets[0]} ...) are not the "
                    f"WebVision classes ({class_names[0]} ...): the labels would not match")
  paths, labels = image_files.class_folder_images(folder, synsets)
  image_files.check_some_exist(paths, folder, "")
  return image_files.ImageFiles(labels=labels, paths=paths)


@register_source(NAME, kind=KIND_IMAGE_FILES, real_noise=True)
def load_webvision_mini(data_dir: str | None, *, use_imagenet_as_eval: bool = False
                        ) -> image_files.FileSource:
  root = _root(data_dir)
  if os.path.isfile(os.path.join(root, TRAIN_LIST)):
    (train_paths, train_labels), (val_paths, val_labels), names = _from_lists(root)
  elif os.path.isdir(os.path.join(root, "train")):
    (train_paths, train_labels), (val_paths, val_labels), names = _from_folders(root)
  else:
    raise UserError(f"--dataset={NAME}: no WebVision data in {root}/. " + _layout_help(root)
                    + ("" if data_dir else " Pass --data_dir=<data_dir>."))
  image_files.check_some_exist(train_paths, f"{root} (training images)", _layout_help(root))
  image_files.check_some_exist(val_paths, f"{root} (validation images)", _layout_help(root))
  val = image_files.ImageFiles(labels=val_labels, paths=val_paths)
  return image_files.FileSource(
      train=image_files.ImageFiles(labels=train_labels, paths=train_paths),
      test=_imagenet_val(data_dir, names) if use_imagenet_as_eval else val,
      val=val, num_classes=NUM_CLASSES, class_names=names, probe=_probe(root),
      probe_hint=(f"Put IEG's probe file at {root}/{DEFAULT_PROBE_FOLDER}/{PROBE_FILE} (it comes in "
                  f"{IEG_PROBE_URL})."),
      image_size=IMAGE_SIZE, train_view="inception_crop")
