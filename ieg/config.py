"""The resolved settings of one run, as plain data, with the checks that make bad input a clear error.

`ieg.flags` fills a `RunConfig` from the command line; library users can build one directly.
Method hyper-parameters live in each method's own `Config` dataclass (see `methods/`).
"""
import dataclasses
import math
import os
from typing import Any

from core.errors import UserError

LR_SCHEDULES = ("cosine", "custom_step", "cosine_warmup", "exponential", "cosine_one", "constant",
                "coteaching_linear")
DISTRIBUTION_STRATEGIES = ("mirrored", "one_device", "multi_worker")
MODES = ("train", "evaluation", "report")
OPTIMIZERS = ("momentum", "adam")


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
  aug_type: str = "autoaug"
  data_dir: str | None = None
  dataset_file: str | None = None
  distribution_strategy: str = "mirrored"
  deterministic: bool = False
  jit_compile: bool = False
  preset: str | None = None
  use_imagenet_as_eval: bool = False
  method_options: dict[str, Any] = dataclasses.field(default_factory=dict)
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
    for name in ("batch_size", "val_batch_size", "max_iteration", "eval_freq"):
      _positive(name, getattr(self, name))
    if self.max_epoch is not None:
      _positive("max_epoch", self.max_epoch)
    _positive("learning_rate", self.learning_rate)
    _in_unit_interval("probe_dataset_hold_ratio", self.probe_dataset_hold_ratio)
    _in_unit_interval("momentum", self.momentum)
    if not self.decay_steps or any(s <= 0 for s in self.decay_steps):
      raise UserError(f"--decay_steps={_csv(self.decay_steps)} is invalid: give positive step counts, e.g. 500 or 40000,60000")
    if self.lr_schedule == "custom_step" and list(self.decay_steps) != sorted(self.decay_steps):
      raise UserError(f"--decay_steps={_csv(self.decay_steps)} must be increasing for --lr_schedule=custom_step")
    if self.weight_decay is not None and not 0 <= self.weight_decay < math.inf:  # NaN fails too
      raise UserError(f"--weight_decay={self.weight_decay} is invalid: give a value >= 0 (or leave it unset for the network's default)")
    if self.grad_clip_norm is not None and not 0 < self.grad_clip_norm < math.inf:
      raise UserError(f"--grad_clip_norm={self.grad_clip_norm} is invalid: give a positive norm or leave it unset")
    if self.warmup_epochs < 0:
      raise UserError(f"--warmup_epochs={self.warmup_epochs} is invalid: give 0 or more epochs")
    if self.restore_step < 0:
      raise UserError(f"--restore_step={self.restore_step} is invalid: give 0 (latest) or a saved step")
    if self.dataset_file is not None and not os.path.isfile(self.dataset_file):
      raise UserError(f"--dataset_file={self.dataset_file} does not exist: give the path of an .npz file")
    from datasets import spec as spec_lib  # pylint: disable=g-import-not-at-top
    spec = spec_lib.parse_dataset_spec(self.dataset)
    if spec.name == "custom" and not self.dataset_file:
      raise UserError(f"--dataset={self.dataset} reads your own data: also pass --dataset_file=<path to .npz>")
    from datasets.augment import strong_view  # pylint: disable=g-import-not-at-top
    _one_of("aug_type", self.aug_type, strong_view.AUG_TYPES)
    return self

  @property
  def run_dir(self) -> str:
    """`<checkpoint_path>/<dataset>_p<probe ratio>/<network_name>/<method>`, as the original nests it."""
    return os.path.join(self.checkpoint_path, f"{self.dataset}_p{self.probe_dataset_hold_ratio}",
                        self.network_name, self.method)

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


NOT_FLAGS = frozenset({"method_options", "defaults_from"})  # RunConfig fields that are not base flags


def _method_names() -> list[str]:
  import methods  # pylint: disable=g-import-not-at-top
  return methods.method_names()


def _network_names() -> list[str]:
  import networks  # pylint: disable=g-import-not-at-top
  return networks.network_names()


def _csv(values) -> str:
  return ",".join(str(v) for v in values)


def _one_of(flag: str, value: str, valid) -> None:
  if value not in valid:
    raise UserError(f"--{flag}={value} is not known: choose one of {', '.join(valid)}")


def _positive(flag: str, value) -> None:
  if value is None or not 0 < value < math.inf:  # NaN and infinity fail too
    raise UserError(f"--{flag}={value} is invalid: it must be a positive number")


def _in_unit_interval(flag: str, value: float) -> None:
  if not 0.0 <= value <= 1.0:
    raise UserError(f"--{flag}={value} is outside [0, 1]: give a fraction such as 0.02")
