"""The resolved settings of one run, as plain data, with the checks that make bad input a clear error.

`ieg.flags` fills a `RunConfig` from the command line; library users can build one directly.
Method hyper-parameters live in each method's own `Config` dataclass (see `methods/`).
"""
import dataclasses
import os
import typing
from typing import Any

from core import ranges
from core.errors import UserError

LR_SCHEDULES = ("cosine", "custom_step", "cosine_warmup", "exponential", "cosine_one", "constant",
                "coteaching_linear")
DISTRIBUTION_STRATEGIES = ("mirrored", "one_device", "multi_worker")
MODES = ("train", "evaluation", "report", "find_issues", "export", "predict")
OPTIMIZERS = ("momentum", "adam")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
IMAGE_CACHES = ("auto", "memory", "disk")  # where decoded folder/csv images are held (datasets.sources.own.decode)
IMAGE_CACHE_DIR = "image_cache"  # under --checkpoint_path unless --image_cache_dir is given  # Keras's policy names (see ieg/precision.py)
TRANSITIONS = ("known", "estimate")  # --transition: the synthetic noise's own matrix, or find_issues' estimate
ESTIMATE = "estimate"  # the value of an estimable method option (forget_rate) that reads find_issues' estimate
FIND_ISSUES_DIR = "find_issues"  # below the training run directory: --mode=find_issues' folds and results
_COUNT = ranges.Range(1, 10**12)  # steps and rows: at least one, and a bound far above any real run
# The allowed range of every numeric RunConfig field (method options declare theirs in their Config).
RANGES = {
    "max_iteration": _COUNT, "max_epoch": ranges.Range(1, 10**6), "batch_size": ranges.Range(1, 2**20),
    "val_batch_size": ranges.Range(1, 2**20), "learning_rate": ranges.positive(1e3),
    "momentum": ranges.FRACTION_BELOW_ONE, "decay_steps": _COUNT, "decay_rate": ranges.positive(1e3),
    "warmup_epochs": ranges.Range(0, 10**6), "cos_t_mul": ranges.positive(1e3), "cos_m_mul": ranges.positive(1e3),
    "weight_decay": ranges.Range(0.0, 1.0), "grad_clip_norm": ranges.positive(), "eval_freq": _COUNT,
    "restore_step": ranges.Range(0, 10**15), "seed": ranges.Range(0, 2**32 - 1),  # numpy's seed range
    "probe_dataset_hold_ratio": ranges.FRACTION_BELOW_ONE, "validation_fraction": ranges.Range(0.0, 0.5),
    "cross_val_folds": ranges.Range(2, 50),
}
# The user's own images (--dataset=folder / csv / tfds:<name>).
RANGES.update({"image_size": ranges.Range(0, 4096), "test_fraction": ranges.Range(0.0, 0.9, low_open=True)})
OPTIONAL = frozenset({"max_epoch", "weight_decay", "grad_clip_norm"})  # None: unset, the default applies


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """Everything `ieg.experiment` needs; names and defaults follow the original IEG flags."""
  dataset: str = "cifar100_uniform_0.8"
  method: str = "ieg"
  network_name: str = "wrn28-10"
  mode: str = "train"
  max_iteration: int = 200000
  max_epoch: int | None = None
  batch_size: int = 100
  val_batch_size: int = 100
  learning_rate: float = 0.1
  momentum: float = 0.9
  optimizer: str = "momentum"
  lr_schedule: str = "cosine"
  decay_steps: tuple[int, ...] = (500,)
  decay_rate: float = 0.1
  warmup_epochs: int = 0
  cos_t_mul: float = 1.5
  cos_m_mul: float = 0.9
  weight_decay: float | None = None
  grad_clip_norm: float | None = None
  eval_freq: int = 500
  checkpoint_path: str = "/tmp/ieg"
  restore_step: int = 0
  seed: int = 12345
  use_ema: bool = True
  probe_dataset_hold_ratio: float = 0.02
  validation_fraction: float = 0.0
  transition: str = "known"
  cross_val_folds: int = 5   # --mode=find_issues: folds, each scored by a model trained on the others
  aug_type: str = "autoaug"
  data_dir: str | None = None
  dataset_file: str | None = None
  distribution_strategy: str = "mirrored"
  deterministic: bool = False
  jit_compile: bool = False
  precision: str = "float32"  # Keras dtype policy: float32, mixed_bfloat16 or mixed_float16
  preset: str | None = None
  use_imagenet_as_eval: bool = False
  # The user's own images: --dataset=folder reads --dataset_dir; folder, csv and tfds:<name> resize
  # to --image_size, hold out --test_fraction when there is no test split, may skip bad files.
  dataset_dir: str | None = None
  image_size: int = 0
  test_fraction: float = 0.2
  skip_bad_images: bool = False
  # Decoded folder/csv images: in memory, or once to a file under image_cache_dir (default
  # <checkpoint_path>/image_cache) and read from there; 'auto' picks disk when memory is too small.
  image_cache: str = "auto"
  image_cache_dir: str | None = None
  method_options: dict[str, Any] = dataclasses.field(default_factory=dict)
  # Export and predict: a SavedModel at the end of training or from a checkpoint; a CSV of predictions.
  export_dir: str | None = None
  predict_input: str | None = None
  # Settings the network's training defaults supplied (name -> "network <name>"), saved in flags.json.
  defaults_from: dict[str, str] = dataclasses.field(default_factory=dict)

  def validate(self) -> "RunConfig":
    """Raises UserError naming the first bad setting; returns self for chaining."""
    _one_of("method", self.method, _method_names())
    _one_of("network_name", self.network_name, _network_names())
    _one_of("mode", self.mode, MODES)
    _one_of("lr_schedule", self.lr_schedule, LR_SCHEDULES)
    _one_of("distribution_strategy", self.distribution_strategy, DISTRIBUTION_STRATEGIES)
    _one_of("optimizer", self.optimizer, OPTIMIZERS)
    _one_of("transition", self.transition, TRANSITIONS)
    _one_of("precision", self.precision, PRECISIONS)
    _one_of("image_cache", self.image_cache, IMAGE_CACHES)
    if self.mode == "find_issues" and self.uses_noise_estimate:
      raise UserError("--mode=find_issues makes the noise estimate that 'estimate' reads: give numbers (or the "
                      "defaults) for this search, then train with 'estimate'")
    if not self.decay_steps:
      raise UserError("--decay_steps is empty: give positive step counts, e.g. 500 or 40000,60000")
    self.check_ranges()
    if self.lr_schedule == "custom_step" and list(self.decay_steps) != sorted(self.decay_steps):
      raise UserError(f"--decay_steps={_csv(self.decay_steps)} must be increasing for --lr_schedule=custom_step")
    if self.dataset_file is not None and not os.path.isfile(self.dataset_file):
      raise UserError(f"--dataset_file={self.dataset_file} does not exist: give the path of your data file "
                      "(.npz, or .csv for --dataset=csv)")
    from datasets import spec as spec_lib  # pylint: disable=g-import-not-at-top
    spec = spec_lib.parse_dataset_spec(self.dataset)
    _check_own_data(self, spec.name)
    from datasets.augment import strong_view  # pylint: disable=g-import-not-at-top
    _one_of("aug_type", self.aug_type, strong_view.AUG_TYPES)
    from ieg.serving import paths as serving_paths  # pylint: disable=g-import-not-at-top
    serving_paths.check(self.mode, self.export_dir, self.predict_input)
    return self

  def check_ranges(self) -> None:
    """Every numeric setting, and every numeric method option, inside its declared range."""
    for name, allowed in RANGES.items():
      value = getattr(self, name)
      for item in (value if isinstance(value, tuple) else (value,)):
        ranges.check(name, item, allowed, integer=_is_int_field(name), optional=name in OPTIONAL)
    fields = _method_option_fields()
    for name, value in self.method_options.items():
      field, kind = fields.get(name, (None, None))
      if field is not None and field.metadata.get("estimable") and value == ESTIMATE:
        continue
      if field is not None and "range" in field.metadata:
        ranges.check(name, value, field.metadata["range"], integer=kind is int, optional=field.default is None)

  @property
  def training_run_dir(self) -> str:
    """`<checkpoint_path>/<dataset>_p<probe ratio>/<network_name>/<method>`, as the original nests it."""
    # A TFDS config (tfds:imagenette/320px) names one folder, not two.
    return os.path.join(self.checkpoint_path, f"{self.dataset.replace('/', '-')}_p{self.probe_dataset_hold_ratio}",
                        self.network_name, self.method)

  @property
  def decoded_images_dir(self) -> str:
    """Where folder/csv images decoded to disk go: --image_cache_dir, or one folder that every run
    under --checkpoint_path shares (a later run on the same files reuses it)."""
    return self.image_cache_dir or os.path.join(self.checkpoint_path, IMAGE_CACHE_DIR)

  @property
  def run_dir(self) -> str:
    """The training run directory; --mode=find_issues works in its `find_issues/` sub-directory."""
    if self.mode == "find_issues":
      return os.path.join(self.training_run_dir, FIND_ISSUES_DIR)
    return self.training_run_dir

  @property
  def noise_estimate_path(self) -> str:
    """Where --mode=find_issues with these settings writes its noise estimate (read by the `estimate` options)."""
    return os.path.join(self.training_run_dir, FIND_ISSUES_DIR, "detection", "noise_estimate.json")

  @property
  def uses_noise_estimate(self) -> bool:
    return self.transition == ESTIMATE or ESTIMATE in self.method_options.values()

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


