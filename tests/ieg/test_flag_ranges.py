"""Every numeric flag has one declared range, checked before anything runs: a value just outside it
is one clear error naming the flag, the value and the range; a value inside passes."""
import dataclasses
import math
import typing

import pytest

from core import ranges
from core.errors import UserError
from ieg import config as config_lib
from ieg import flags as ieg_flags
from ieg.config import RunConfig

NUMBER_TYPES = (int, float)


def _plain(hint):
  args = [a for a in typing.get_args(hint) if a is not type(None)]
  if typing.get_origin(hint) is tuple:
    return args[0]
  return args[0] if args else hint


def numeric_run_fields() -> dict[str, type]:
  hints = typing.get_type_hints(RunConfig)
  return {f.name: _plain(hints[f.name]) for f in dataclasses.fields(RunConfig)
          if _plain(hints[f.name]) in NUMBER_TYPES and f.name not in config_lib.NOT_FLAGS}


def numeric_method_options() -> dict[str, tuple[dataclasses.Field, type]]:
  return {name: (field, _plain(field.type)) for name, field in ieg_flags.method_option_fields().items()
          if _plain(field.type) in NUMBER_TYPES}


def outside(allowed: ranges.Range, integer: bool) -> list:
  """Values just beyond each finite end of `allowed`, and NaN for a float."""
  values = []
  if math.isfinite(allowed.low):
    values.append(allowed.low if allowed.low_open else (allowed.low - 1 if integer else math.nextafter(allowed.low, -math.inf)))
  if math.isfinite(allowed.high):
    values.append(allowed.high if allowed.high_open else (allowed.high + 1 if integer else math.nextafter(allowed.high, math.inf)))
  if not integer:
    values += [math.nan, math.inf]
  return [int(v) if integer and math.isfinite(v) else v for v in values]


def inside(allowed: ranges.Range, integer: bool):
  low = allowed.low if math.isfinite(allowed.low) else -1e3
  high = allowed.high if math.isfinite(allowed.high) else low + 2e3
  value = (low + high) / 2
  return int(round(value)) if integer else value


def test_every_numeric_flag_declares_a_range():
  missing = [n for n in numeric_run_fields() if n not in config_lib.RANGES]
  missing += [n for n, (field, _) in numeric_method_options().items() if "range" not in field.metadata]
  assert not missing, f"numeric flags without a declared range: {missing}"
  assert "decay_steps" in config_lib.RANGES


def test_the_defaults_lie_inside_their_ranges():
  RunConfig().check_ranges()
  for name, (field, _) in numeric_method_options().items():
    if field.default is not None:
      assert field.default in field.metadata["range"], name


def _run_cases():
  for name, kind in numeric_run_fields().items():
    allowed = config_lib.RANGES[name]
    for value in outside(allowed, kind is int):
      yield pytest.param(name, value, inside(allowed, kind is int), id=f"{name}={value}")
  yield pytest.param("decay_steps", 0, 100, id="decay_steps=0")


@pytest.mark.parametrize("name, bad, good", list(_run_cases()))
def test_run_flag_out_of_range_is_one_clear_error(name, bad, good):
  value = (lambda v: (v,)) if name == "decay_steps" else (lambda v: v)
  with pytest.raises(UserError) as error:
    dataclasses.replace(RunConfig(), **{name: value(bad)}).check_ranges()
  message = str(error.value)
  assert message.startswith(f"--{name}={bad} is out of range: use a") and str(config_lib.RANGES[name]) in message
  assert "\n" not in message
  dataclasses.replace(RunConfig(), **{name: value(good)}).check_ranges()


def _option_cases():
  for name, (field, kind) in numeric_method_options().items():
    allowed = field.metadata["range"]
    for value in outside(allowed, kind is int):
      yield pytest.param(name, value, inside(allowed, kind is int), id=f"{name}={value}")


@pytest.mark.parametrize("name, bad, good", list(_option_cases()))
def test_method_option_out_of_range_is_one_clear_error(name, bad, good):
  with pytest.raises(UserError, match=f"^--{name}=.* is out of range"):
    RunConfig(method_options={name: bad}).check_ranges()
  RunConfig(method_options={name: good}).check_ranges()


def test_unset_optional_settings_pass():
  RunConfig(weight_decay=None, grad_clip_norm=None, max_epoch=None, method_options={"forget_rate": None}).check_ranges()


@pytest.mark.parametrize("argv, message", [
    (["--seed=-1"], "--seed=-1 is out of range: use an integer in [0, 4294967295]"),
    (["--seed=99999999999"], "--seed=99999999999 is out of range: use an integer in [0, 4294967295]"),
    (["--probe_dataset_hold_ratio=1.7"], "--probe_dataset_hold_ratio=1.7 is out of range: use a number in [0, 1)"),
    (["--method=ieg", "--meta_momentum=1"], "--meta_momentum=1.0 is out of range: use a number in [0, 1)"),
    (["--decay_steps=500,0"], "--decay_steps=0 is out of range"),
])
def test_the_command_line_is_checked_when_parsed(argv, message):
  from absl import flags as absl_flags  # pylint: disable=g-import-not-at-top
  ieg_flags.define_flags()
  absl_flags.FLAGS.unparse_flags()
  absl_flags.FLAGS(["ieg", *argv])
  try:
    with pytest.raises(UserError) as error:
      ieg_flags.read_config().validate()
  finally:
    absl_flags.FLAGS.unparse_flags()
  assert str(error.value).startswith(message)
