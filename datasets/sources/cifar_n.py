"""CIFAR-10N and CIFAR-100N: the CIFAR training images with real human labels (Wei et al., ICLR 2022).

Each `--dataset` name picks one published label set: `cifar10n_aggre` (majority vote of three
annotators, about 9% wrong), `cifar10n_rand1`..`3` (one annotator each, about 17%),
`cifar10n_worst` (a wrong annotation whenever there is one, about 40%), `cifar100n_noisy` (about 40%).
The clean CIFAR labels stay known, so the report gives the real corruption rate and matrix.

Looked for, in order (no network):
1. the official CIFAR archive in `<data_dir>/cifar10/` (or `cifar100/`) plus the published label
   file `CIFAR-10_human.npy` (or `CIFAR-100_human.npy`) in `<data_dir>/cifar10n/` (`cifar100n/`);
2. TFDS `cifar10_n` / `cifar100_n` prepared in `data_dir` (their manual download step needs the
   label files anyway).

Order guard: the label file's `clean_label` must equal the archive's training labels row by row
(the files follow the official data_batch_1..5 order); TFDS examples are put back into that order
by their id (`train_00042` is image 42), since TFDS stores them shuffled.
"""
from __future__ import annotations

import dataclasses
import io
import os
import pickle

import numpy as np

from core.errors import UserError
from datasets.sources import archives
from datasets.sources import meta
from datasets.sources.registry import RawDataset, register_source
from datasets.sources.standard import quiet_absl

LABEL_FILES = {"cifar10": "CIFAR-10_human.npy", "cifar100": "CIFAR-100_human.npy"}
LABEL_FOLDERS = {"cifar10": "cifar10n", "cifar100": "cifar100n"}
ARCHIVES = {"cifar10": archives.CIFAR10_TAR, "cifar100": archives.CIFAR100_TAR}
TFDS_NAMES = {"cifar10": "cifar10_n", "cifar100": "cifar100_n"}
CLASS_NAMES = {"cifar10": meta.CIFAR10_CLASS_NAMES,
               "cifar100": meta.CIFAR100_FINE_NAMES}
DOWNLOAD_FROM = "https://github.com/UCSC-REAL/cifar-10-100n/tree/main/data"
CLEAN_KEY = "clean_label"


@dataclasses.dataclass(frozen=True)
class _Variant:
  base: str                   # cifar10 or cifar100
  file_keys: tuple[str, ...]  # key of the label set in the published .npy (either spelling)
  tfds_key: str               # feature of the TFDS dataset


VARIANTS = {
    "cifar10n_aggre": _Variant("cifar10", ("aggre_label",), "aggre_label"),
    "cifar10n_worst": _Variant("cifar10", ("worse_label",), "worse_label"),
    "cifar10n_rand1": _Variant("cifar10", ("random_label1",), "random_label1"),
    "cifar10n_rand2": _Variant("cifar10", ("random_label2",), "random_label2"),
    "cifar10n_rand3": _Variant("cifar10", ("random_label3",), "random_label3"),
    # The .pt file says noisy_label, the .npy noise_label.
    "cifar100n_noisy": _Variant("cifar100", ("noise_label", "noisy_label"), "noise_label"),
}


# ---------------------------------------------------------------------------------------------
# The published .npy: a pickled 0-d object array holding a dict of label arrays.

_NUMPY_RECONSTRUCT = np.zeros(1).__reduce__()[0]
_ALLOWED_GLOBALS = {
    **{(m, "_reconstruct"): _NUMPY_RECONSTRUCT
       for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): np.float64(0).__reduce__()[0]
       for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): __import__("codecs").encode,
}


class _LabelUnpickler(pickle.Unpickler):
  """Only containers and numpy arrays: a label file can never run code when it is read."""

  def find_class(self, module, name):
    try:
      return _ALLOWED_GLOBALS[(module, name)]
    except KeyError:
      raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a label file") from None


def read_human_labels(path: str) -> dict[str, np.ndarray]:
  """The label arrays of a CIFAR-N `.npy` file (int64), read without running pickled code."""
  try:
    with open(path, "rb") as f:
      version = np.lib.format.read_magic(f)
      read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                     else np.lib.format.read_array_header_2_0)
      shape, _, dtype = read_header(f)
      if dtype.hasobject:
        array = _LabelUnpickler(io.BytesIO(f.read()), encoding="latin1").load()
      else:
        raise ValueError(f"a plain {dtype} array {shape}, not a dict of label sets")
    table = array.item() if isinstance(array, np.ndarray) else array
    if not isinstance(table, dict):
      raise ValueError(f"holds a {type(table).__name__}, not a dict of label sets")
    return {str(k): np.asarray(v).astype(np.int64).reshape(-1) for k, v in table.items()}
  except (OSError, ValueError, TypeError, EOFError, AttributeError, pickle.UnpicklingError) as e:
    raise UserError(f"{path}: not a readable CIFAR-N label file ({type(e).__name__}: {e}); "
                    f"download it again from {DOWNLOAD_FROM}") from e


