"""Every preset of every method is a valid run: it selects the method that declares it, sets only
known flags, and its values pass the run's validation and the method's own Config."""
import dataclasses

import pytest

import methods
from ieg import presets
from ieg.config import RunConfig

RUN_FIELDS = {f.name for f in dataclasses.fields(RunConfig)} - {"method_options"}


def split_preset(name: str) -> tuple[type, RunConfig, dict]:
  """(method class, RunConfig of the preset, the method's options) for preset `name`."""
  values = presets.preset_values(name)
  cls = methods.method_classes()[values["method"]]
  options = {k: v for k, v in values.items() if k not in RUN_FIELDS}
  config = RunConfig(**{k: v for k, v in values.items() if k in RUN_FIELDS}, method_options=options)
  return cls, config, options


def test_every_method_of_the_papers_has_presets():
  owners = {values["method"] for values in presets.all_presets().values()}
  assert {"sigua", "sln", "absgd", "prl"} <= owners


@pytest.mark.parametrize("name", sorted(presets.all_presets()))
def test_every_preset_is_a_valid_run(name):
  cls, config, options = split_preset(name)
  assert name in cls.PRESETS  # a preset lives in the file of the method it selects
  assert set(options) <= {f.name for f in dataclasses.fields(cls.Config)}, "options of another method"
  config.validate()
  cls.Config(**options)
