"""--dataset spec parsing: valid forms, every bad form a UserError naming --dataset, round trips."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import UserError
from datasets import noise as noise_lib
from datasets import sources
from datasets.sources import registry as source_registry
from datasets.spec import DatasetSpec, parse_dataset_spec


@pytest.mark.parametrize("text, name, noise, ratio", [
    ("cifar10_uniform_0.4", "cifar10", "uniform", 0.4),
    ("cifar100_uniform_0.8", "cifar100", "uniform", 0.8),
    ("cifar10_asymmetric_0.4", "cifar10", "asymmetric", 0.4),
    ("cifar100_asymmetric_0.2", "cifar100", "asymmetric", 0.2),
    ("fashion_mnist_symmetric_0.5", "fashion_mnist", "symmetric", 0.5),
    ("fashion_mnist_pairflip_0.45", "fashion_mnist", "pairflip", 0.45),
    ("cifar10_subset_pairflip_1", "cifar10_subset", "pairflip", 1.0),
    ("mnist_uniform_0", "mnist", "uniform", 0.0),
    ("digits_asymmetric_0.3", "digits", "asymmetric", 0.3),
    ("custom_uniform_0.2", "custom", "uniform", 0.2),
    ("digits", "digits", "none", 0.0),
    ("custom", "custom", "none", 0.0),
    ("cifar10_subset", "cifar10_subset", "none", 0.0),
    ("fashion_mnist", "fashion_mnist", "none", 0.0),
    ("mnist_none", "mnist", "none", 0.0),
    ("fashion_mnist_none", "fashion_mnist", "none", 0.0),
    ("cifar10_none_0", "cifar10", "none", 0.0),
    ("  cifar10_uniform_0.4 ", "cifar10", "uniform", 0.4),
])
def test_valid_forms(text, name, noise, ratio):
  spec = parse_dataset_spec(text)
  assert (spec.name, spec.noise, spec.ratio) == (name, noise, ratio)
  assert isinstance(spec.ratio, float)
  assert parse_dataset_spec(str(spec)) == spec


def test_canonical_text():
  assert str(parse_dataset_spec("cifar10_uniform_0.40")) == "cifar10_uniform_0.4"
  assert str(parse_dataset_spec("fashion_mnist_symmetric_.5")) == "fashion_mnist_symmetric_0.5"
  assert str(parse_dataset_spec("digits")) == "digits_none"
  assert str(parse_dataset_spec("custom")) == "custom_none"
  assert str(DatasetSpec("mnist", "pairflip", 0.25)) == "mnist_pairflip_0.25"


@pytest.mark.parametrize("text, must_mention", [
    ("cifar10_uniform_1.7", ["1.7", "[0, 1]"]),
    ("cifar10_uniform_-0.1", ["-0.1", "[0, 1]"]),
    ("cifar10_uniform_abc", ["abc", "not a number"]),
    ("cifar10_uniform_nan", ["nan", "not a number"]),
    ("imagenet_uniform_0.4", ["imagenet", "cifar10", "fashion_mnist", "digits", "custom"]),
    ("cifar10_gaussian_0.4", ["gaussian", "uniform", "symmetric", "pairflip", "asymmetric"]),
    ("mnist_foo", ["foo", "symmetric"]),
    ("cifar10_uniform", ["ratio", "cifar10_uniform_0.4"]),
    ("cifar10_0.4", ["noise type is missing", "uniform"]),
    ("cifar10_subset_0.4", ["noise type is missing"]),
    ("cifar10_none_0.3", ["none"]),
    ("fashion_mnist_asymmetric_0.4", ["asymmetric", "cifar10", "mnist", "cifar100"]),
    ("custom_asymmetric_0.4", ["asymmetric"]),
    ("cifar1O", ["cifar1O", "cifar10"]),
    ("", ["empty", "cifar10"]),
    ("   ", ["empty"]),
    ("cifar10_", ["malformed"]),
    ("_uniform_0.4", ["malformed"]),
    ("cifar10__0.4", ["malformed"]),
    ("CIFAR10_uniform_0.4", ["CIFAR10", "cifar10"]),
    ("cifar10_uniform_0.4_x", ["valid names"]),
])
def test_bad_forms(text, must_mention):
  with pytest.raises(UserError) as e:
    parse_dataset_spec(text)
  msg = str(e.value)
  assert "--dataset" in msg
  for word in must_mention:
    assert word in msg, (word, msg)


@pytest.mark.parametrize("args", [
    ("nope", "uniform", 0.1), ("mnist", "nope", 0.1), ("mnist", "uniform", 1.5),
    ("mnist", "none", 0.5), ("fashion_mnist", "asymmetric", 0.2),
])
def test_direct_construction_is_validated(args):
  with pytest.raises(UserError, match="--dataset"):
    DatasetSpec(*args)


def test_names_come_from_the_source_registry(monkeypatch):
  with pytest.raises(UserError):
    parse_dataset_spec("my_data_uniform_0.3")
  monkeypatch.setitem(source_registry._SOURCES, "my_data", lambda data_dir, dataset_file: None)
  spec = parse_dataset_spec("my_data_uniform_0.3")
  assert (spec.name, spec.noise, spec.ratio) == ("my_data", "uniform", 0.3)
  assert parse_dataset_spec("my_data") == DatasetSpec("my_data", "none", 0.0)
  with pytest.raises(UserError) as e:
    parse_dataset_spec("nothing_uniform_0.3")
  assert "my_data" in str(e.value)


def _supported_noises(name):
  out = [n for n in noise_lib.noise_names() if n != "none"]
  if name not in noise_lib.matrix.ASYMMETRIC_MAPS:
    out.remove("asymmetric")
  if name not in noise_lib.instance.OPENSET_DATASETS:
    out.remove("openset")
  return [] if sources.has_real_noise(name) else out   # real noisy labels take no synthetic noise


@st.composite
def specs(draw):
  name = draw(st.sampled_from(sources.source_names()))
  noise = draw(st.sampled_from(_supported_noises(name) + ["none"]))
  ratio = 0.0 if noise == "none" else draw(
      st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False))
  return DatasetSpec(name, noise, ratio)


@settings(max_examples=60, deadline=None)
@given(specs())
def test_round_trip_property(spec):
  text = str(spec)
  parsed = parse_dataset_spec(text)
  assert parsed == spec
  assert str(parsed) == text
