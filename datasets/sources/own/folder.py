"""folder: class folders of image files (`--dataset=folder --dataset_dir=DIR`).

    DIR/train/<class name>/*.png|jpg|jpeg|bmp|gif    the training images (labels as given)
    DIR/test/<class name>/...                        optional; else --test_fraction of train
    DIR/probe/<class name>/...                       optional clean probe set

Class ids follow the sorted train folder names (any characters, spaces and non-ASCII included).
Files with other extensions and hidden files are ignored; class folders are not searched deeper.
"""
from __future__ import annotations

import os

from core.errors import UserError
from datasets.sources.own import decode
from datasets.sources.own.labelled_files import LabelledFiles, build_raw
from datasets.sources.registry import RawDataset, SourceOptions, register_source

FLAG = "--dataset_dir"
WHERE = "--dataset=folder"


@register_source("folder", takes_options=True, required_flag="dataset_dir", labels_as_given=True)
def _load_folder(data_dir, dataset_file, options: SourceOptions) -> RawDataset:
  del data_dir, dataset_file
  return load_folder(options.dataset_dir, options)


def load_folder(root: str | None, options: SourceOptions) -> RawDataset:
  if not root:
    raise UserError(f"{WHERE} needs {FLAG}=DIR with DIR/train/<class name>/ image folders")
  root = os.fspath(root)
  if not os.path.isdir(root):
    raise UserError(f"{FLAG}={root} does not exist or is not a folder: give the folder that holds "
                    "train/<class name>/ image folders")
  train_dir = os.path.join(root, "train")
  if not os.path.isdir(train_dir):
    raise UserError(f"{FLAG}={root} has no train/ folder: put the images in "
                    f"{os.path.join(root, 'train', '<class name>')}/")
  classes = class_folders(train_dir)
  if len(classes) < 2:
    found = f" (found only {classes[0]!r})" if classes else ""
    raise UserError(f"{FLAG}={root}: train/ needs at least 2 class folders{found}; put each "
                    "class's images in train/<class name>/")
  ids = {name: i for i, name in enumerate(classes)}
  splits = {"train": _split_files(train_dir, classes, ids, require_all=True)}
  for split in ("test", "probe"):
    split_dir = os.path.join(root, split)
    if os.path.isdir(split_dir):
      names = class_folders(split_dir)
      unknown = [n for n in names if n not in ids]
      if unknown:
        raise UserError(f"{FLAG}={root}: {split}/{unknown[0]} is not a class of train/ "
                        f"(classes: {_listing(classes)}); rename or remove it")
      splits[split] = _split_files(split_dir, names, ids, require_all=False)
  return build_raw(splits, num_classes=len(classes), class_names=classes, options=options,
                   where=f"{WHERE} {FLAG}={root}")


def class_folders(split_dir: str) -> list[str]:
  """The class folder names under `split_dir`, sorted (hidden folders ignored)."""
  return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))


def _split_files(split_dir: str, classes: list[str], ids: dict[str, int], *,
                 require_all: bool) -> LabelledFiles:
  files = LabelledFiles()
  for name in classes:
    folder = os.path.join(split_dir, name)
    images = sorted(e.name for e in os.scandir(folder) if e.is_file() and decode.is_image_file(e.name))
    if not images and require_all:
      raise UserError(f"{FLAG}: class folder {folder} holds no image files "
                      f"({', '.join(decode.IMAGE_EXTENSIONS)}); add images or remove the folder")
    for image in images:
      files.add(os.path.join(folder, image), ids[name])
  return files


def _listing(names: list[str], limit: int = 8) -> str:
  return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