NOT_FLAGS = frozenset({"method_options", "defaults_from"})  # RunConfig fields that are not base flags


_NEEDED_FLAGS = {"dataset_file": "--dataset_file=<path to your .npz or .csv>",
                 "dataset_dir": "--dataset_dir=<folder with train/<class name>/>"}


def _check_own_data(config: "RunConfig", name: str) -> None:
  """The flag a source of the user's own data needs ('custom': --dataset_file, 'folder': --dataset_dir)."""
  from datasets import sources  # pylint: disable=g-import-not-at-top
  needed = sources.required_flag(name)
  if needed and not getattr(config, needed):
    raise UserError(f"--dataset={config.dataset} reads your own data: also pass {_NEEDED_FLAGS[needed]}")
  if config.dataset_dir is not None and not os.path.isdir(config.dataset_dir):
    raise UserError(f"--dataset_dir={config.dataset_dir} does not exist or is not a folder: give the folder "
                    "that holds train/<class name>/ image folders")


def _method_names() -> list[str]:
  import methods  # pylint: disable=g-import-not-at-top
  return methods.method_names()


def _is_int_field(name: str) -> bool:
  hint = {f.name: f.type for f in dataclasses.fields(RunConfig)}[name]
  return "int" in str(hint)


def _method_option_fields() -> dict[str, tuple[dataclasses.Field, type]]:
  """(field, its type without None) of every method's Config by name; a shared name is one option."""
  import methods  # pylint: disable=g-import-not-at-top
  fields = {}
  for cls in methods.method_classes().values():
    hints = typing.get_type_hints(cls.Config)
    for field in dataclasses.fields(cls.Config):
      kinds = [t for t in typing.get_args(hints[field.name]) if t is not type(None)] or [hints[field.name]]
      fields.setdefault(field.name, (field, kinds[0]))
  return fields


def _network_names() -> list[str]:
  import networks  # pylint: disable=g-import-not-at-top
  return networks.network_names()


def _csv(values) -> str:
  return ",".join(str(v) for v in values)


def _one_of(flag: str, value: str, valid) -> None:
  if value not in valid:
    raise UserError(f"--{flag}={value} is not known: choose one of {', '.join(valid)}")


