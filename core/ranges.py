"""The allowed range of a numeric setting, declared once beside it and checked before a run starts.

A value outside its range would surface much later as a traceback from deep inside numpy or
TensorFlow (a seed of -1, a ratio of 1.7, a batch of 10**12 rows); the check names the setting,
the value and the range instead.
"""
import dataclasses
import math

from core.errors import UserError


@dataclasses.dataclass(frozen=True)
class Range:
  """[low, high], either end open when `low_open` / `high_open`; infinite ends stay open."""
  low: float = -math.inf
  high: float = math.inf
  low_open: bool = False
  high_open: bool = False

  def __contains__(self, value) -> bool:
    if value is None or isinstance(value, bool) or not math.isfinite(value):  # NaN and +-inf never fit
      return False
    above = value > self.low if self.low_open else value >= self.low
    below = value < self.high if self.high_open else value <= self.high
    return above and below

  def __str__(self) -> str:
    left = "(" if self.low_open or self.low == -math.inf else "["
    right = ")" if self.high_open or self.high == math.inf else "]"
    return f"{left}{_bound(self.low)}, {_bound(self.high)}{right}"


def _bound(value: float) -> str:
  if math.isinf(value):
    return "inf" if value > 0 else "-inf"
  return str(int(value)) if float(value).is_integer() else f"{value:g}"


def at_least(low: float) -> Range:
  return Range(low=low)


def positive(high: float = math.inf) -> Range:
  return Range(low=0.0, high=high, low_open=True)


FRACTION = Range(0.0, 1.0)  # [0, 1]
FRACTION_BELOW_ONE = Range(0.0, 1.0, high_open=True)  # [0, 1)
NON_NEGATIVE = Range(low=0.0)
FINITE = Range()


def check(flag: str, value, allowed: Range, *, integer: bool, optional: bool = False) -> None:
  """UserError `--flag=value is out of range: use ... in [a, b]` unless `value` lies in `allowed`."""
  if value is None and optional:
    return
  if value in allowed:
    return
  kind = "an integer" if integer else "a number"
  unset = " (or leave it unset)" if optional else ""
  raise UserError(f"--{flag}={value} is out of range: use {kind} in {allowed}{unset}")
