"""Assembly: raw arrays -> clean probe holdout -> label noise on the rest -> NoisyDataset.

Order as IEG: the probe set is drawn from the clean labels and removed first; noise is applied to
the remaining training labels only (the probe is never noised). Probe and noise use independent
random streams derived from the one seed.
"""
from __future__ import annotations

import dataclasses
import io
import os

import numpy as np

from core.errors import UserError
from datasets import noise as noise_lib
from datasets import probe as probe_lib
from datasets import sources
from datasets import validation as validation_lib
from datasets.spec import DatasetSpec, parse_dataset_spec

NOISE_FILE_VERSION = 1
MAX_CLASSES_FULL_CONFUSION = 20   # larger K: a summary instead of the full matrix
TOP_CONFUSIONS = 20


class DatasetSizes:
  """Example counts from the label arrays, shared by the in-memory and the streamed datasets."""

  @property
  def num_train(self) -> int:
    return len(self.y_train)

  @property
  def num_probe(self) -> int:
    return len(self.y_probe)

  @property
  def num_test(self) -> int:
    return len(self.y_test)


@dataclasses.dataclass
class NoisyDataset(DatasetSizes):
  spec: DatasetSpec
  num_classes: int
  image_shape: tuple[int, int, int]
  x_train: np.ndarray                  # uint8 [N, H, W, C]
  y_train: np.ndarray                  # int64 [N] noisy labels
  y_train_clean: np.ndarray | None     # int64 [N]; None when unknown (custom data, noise 'none')
  corrupted: np.ndarray | None         # bool [N]; None when unknown
  train_ids: np.ndarray                # int64 [N] index in the source's original train order
  transition: np.ndarray | None        # float64 [K, K] T[true, noisy]; None when unknown
  x_probe: np.ndarray                  # uint8 [P, H, W, C]; empty when there is no probe
  y_probe: np.ndarray                  # int64 [P], clean
  probe_ids: np.ndarray                # int64 [P] index in the source's train order (or in the
                                       # custom file's x_probe when it brings its own probe set)
  x_test: np.ndarray
  y_test: np.ndarray
  class_names: list[str] | None = None
  seed: int | None = None
  probe_ratio: float | None = None
  probe_from_file: bool = False        # True when the user's data brought its own clean probe set
  vocabulary: list[str] | None = None  # text data: the token of every id (x arrays hold int32 ids)
  # --validation_fraction: training rows held out with their noisy labels, to choose the epoch on.
  x_val: np.ndarray | None = None
  y_val: np.ndarray | None = None      # int64 [V] noisy labels
  validation_ids: np.ndarray | None = None  # int64 [V] index in the source's train order
  # Image files read from disk: the file of every row of the source's train order (index with
  # train_ids), for reports that name files.
  source_paths: list[str] | None = None
  skipped_paths: list[str] | None = None   # unreadable files left out (--skip_bad_images)

  @property
  def num_validation(self) -> int:
    return 0 if self.y_val is None else len(self.y_val)

  def training_subset(self, rows: np.ndarray) -> NoisyDataset:
    """This dataset with only the training rows `rows` (a cross-validation fold's training part)."""
    pick = lambda values: None if values is None else values[rows]  # noqa: E731
    return dataclasses.replace(self, x_train=self.x_train[rows], y_train=self.y_train[rows],
                               y_train_clean=pick(self.y_train_clean), corrupted=pick(self.corrupted),
                               train_ids=self.train_ids[rows])

  def validation_as_test(self) -> NoisyDataset:
    """This dataset with the validation rows in the test rows' place, for the test pipeline."""
    return dataclasses.replace(self, x_test=self.x_val, y_test=self.y_val)

  # What the run needs to know, shared with the streamed `noisy_files.FileNoisyDataset`.
  @property
  def kind(self) -> str:
    return "text" if self.vocabulary is not None else "images"

  @property
  def examples_per_epoch(self) -> int:
    return self.num_train

  @property
  def network_options(self) -> dict:
    """Extra arguments of `networks.build_network` that the data decides (a vocabulary size)."""
    return {} if self.vocabulary is None else {"vocabulary_size": len(self.vocabulary)}

  @property
  def realised_noise_rate(self) -> float | None:
    if self.corrupted is None or len(self.corrupted) == 0:
      return None
    return float(np.mean(self.corrupted))

  def _class_label(self, c: int) -> str:
    if self.class_names and self.class_names[c] != str(c):
      return f"{c} {self.class_names[c]}"
    return str(c)

  def noise_report(self) -> str:
    """Human-readable summary: realised corruption rate, per-class counts, confusion matrix."""
    k = self.num_classes
    lines = [f"dataset {self.spec}: {k} classes, images {self.image_shape}",
             f"  train {len(self.y_train)}, probe {len(self.y_probe)}"
             + (" (clean, from the dataset file)" if self.probe_from_file else " (clean)")
             + f", test {len(self.y_test)}"]
    if self.skipped_paths:
      lines.append(f"  {len(self.skipped_paths)} unreadable image file(s) skipped, listed in skipped_images.txt")
    noisy_counts = np.bincount(self.y_train, minlength=k)
    probe_counts = np.bincount(self.y_probe, minlength=k)
    test_counts = np.bincount(self.y_test, minlength=k)
    if self.y_train_clean is None:
      lines.append("  clean training labels unknown (labels used as given): no corruption rate")
      clean_counts = None
    else:
      clean_counts = np.bincount(self.y_train_clean, minlength=k)
      rate = self.realised_noise_rate or 0.0
      what = ("images replaced, labels kept" if np.array_equal(self.y_train, self.y_train_clean)
              else "labels changed")   # open-set noise corrupts images, not labels
      line = (f"  noise {self.spec.noise} ratio {self.spec.ratio:g}: realised corruption rate "
              f"{rate:.4f} ({int(np.sum(self.corrupted))} of {len(self.corrupted)} {what})")
      if self.transition is not None:
        line += f", expected {noise_lib.expected_flip_rate(self.transition, clean_counts):.4f}"
      lines.append(line)
    names = [self._class_label(c) for c in range(k)]
    width = max(8, *(len(n) for n in names))
    header = f"  {'class':<{width}} " + " ".join(
        f"{h:>8}" for h in (["clean"] if clean_counts is not None else [])
        + ["noisy", "corrupt", "probe", "test"])
    lines += ["  per-class counts (train clean / train noisy / corrupted / probe / test):", header]
    for c in range(k):
      row = ([clean_counts[c]] if clean_counts is not None else []) + [noisy_counts[c]]
      if self.corrupted is not None and self.y_train_clean is not None:
        row.append(int(np.sum(self.corrupted & (self.y_train_clean == c))))
      else:
        row.append("-")
      row += [probe_counts[c], test_counts[c]]
      lines.append(f"  {names[c]:<{width}} " + " ".join(f"{v:>8}" for v in row))
    if self.y_train_clean is not None:
      conf = confusion_matrix(self.y_train_clean, self.y_train, k)
      if k <= MAX_CLASSES_FULL_CONFUSION:
        cell = max(5, len(str(int(conf.max()))) + 1)
        lines.append("  confusion matrix (rows: clean label, columns: noisy label):")
        lines.append("  " + " " * 5 + "".join(f"{j:>{cell}}" for j in range(k)))
        for i in range(k):
          lines.append(f"  {i:>4} " + "".join(f"{v:>{cell}}" for v in conf[i]))
      else:   # 100 x 100 does not read as text: the diagonal and the largest confusions
        diag = np.diag(conf)
        lines.append(f"  confusion matrix ({k} x {k}): kept per clean class min "
                     f"{diag.min()}, median {int(np.median(diag))}, max {diag.max()}")
        off = conf.copy()
        np.fill_diagonal(off, 0)
        top = np.argsort(-off, axis=None, kind="stable")[:TOP_CONFUSIONS]
        cells = [divmod(int(f), k) for f in top if off.flat[f] > 0]
        if cells:
          lines.append("  largest confusions (clean -> noisy: count): " + ", ".join(
              f"{i}->{j}: {off[i, j]}" for i, j in cells))
    return "\n".join(lines)

  def save_noise_file(self, path) -> None:
    """npz with the noisy and clean labels, corrupted mask, train/probe ids, transition, spec."""
    unknown = np.zeros(0)
    arrays = dict(
        version=np.int64(NOISE_FILE_VERSION),
        spec=np.array(str(self.spec)),
        num_classes=np.int64(self.num_classes),
        noisy_labels=self.y_train.astype(np.int64),
        has_clean=np.bool_(self.y_train_clean is not None),
        clean_labels=(self.y_train_clean.astype(np.int64) if self.y_train_clean is not None
                      else unknown.astype(np.int64)),
        corrupted=self.corrupted if self.corrupted is not None else unknown.astype(bool),
        train_ids=self.train_ids.astype(np.int64),
        probe_ids=self.probe_ids.astype(np.int64),
        probe_labels=self.y_probe.astype(np.int64),
        has_transition=np.bool_(self.transition is not None),
        transition=(self.transition if self.transition is not None
                    else unknown.reshape(0, 0)).astype(np.float64),
        seed=np.int64(-1 if self.seed is None else self.seed),
        probe_ratio=np.float64(np.nan if self.probe_ratio is None else self.probe_ratio),
        probe_from_file=np.bool_(self.probe_from_file),
        validation_ids=(self.validation_ids if self.validation_ids is not None else unknown).astype(np.int64),
        validation_labels=(self.y_val if self.y_val is not None else unknown).astype(np.int64),
    )
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    buf = io.BytesIO()   # exact file name (np.savez would append .npz), written in one go
    np.savez(buf, **arrays)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
      f.write(buf.getvalue())
    os.replace(tmp, path)


