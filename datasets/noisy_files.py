"""Assembly for streamed image-file datasets (WebVision, Clothing1M): labels in memory, pixels on disk.

`FileNoisyDataset` answers the same questions as `noisy.NoisyDataset` for the run (sizes, labels,
probe, noise report, noise file) but holds `ImageFiles` where the other holds image arrays; the
experiment picks the tf.data pipeline by `kind`. Their labels are real noise, used as given. The
clean probe set is the one shipped with the data (IEG's WebVision probe TFRecord) or a
class-balanced draw from the data's clean-labelled training images (Clothing1M's clean train
list), taken as `probe.split_probe` takes it from CIFAR.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from core.errors import UserError
from datasets import noisy as noisy_lib
from datasets import probe as probe_lib
from datasets import sources
from datasets.sources import image_files
from datasets.spec import DatasetSpec, parse_dataset_spec


@dataclasses.dataclass
class FileNoisyDataset(noisy_lib.DatasetSizes):
  spec: DatasetSpec
  num_classes: int
  image_shape: tuple[int, int, int]   # the network input: (size, size, 3)
  train: image_files.ImageFiles
  y_train: np.ndarray                 # int64 [N] labels as given (noisy)
  train_ids: np.ndarray               # int64 [N] rows of the source's training list
  probe: image_files.ImageFiles | None
  y_probe: np.ndarray                 # int64 [P] clean; empty without a probe set
  probe_ids: np.ndarray               # rows of the probe file, or of the clean training list
  test: image_files.ImageFiles
  y_test: np.ndarray
  class_names: list[str] | None = None
  # A labelled split apart from the test set (Clothing1M's clean validation list): the epoch is chosen on it.
  validation: image_files.ImageFiles | None = None
  seed: int | None = None
  probe_ratio: float | None = None
  probe_from_file: bool = False
  train_view: str = "inception_crop"
  examples_per_class_per_epoch: int | None = None
  # Real noise: the clean training labels, the corruption mask and T are unknown.
  y_train_clean: None = None
  corrupted: None = None
  transition: None = None
  skipped_paths: None = None

  kind = "image_files"
  network_options: dict = dataclasses.field(default_factory=dict)

  # The label summaries and the noise file only read labels: the in-memory dataset's code serves.
  noise_report = noisy_lib.NoisyDataset.noise_report
  save_noise_file = noisy_lib.NoisyDataset.save_noise_file
  realised_noise_rate = noisy_lib.NoisyDataset.realised_noise_rate
  _class_label = noisy_lib.NoisyDataset._class_label  # pylint: disable=protected-access

  @property
  def y_val(self) -> np.ndarray | None:
    return None if self.validation is None else self.validation.labels

  @property
  def validation_ids(self) -> np.ndarray | None:
    return None if self.validation is None else np.arange(len(self.validation), dtype=np.int64)

  @property
  def num_validation(self) -> int:
    return 0 if self.validation is None else len(self.validation)

  def validation_as_test(self) -> FileNoisyDataset:
    """This dataset with the validation split in the test split's place, for the test pipeline."""
    return dataclasses.replace(self, test=self.validation, y_test=self.validation.labels)

  @property
  def examples_per_epoch(self) -> int:
    """Examples in one pass: all of them, or the class-balanced draw of every epoch."""
    if not self.examples_per_class_per_epoch:
      return self.num_train
    counts = np.bincount(self.y_train, minlength=self.num_classes)
    return int(np.minimum(counts, self.examples_per_class_per_epoch).sum())


def build_file_dataset(spec: DatasetSpec | str, *, data_dir: str | None, probe_ratio: float,
                       seed: int, use_imagenet_as_eval: bool = False) -> FileNoisyDataset:
  """Lists the files of `spec.name`, attaches the clean probe set when `probe_ratio` > 0."""
  if isinstance(spec, str):
    spec = parse_dataset_spec(spec)
  if sources.source_kind(spec.name) != sources.KIND_IMAGE_FILES:
    raise ValueError(f"{spec.name} is not a streamed image-file dataset")
  source = sources.load_file_source(spec.name, data_dir, use_imagenet_as_eval=use_imagenet_as_eval)
  k = source.num_classes
  empty = np.zeros(0, np.int64)
  probe, y_probe, probe_ids, from_file = None, empty, empty, False
  if probe_ratio > 0:
    if source.probe is not None:
      probe, y_probe = source.probe, source.probe.labels
      probe_ids, from_file = np.arange(len(probe), dtype=np.int64), True
    elif source.clean_train is not None:
      probe_ids, _ = probe_lib.split_probe(source.clean_train.labels, k, probe_ratio, seed)
      probe = source.clean_train.subset(probe_ids)
      y_probe = probe.labels
    else:
      raise UserError(f"--dataset={spec}: --probe_dataset_hold_ratio={probe_ratio:g} asks for a clean "
                      f"probe set, which this data does not have. {source.probe_hint} Or pass "
                      "--probe_dataset_hold_ratio=0 for methods without a probe set.")
  size = int(source.image_size)
  return FileNoisyDataset(
      spec=spec, num_classes=k, image_shape=(size, size, 3), train=source.train,
      y_train=source.train.labels, train_ids=np.arange(len(source.train), dtype=np.int64),
      probe=probe, y_probe=y_probe, probe_ids=probe_ids, test=source.test, y_test=source.test.labels,
      class_names=source.class_names, seed=int(seed),
      # WebVision's validation split is its test split: choosing the epoch on it would be choosing on the test.
      validation=source.val if source.val is not None and source.val is not source.test else None,
      probe_ratio=None if from_file else float(probe_ratio),
      probe_from_file=from_file, train_view=source.train_view,
      examples_per_class_per_epoch=source.examples_per_class_per_epoch)