def attach_human_labels(y_clean: np.ndarray, table: dict[str, np.ndarray], variant: _Variant,
                        where: str) -> np.ndarray:
  """The variant's noisy labels, after checking the file's clean labels row by row (order guard)."""
  key = next((k for k in variant.file_keys if k in table), None)
  if key is None or CLEAN_KEY not in table:
    raise UserError(f"{where}: lacks {' or '.join(variant.file_keys)} / {CLEAN_KEY} (it has "
                    f"{', '.join(sorted(table))}): not the CIFAR-N file for {variant.base}")
  clean, noisy = table[CLEAN_KEY], table[key]
  if len(clean) != len(y_clean) or len(noisy) != len(y_clean):
    raise UserError(f"{where}: {len(noisy)} labels for {len(y_clean)} training images; the file "
                    f"is not the CIFAR-N file for this {variant.base} archive")
  wrong = int(np.sum(clean != y_clean))
  if wrong:
    raise UserError(f"{where}: its {CLEAN_KEY} disagrees with the archive's training labels in "
                    f"{wrong} of {len(y_clean)} rows, so its labels would land on the wrong images "
                    "(CIFAR-N files follow the official data_batch order); use the published file "
                    "with the official archive")
  return noisy


# ---------------------------------------------------------------------------------------------
# Loaders.

def _from_local(variant: _Variant, data_dir: str) -> RawDataset | str:
  """The dataset from the official archive + label file, or why not (a line for the error)."""
  tar = os.path.join(data_dir, variant.base, ARCHIVES[variant.base])
  labels = os.path.join(data_dir, LABEL_FOLDERS[variant.base], LABEL_FILES[variant.base])
  missing = [p for p in (tar, labels) if not os.path.isfile(p)]
  if missing:
    return f"{' and '.join(missing)} not found"
  archives.verify_checksum(tar, variant.base)
  x_train, y_train, x_test, y_test = archives.read_cifar_tar(tar, variant.base)
  noisy = attach_human_labels(y_train, read_human_labels(labels), variant, labels)
  return _raw(variant, x_train, y_train, noisy, x_test, y_test)


def _raw(variant, x_train, y_train, noisy, x_test, y_test) -> RawDataset:
  names = CLASS_NAMES[variant.base]
  return RawDataset(
      x_train=np.ascontiguousarray(x_train, np.uint8), y_train=np.asarray(y_train, np.int64),
      x_test=np.ascontiguousarray(x_test, np.uint8), y_test=np.asarray(y_test, np.int64),
      num_classes=len(names), class_names=list(names), y_train_noisy=np.asarray(noisy, np.int64))


def _id_order(ids: np.ndarray, prefix: str, where: str) -> np.ndarray:
  """Positions that sort TFDS examples into the official order by their ids (`train_00042`)."""
  try:
    texts = [i.decode() if isinstance(i, bytes) else str(i) for i in ids.tolist()]
    if not all(t.startswith(prefix) for t in texts):
      raise ValueError("unexpected prefix")
    numbers = np.array([int(t[len(prefix):]) for t in texts], np.int64)
  except ValueError as e:
    raise UserError(f"{where}: example ids are not '{prefix}<index>' ({e})") from e
  order = np.argsort(numbers, kind="stable")
  if not np.array_equal(numbers[order], np.arange(len(numbers))):
    raise UserError(f"{where}: example ids are not {prefix}0..{prefix}{len(numbers) - 1}: "
                    "the prepared data is incomplete; prepare it again")
  return order


def _tfds_split(name: str, split: str, data_dir: str | None, keys: tuple[str, ...]) -> dict:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (slow: TF)

  dataset = tfds.load(name, split=split, data_dir=data_dir, download=False, shuffle_files=False)
  columns = {k: [] for k in ("id",) + keys}
  for batch in tfds.as_numpy(dataset.batch(4096)):
    for k in columns:
      columns[k].append(batch[k])
  return {k: np.concatenate(v) for k, v in columns.items()}


def _from_tfds(variant: _Variant, data_dir: str | None) -> RawDataset:
  name = TFDS_NAMES[variant.base]
  train = _tfds_split(name, "train", data_dir, ("image", "label", variant.tfds_key))
  test = _tfds_split(name, "test", data_dir, ("image", "label"))
  order = _id_order(train["id"], "train_", f"TFDS {name}")
  test_order = _id_order(test["id"], "test_", f"TFDS {name}")
  return _raw(variant, train["image"][order], train["label"][order],
              train[variant.tfds_key][order], test["image"][test_order], test["label"][test_order])


def load_cifar_n(name: str, data_dir: str | None) -> RawDataset:
  variant = VARIANTS[name]
  tried = []
  if data_dir:
    local = _from_local(variant, data_dir)
    if isinstance(local, RawDataset):
      return local
    tried.append(local)
  else:
    tried.append("local files: skipped, no --data_dir")
  try:
    with quiet_absl():
      return _from_tfds(variant, data_dir)
  except UserError:
    raise
  except Exception as e:  # pylint: disable=broad-except  (not prepared, or tfds missing)
    detail = ("not prepared there" if "could not find data" in str(e).lower()
              else f"{type(e).__name__}: {str(e).strip()[:200]}")
    tried.append(f"TFDS {TFDS_NAMES[variant.base]} in {data_dir or '~/tensorflow_datasets'}: {detail}")
  base = variant.base
  where = os.path.join(data_dir or "<data_dir>", "")
  raise UserError(
      f"--dataset={name}: put {ARCHIVES[base]} (from {archives.DOWNLOAD_FROM[base][ARCHIVES[base]]}) "
      f"into {where}{base}/ and {LABEL_FILES[base]} (from {DOWNLOAD_FROM}) into "
      f"{where}{LABEL_FOLDERS[base]}/" + ("" if data_dir else ", and pass --data_dir")
      + f", or prepare TFDS {TFDS_NAMES[base]} there. Tried: " + "; ".join(tried) + ".")


for _name in VARIANTS:
  register_source(_name, real_noise=True)(
      lambda data_dir, dataset_file, _n=_name: load_cifar_n(_n, data_dir))