def load_noise_file(path) -> dict:
  """Reads a file written by `save_noise_file`. Unknown clean labels / transition come back None."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise UserError(f"noise file {path} does not exist")
  try:
    with np.load(path, allow_pickle=False) as f:
      d = {k: f[k] for k in f.files}
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f"noise file {path} is not a readable npz ({type(e).__name__}: {e})") from e
  required = ("spec", "noisy_labels", "clean_labels", "corrupted", "train_ids", "probe_ids",
              "transition", "has_clean", "has_transition")
  missing = [k for k in required if k not in d]
  if missing:
    raise UserError(f"noise file {path} lacks {', '.join(missing)}: not written by "
                    "save_noise_file?")
  has_clean, has_t = bool(d["has_clean"]), bool(d["has_transition"])
  seed = int(d["seed"]) if "seed" in d else -1
  probe_ratio = float(d["probe_ratio"]) if "probe_ratio" in d else float("nan")
  return {
      "version": int(d.get("version", 1)),
      "spec": parse_dataset_spec(str(d["spec"])),
      "num_classes": int(d["num_classes"]) if "num_classes" in d else None,
      "noisy_labels": d["noisy_labels"],
      "clean_labels": d["clean_labels"] if has_clean else None,
      "corrupted": d["corrupted"] if has_clean else None,
      "train_ids": d["train_ids"],
      "probe_ids": d["probe_ids"],
      "probe_labels": d.get("probe_labels"),
      "transition": d["transition"] if has_t else None,
      "seed": None if seed < 0 else seed,
      "probe_ratio": None if np.isnan(probe_ratio) else probe_ratio,
      "probe_from_file": bool(d.get("probe_from_file", False)),
  }


def confusion_matrix(clean: np.ndarray, noisy: np.ndarray, num_classes: int) -> np.ndarray:
  """Counts [K, K]: rows clean label, columns noisy label."""
  flat = np.asarray(clean, np.int64) * num_classes + np.asarray(noisy, np.int64)
  return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def build_noisy_dataset(spec: DatasetSpec, *, data_dir: str | None, probe_ratio: float, seed: int,
                        dataset_file: str | None = None, validation_fraction: float = 0.0,
                        source_options: sources.SourceOptions | None = None) -> NoisyDataset:
  """Loads `spec.name`, holds out the clean probe set, corrupts the remaining train labels, then
  holds out `validation_fraction` of the noisy rows (class-balanced) as the validation set.
  `source_options` reach the sources of the user's own images (folder, image size, test share)."""
  if isinstance(spec, str):
    spec = parse_dataset_spec(spec)
  noise_lib.stream_seed(seed, 0)   # validates --seed early
  options = dataclasses.replace(source_options or sources.SourceOptions(), seed=int(seed))
  raw = sources.load_raw(spec.name, data_dir, dataset_file, options)
  sources.check_raw(raw, f"--dataset={spec}")   # labels in [0, K), 4-D uint8, matching shapes
  k = int(raw.num_classes)

  if raw.x_probe is not None:
    # The user's own clean probe set (npz arrays, probe/ folder, CSV rows): no holdout from train.
    probe_ids = np.arange(len(raw.y_probe), dtype=np.int64)
    train_ids = np.arange(len(raw.y_train), dtype=np.int64)
    x_probe, y_probe = raw.x_probe, raw.y_probe
    probe_from_file = True
  else:
    probe_ids, train_ids = probe_lib.split_probe(raw.y_train, k, probe_ratio, seed)
    x_probe, y_probe = raw.x_train[probe_ids], raw.y_train[probe_ids]
    probe_from_file = False

  given = raw.y_train[train_ids]
  x_train = raw.x_train[train_ids]
  labels_known = not sources.labels_as_given(spec.name)
  if raw.y_train_noisy is not None:   # real noisy labels next to the clean ones (CIFAR-N)
    y_train, y_clean = raw.y_train_noisy[train_ids], given
    corrupted, transition = y_train != y_clean, None
  elif noise_lib.get_model(spec.noise).per_example is not None:   # dependent, openset
    out = noise_lib.apply_example_noise(spec.noise, noise_lib.ExampleNoiseInput(
        dataset=spec.name, data_dir=data_dir, ratio=spec.ratio, num_classes=k, seed=seed,
        clean=given, source_ids=train_ids, images=x_train))
    y_train, y_clean, corrupted, transition = out.labels, given, out.corrupted, None
    x_train = out.images if out.images is not None else x_train
  elif spec.noise == "none" and not labels_known:
    y_train, y_clean, corrupted, transition = given, None, None, None
  else:
    noisy = noise_lib.corrupt_labels(given, spec.noise, spec.ratio, k, seed, spec.name)
    y_train, y_clean = noisy.labels, given
    corrupted, transition = noisy.corrupted, noisy.transition

  validation, keep = validation_lib.split_validation(y_train, k, validation_fraction, seed)
  held_out = {}
  if len(validation):
    held_out = dict(x_val=x_train[validation], y_val=y_train[validation].astype(np.int64),
                    validation_ids=train_ids[validation])
    x_train, y_train, train_ids = x_train[keep], y_train[keep], train_ids[keep]
    y_clean = None if y_clean is None else y_clean[keep]
    corrupted = None if corrupted is None else corrupted[keep]
  return NoisyDataset(
      **held_out,
      spec=spec, num_classes=k, image_shape=tuple(int(s) for s in raw.x_train.shape[1:]),
      x_train=x_train, y_train=y_train, y_train_clean=y_clean,
      corrupted=corrupted, train_ids=train_ids, transition=transition,
      x_probe=x_probe, y_probe=y_probe.astype(np.int64), probe_ids=probe_ids,
      x_test=raw.x_test, y_test=raw.y_test, class_names=raw.class_names, seed=int(seed),
      source_paths=raw.paths, skipped_paths=raw.skipped_paths or None,
      probe_ratio=None if probe_from_file else float(probe_ratio),
      probe_from_file=probe_from_file, vocabulary=raw.vocabulary)
