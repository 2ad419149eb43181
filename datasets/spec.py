"""`--dataset` spec text: `<name>_<noise>_<ratio>`, `<name>_none` or a bare `<name>`.

Names come from the source registry (datasets.sources) and noise types from the noise registry
(datasets.noise), so registering a source or a noise model makes it a valid spec at once.
The text is parsed from the right because names contain underscores (fashion_mnist_symmetric_0.5).
A family name (`tfds:<member>`) is any member, so its noise suffix is matched first:
`tfds:mnist_uniform_0.4` is tfds:mnist with uniform noise, `tfds:mnist_1` a member named mnist_1,
`tfds:imagenette/320px:1.0.0_symmetric_0.2` a config and version of a member with noise.
"""
from __future__ import annotations

import dataclasses
import math

from core.errors import UserError
from datasets import noise as noise_lib
from datasets import sources

FLAG = "--dataset"
FORMS = "<name>_<noise>_<ratio> (e.g. cifar10_uniform_0.4), <name>_none or <name>"
FAMILY_SEPARATOR = ":"


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  name: str        # source name, one of sources.source_names()
  noise: str       # one of noise.noise_names(): 'uniform', 'symmetric', 'pairflip', ...
  ratio: float     # in [0, 1]; 0.0 for 'none'

  def __post_init__(self):
    text = f"{self.name}_{self.noise}_{self.ratio}"
    _check_name(self.name, text)
    _check_noise(self.noise, text)
    ratio = _check_ratio(self.ratio, text)
    if self.noise == "none" and ratio != 0.0:
      raise UserError(f"{FLAG}={text}: noise 'none' takes no ratio (or 0)")
    noise_lib.check_supported(self.noise, self.name)
    if self.noise != "none" and sources.has_real_noise(self.name):
      raise UserError(f"{FLAG}={text}: {self.name} comes with real noisy labels and takes no "
                      f"synthetic noise; use --dataset={self.name}")
    object.__setattr__(self, "ratio", ratio)

  def __str__(self) -> str:
    if self.noise == "none":
      return f"{self.name}_none"
    return f"{self.name}_{self.noise}_{self.ratio!r}"   # repr: shortest text that round-trips


def _valid_names() -> str:
  return ", ".join(sources.source_names()
                   + [f"{p}:<name>[/<config>][:<version>]" for p in sources.family_names()])


def _valid_noises() -> str:
  return ", ".join(noise_lib.noise_names())


def _check_name(name, text):
  if not isinstance(name, str) or not sources.is_source_name(name):
    raise UserError(f"{FLAG}={text}: unknown dataset name {name!r}; valid names: "
                    f"{_valid_names()}. Forms: {FORMS}")


def _check_noise(noise, text):
  if noise not in noise_lib.noise_names():
    raise UserError(f"{FLAG}={text}: unknown noise type {noise!r}; valid noise types: "
                    f"{_valid_noises()}")


def _check_ratio(ratio, text) -> float:
  try:
    value = float(ratio) if not isinstance(ratio, bool) else math.nan
  except (TypeError, ValueError):
    value = math.nan
  if not math.isfinite(value):
    raise UserError(f"{FLAG}={text}: noise ratio {ratio!r} is not a number; give a number in "
                    "[0, 1], e.g. 0.4")
  if not 0.0 <= value <= 1.0:
    raise UserError(f"{FLAG}={text}: noise ratio {ratio!r} is outside the range [0, 1]")
  return value + 0.0   # -0.0 -> 0.0


def parse_dataset_spec(text: str) -> DatasetSpec:
  """Parses `--dataset`; every malformed value is a UserError naming the flag and what is valid."""
  if not isinstance(text, str) or not text.strip():
    raise UserError(f"{FLAG} is empty; give {FORMS}. Valid names: {_valid_names()}")
  text = text.strip()
  if FAMILY_SEPARATOR in text:
    return _parse_family_spec(text)
  names, noises = sources.source_names(), noise_lib.noise_names()
  if text in names:                                   # bare name: labels as given
    return DatasetSpec(text, "none", 0.0)
  if "" in text.split("_"):
    raise UserError(f"{FLAG}={text}: malformed (empty part between underscores); give {FORMS}. "
                    f"Valid names: {_valid_names()}")
  head, _, last = text.rpartition("_")
  if last in noises:                                  # <name>_<noise> without a ratio
    _check_name(head, text)
    if noise_lib.get_model(last).needs_ratio:
      raise UserError(f"{FLAG}={text}: noise {last!r} needs a ratio in [0, 1], e.g. "
                      f"{head}_{last}_0.4")
    return DatasetSpec(head, last, 0.0)
  if not head:
    raise UserError(f"{FLAG}={text}: unknown dataset name {text!r}; valid names: "
                    f"{_valid_names()}. Forms: {FORMS}")
  if head in names:                                   # <name>_<ratio> or <name>_<bad noise>
    if _is_number(last):
      raise UserError(f"{FLAG}={text}: the noise type is missing; give {head}_<noise>_{last} "
                      f"with <noise> one of {_valid_noises()}")
    _check_noise(last, text)
  name, _, noise = head.rpartition("_")
  if not name:
    # No underscore left: either a mistyped bare name or a malformed spec.
    raise UserError(f"{FLAG}={text}: unknown dataset name {text!r}; valid names: "
                    f"{_valid_names()}. Forms: {FORMS}")
  _check_name(name, text)
  _check_noise(noise, text)
  ratio = _check_ratio(last, text)
  return DatasetSpec(name, noise, ratio)


def _parse_family_spec(text: str) -> DatasetSpec:
  """`<prefix>:<member>[_<noise>[_<ratio>]]`: the longest noise suffix wins over the member name."""
  head, _, last = text.rpartition("_")
  for noise in sorted(noise_lib.noise_names(), key=len, reverse=True):
    if head and _is_number(last) and head.endswith("_" + noise):
      return DatasetSpec(head[:-len(noise) - 1], noise, _check_ratio(last, text))
    if text.endswith("_" + noise):
      name = text[:-len(noise) - 1]
      if noise_lib.get_model(noise).needs_ratio:
        raise UserError(f"{FLAG}={text}: noise {noise!r} needs a ratio in [0, 1], e.g. "
                        f"{name}_{noise}_0.4")
      return DatasetSpec(name, noise, 0.0)
  return DatasetSpec(text, "none", 0.0)


def _is_number(token: str) -> bool:
  try:
    float(token)
  except ValueError:
    return False
  return True
