"""cifar10_subset: real CIFAR-10 pixels (first 4000 train / 1000 test), one verified npz."""
from __future__ import annotations

import os

from core.errors import UserError
from datasets.sources import archives
from datasets.sources import meta
from datasets.sources.registry import RawDataset, raw_dataset, register_source


@register_source("cifar10_subset")
def _load_cifar10_subset(data_dir, dataset_file) -> RawDataset:
  del dataset_file
  name, fname = "cifar10_subset", archives.CIFAR10_SUBSET_NPZ
  folder = os.path.join(data_dir or "<data_dir>", name)
  where = os.path.join(folder, fname)
  if not data_dir or not os.path.isfile(where):
    raise UserError(
        f"--dataset: {where} not found. Put {fname} (from "
        f"{archives.DOWNLOAD_FROM[name][fname]}) into {folder}/"
        + ("" if data_dir else " and pass that <data_dir> (--data_dir)") + ".")
  archives.verify_checksum(where, name)
  d = archives.read_npz_arrays(where, name, ("x_train", "y_train", "x_test", "y_test"))
  return raw_dataset(d["x_train"], d["y_train"], d["x_test"], d["y_test"], 10,
                     meta.CIFAR10_CLASS_NAMES)
