"""Every preset of every method is a valid run: it selects the method that declares it, sets only
known flags, and its values pass the run's validation and the method's own Config."""
import dataclasses

import pytest

import methods
from ieg import presets
from ieg.config import NOT_FLAGS, RunConfig

RUN_FIELDS = {f.name for f in dataclasses.fields(RunConfig)} - NOT_FLAGS


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


# ----- precedence: command line > preset > network's training defaults > flag default ------------

def parsed_config(*argv):
  from absl import flags as absl_flags  # pylint: disable=g-import-not-at-top
  from ieg import flags as ieg_flags  # pylint: disable=g-import-not-at-top
  ieg_flags.define_flags()
  absl_flags.FLAGS.unparse_flags()
  absl_flags.FLAGS(["ieg", *argv])
  try:
    return ieg_flags.read_config()
  finally:
    absl_flags.FLAGS.unparse_flags()


def test_network_training_defaults_fill_unset_flags_and_are_recorded():
  import networks  # pylint: disable=g-import-not-at-top
  defaults = networks.training_defaults("mnist_cnn")
  assert defaults["grad_clip_norm"] == 1.0
  config = parsed_config("--method=ieg", "--network_name=mnist_cnn")
  assert config.grad_clip_norm == defaults["grad_clip_norm"]
  assert config.method_options["ce_factor"] == defaults["ce_factor"]
  assert config.defaults_from == {name: "network mnist_cnn" for name in defaults}
  assert config.learning_rate == RunConfig().learning_rate


def test_the_command_line_beats_the_network_defaults():
  config = parsed_config("--method=ieg", "--network_name=mnist_cnn", "--grad_clip_norm=5", "--ce_factor=3")
  assert (config.grad_clip_norm, config.method_options["ce_factor"]) == (5.0, 3.0)
  assert "grad_clip_norm" not in config.defaults_from and "ce_factor" not in config.defaults_from


def test_a_preset_beats_the_network_defaults():
  name = next(n for n, v in presets.all_presets().items()
              if v.get("network_name") == "mnist_cnn" and "grad_clip_norm" in v)
  config = parsed_config(f"--preset={name}")
  assert config.grad_clip_norm == presets.preset_values(name)["grad_clip_norm"]
  assert "grad_clip_norm" not in config.defaults_from


def test_networks_with_batch_norm_keep_the_framework_defaults():
  config = parsed_config("--method=ieg", "--network_name=resnet29")
  assert config.defaults_from == {} and config.grad_clip_norm is None
  assert config.method_options["ce_factor"] == 5.0
