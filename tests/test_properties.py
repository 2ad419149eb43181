"""Property-based checks over many random inputs, each against an independent oracle.

Complements the examples in test_spec / test_noise / test_probe: arbitrary `--dataset` text, whole
random RunConfigs, realised noise rates for every noise model and class balance, the full
probe-then-noise assembly on imbalanced classes, and the fit segments of a resumed run.
"""
import contextlib
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import methods
import networks
from core.errors import UserError
from datasets import noise as noise_lib
from datasets import noisy as noisy_lib
from datasets import sources
from datasets.augment import strong_view
from datasets.probe import probe_size
from datasets.sources import registry as source_registry
from datasets.spec import DatasetSpec, parse_dataset_spec
from ieg import config as config_lib
from ieg import experiment
from ieg.config import RunConfig

# ----- --dataset text ------------------------------------------------------------------------------

NUMBERS = ["0", "1", "0.4", ".5", "1.0", "0.40", "1e-1", "-0.1", "1.5", "nan", "inf", "abc", "0x1", ""]
TOKENS = sources.source_names() + noise_lib.noise_names() + NUMBERS + ["CIFAR10", "subset", "x", " ", "tfds:mnist",
                                                                       "tfds:", ":"]


def accepted_forms(spec: DatasetSpec) -> set[str]:
  """What the stripped text of an accepted spec may be, built independently of the parser."""
  forms = {spec.name} if spec.noise == "none" else set()
  forms.add(f"{spec.name}_{spec.noise}")
  return forms


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.lists(st.sampled_from(TOKENS), max_size=5).map("_".join), st.text(max_size=25)))
def test_dataset_text_is_parsed_or_refused_by_name(text):
  try:
    spec = parse_dataset_spec(text)
  except UserError as e:
    assert "--dataset" in str(e)
    return
  stripped = text.strip()
  assert sources.is_source_name(spec.name) and spec.noise in noise_lib.noise_names()
  assert 0.0 <= spec.ratio <= 1.0
  head, _, last = stripped.rpartition("_")
  numeric = head == f"{spec.name}_{spec.noise}" and float(last) == spec.ratio
  assert stripped in accepted_forms(spec) or numeric, (text, spec)
  assert parse_dataset_spec(str(spec)) == spec


# ----- RunConfig.validate ----------------------------------------------------------------------

GOOD_DATASETS = ["digits_uniform_0.4", "cifar10_asymmetric_0.2", "mnist", "fashion_mnist_pairflip_0.45"]
BAD_DATASETS = ["digits_uniform_1.5", "imagenet_uniform_0.4", "mnist_uniform", "custom", ""]
NOT_POSITIVE = st.sampled_from([0.0, -0.5, math.nan, math.inf, -math.inf])


def field_choices(tmp_file: str) -> dict[str, tuple]:
  """Per checked setting: (strategy of valid values, strategy of invalid values)."""
  return {
      "dataset": (st.sampled_from(GOOD_DATASETS), st.sampled_from(BAD_DATASETS)),
      "method": (st.sampled_from(methods.method_names()), st.just("magic")),
      "network_name": (st.sampled_from(networks.network_names()), st.just("vgg99")),
      "mode": (st.sampled_from(config_lib.MODES), st.just("eval")),
      "max_iteration": (st.integers(1, 10**6), st.integers(-2, 0)),
      "max_epoch": (st.one_of(st.none(), st.integers(1, 500)), st.integers(-2, 0)),
      "batch_size": (st.integers(1, 512), st.integers(-2, 0)),
      "val_batch_size": (st.integers(1, 512), st.integers(-2, 0)),
      "learning_rate": (st.floats(1e-6, 10.0), NOT_POSITIVE),
      "momentum": (st.floats(0.0, 1.0, exclude_max=True), st.sampled_from([-0.1, 1.0, 1.01, math.nan, math.inf])),
      "optimizer": (st.sampled_from(config_lib.OPTIMIZERS), st.just("sgdw")),
      "lr_schedule": (st.sampled_from(config_lib.LR_SCHEDULES), st.just("linear")),
      "decay_steps": (st.lists(st.integers(1, 10**5), min_size=1, max_size=3).map(sorted),
                      st.one_of(st.just([]), st.lists(st.integers(-5, 0), min_size=1, max_size=2),
                                st.just([600, 500]))),  # decreasing: wrong for custom_step only
      "weight_decay": (st.one_of(st.none(), st.floats(0.0, 1e-2)), st.sampled_from([-1e-4, math.nan, math.inf])),
      "grad_clip_norm": (st.one_of(st.none(), st.floats(1e-3, 100.0)), NOT_POSITIVE),
      "warmup_epochs": (st.integers(0, 5), st.integers(-3, -1)),
      "eval_freq": (st.integers(1, 1000), st.integers(-2, 0)),
      "restore_step": (st.integers(0, 10**5), st.integers(-3, -1)),
      "probe_dataset_hold_ratio": (st.floats(0.0, 1.0, exclude_max=True), st.sampled_from([-0.1, 1.0, 1.5, math.nan])),
      "aug_type": (st.sampled_from(list(strong_view.AUG_TYPES)), st.just("magic")),
      "dataset_file": (st.sampled_from([None, tmp_file]), st.just(tmp_file + ".missing")),
      "distribution_strategy": (st.sampled_from(config_lib.DISTRIBUTION_STRATEGIES), st.just("tpu")),
      "image_size": (st.integers(0, 4096), st.sampled_from([-1, 4097])),
      "test_fraction": (st.floats(0.0, 0.9, exclude_min=True), st.sampled_from([0.0, -0.1, 0.95, math.nan])),
      # --mode=export needs a folder that is new, empty or a previous export (a file is none of these);
      # --mode=predict an existing .npz/.csv/folder.
      "export_dir": (st.sampled_from([None, tmp_file + ".export"]), st.just(tmp_file)),
      "predict_input": (st.sampled_from([None, tmp_file]), st.just(tmp_file + ".missing")),
  }


@st.composite
def run_configs(draw, tmp_file: str, broken: set[str] | None = None):
  """A RunConfig whose `broken` settings (default: zero to three random ones) take invalid values."""
  choices = field_choices(tmp_file)
  if broken is None:
    broken = draw(st.sets(st.sampled_from(sorted(choices)), max_size=3))
  values = {name: draw(bad if name in broken else good) for name, (good, bad) in choices.items()}
  return RunConfig(**{**values, "decay_steps": tuple(values["decay_steps"])})


def invalid_settings(c: RunConfig) -> set[str]:
  """The flags an independent reading of the documented rules finds invalid."""
  finite = math.isfinite
  bad = {name for name, ok in [
      ("dataset", c.dataset in GOOD_DATASETS or (c.dataset == "custom" and c.dataset_file is not None)),
      ("method", c.method in methods.method_names()),
      ("network_name", c.network_name in networks.network_names()),
      ("mode", c.mode in config_lib.MODES),
      ("lr_schedule", c.lr_schedule in config_lib.LR_SCHEDULES),
      ("distribution_strategy", c.distribution_strategy in config_lib.DISTRIBUTION_STRATEGIES),
      ("optimizer", c.optimizer in config_lib.OPTIMIZERS),
      ("aug_type", c.aug_type in strong_view.AUG_TYPES),
      ("batch_size", c.batch_size > 0), ("val_batch_size", c.val_batch_size > 0),
      ("max_iteration", c.max_iteration > 0), ("eval_freq", c.eval_freq > 0),
      ("max_epoch", c.max_epoch is None or c.max_epoch > 0),
      ("learning_rate", finite(c.learning_rate) and c.learning_rate > 0),
      ("momentum", 0.0 <= c.momentum < 1.0),  # 1 never decays: documented [0, 1)
      ("probe_dataset_hold_ratio", 0.0 <= c.probe_dataset_hold_ratio < 1.0),  # 1 leaves no training set
      ("decay_steps", bool(c.decay_steps) and min(c.decay_steps) > 0
       and (c.lr_schedule != "custom_step" or list(c.decay_steps) == sorted(c.decay_steps))),
      ("weight_decay", c.weight_decay is None or (finite(c.weight_decay) and c.weight_decay >= 0)),
      ("grad_clip_norm", c.grad_clip_norm is None or (finite(c.grad_clip_norm) and c.grad_clip_norm > 0)),
      ("warmup_epochs", c.warmup_epochs >= 0),
      ("restore_step", c.restore_step >= 0),
      ("dataset_file", c.dataset_file is None or not c.dataset_file.endswith(".missing")),
      ("image_size", 0 <= c.image_size <= 4096),
      ("test_fraction", 0.0 < c.test_fraction <= 0.9),  # (0, 0.9]: some test, most left to train on
      ("export_dir", (c.mode != "export" or c.export_dir is not None)
       and not (c.mode in ("train", "export", "find_issues") and c.export_dir is not None
                and c.export_dir.endswith(".npz"))),  # the modes that write an export refuse a file
      ("predict_input", c.mode != "predict" or (c.predict_input is not None
                                                and not c.predict_input.endswith(".missing"))),
  ] if not ok}
  return bad


def check_validate(config: RunConfig) -> None:
  bad = invalid_settings(config)
  try:
    config.validate()
  except UserError as e:
    named = set(re.findall(r"--([a-z_0-9]+)", str(e)))
    assert named & bad, (str(e), bad)
    assert "\n" not in str(e)
    return
  assert not bad, bad


def test_validate_against_the_rules(tmp_path):
  data_file = str(tmp_path / "data.npz")
  open(data_file, "wb").close()

  @settings(max_examples=120, deadline=None)
  @given(run_configs(data_file))
  def check(config):
    check_validate(config)

  check()  # pylint: disable=no-value-for-parameter


@pytest.mark.parametrize("field", sorted(field_choices("")))
def test_validate_names_each_single_mistake(tmp_path, field):
  data_file = str(tmp_path / "data.npz")
  open(data_file, "wb").close()

  @settings(max_examples=12, deadline=None)
  @given(run_configs(data_file, {field}))
  def check(config):
    check_validate(config)

  check()  # pylint: disable=no-value-for-parameter


def test_validate_accepts_the_defaults_and_the_custom_form(tmp_path):
  data_file = tmp_path / "data.npz"
  data_file.write_bytes(b"")
  assert RunConfig().validate()
  assert RunConfig(dataset="custom_uniform_0.2", dataset_file=str(data_file)).validate()


# ----- noise: realised rates ----------------------------------------------------------------------

def flips_within_5_sigma(clean: np.ndarray, noisy: np.ndarray, transition: np.ndarray) -> bool:
  """The number of changed labels is a sum of Bernoulli(1 - T[c, c]): within 5 sd of its mean (+1)."""
  p = 1.0 - np.diag(transition)[clean]
  count = int(np.sum(noisy != clean))
  return abs(count - p.sum()) <= 5 * math.sqrt(np.sum(p * (1 - p))) + 1


@settings(max_examples=60, deadline=None)
@given(k=st.integers(2, 20), ratio=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1),
       n=st.integers(50, 3000), noise=st.sampled_from(["uniform", "symmetric", "pairflip"]),
       skew=st.floats(0.0, 3.0))
def test_realised_rate_overall_and_per_class(k, ratio, seed, n, noise, skew):
  weights = np.exp(-skew * np.arange(k) / k)  # from balanced to strongly imbalanced classes
  clean = np.random.default_rng(seed).choice(k, size=n, p=weights / weights.sum())
  out = noise_lib.corrupt_labels(clean, noise, ratio, k, seed=seed, dataset="custom")
  assert flips_within_5_sigma(clean, out.labels, out.transition)
  for c in range(k):
    rows = clean == c
    assert flips_within_5_sigma(clean[rows], out.labels[rows], out.transition)
  np.testing.assert_allclose(out.transition.sum(axis=1), 1.0)


@settings(max_examples=40, deadline=None)
@given(dataset=st.sampled_from(sorted(noise_lib.matrix.ASYMMETRIC_MAPS)), ratio=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**32 - 1), n=st.integers(100, 3000))
def test_asymmetric_moves_only_mapped_classes_to_their_target(dataset, ratio, seed, n):
  k, mapping = noise_lib.matrix.ASYMMETRIC_MAPS[dataset]
  clean = np.random.default_rng(seed).integers(0, k, size=n)
  out = noise_lib.corrupt_labels(clean, "asymmetric", ratio, k, seed=seed, dataset=dataset)
  target = np.array([mapping.get(c, c) for c in range(k)])
  moved = out.labels != clean
  np.testing.assert_array_equal(out.labels[moved], target[clean[moved]])
  assert not np.isin(clean[moved], [c for c in range(k) if c not in mapping or mapping[c] == c]).any()
  assert flips_within_5_sigma(clean, out.labels, out.transition)
  np.testing.assert_allclose(out.transition.sum(axis=1), 1.0)


# ----- probe holdout + noise on imbalanced data, through build_noisy_dataset ---------------------

@contextlib.contextmanager
def synthetic_source(labels: np.ndarray, num_classes: int):
  """Registers 'synthetic': 2x2 images whose pixels spell the example's index."""
  index = np.arange(len(labels))
  images = np.stack([index % 256, index // 256, np.zeros_like(index), np.zeros_like(index)], -1)
  images = images.reshape(-1, 2, 2, 1).astype(np.uint8)
  raw = sources.RawDataset(images, labels.astype(np.int64), images[:4], labels[:4].astype(np.int64), num_classes)
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(source_registry._SOURCES, "synthetic", lambda data_dir, dataset_file: raw)  # pylint: disable=protected-access
    yield raw


def decoded_index(images: np.ndarray) -> np.ndarray:
  return images[:, 0, 0, 0].astype(np.int64) + 256 * images[:, 0, 1, 0].astype(np.int64)


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(0, 60), min_size=2, max_size=8).filter(lambda c: sum(c) >= 4),
       probe_ratio=st.one_of(st.just(0.0), st.floats(0.0, 0.6)), seed=st.integers(0, 2**31),
       noise=st.sampled_from(["uniform", "symmetric", "pairflip", "none"]), noise_ratio=st.floats(0.0, 1.0))
def test_probe_and_train_are_disjoint_clean_and_balanced(counts, probe_ratio, seed, noise, noise_ratio):
  k = len(counts)
  labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(k), counts))
  with synthetic_source(labels, k):
    spec = DatasetSpec("synthetic", noise, 0.0 if noise == "none" else noise_ratio)
    per_class = probe_size(len(labels), probe_ratio) // k
    should_fail = probe_ratio > 0 and (per_class == 0 or min(counts) < per_class)
    try:
      data = noisy_lib.build_noisy_dataset(spec, data_dir=None, probe_ratio=probe_ratio, seed=seed)
    except UserError as e:
      assert should_fail, str(e)
      assert "--probe_dataset_hold_ratio" in str(e)
      return
  assert not should_fail
  probe_rows, train_rows = decoded_index(data.x_probe), decoded_index(data.x_train)
  assert not set(probe_rows) & set(train_rows)
  np.testing.assert_array_equal(np.sort(np.concatenate([probe_rows, train_rows])), np.arange(len(labels)))
  np.testing.assert_array_equal(probe_rows, data.probe_ids)
  np.testing.assert_array_equal(data.y_probe, labels[probe_rows])  # the probe keeps the clean labels
  assert (np.bincount(data.y_probe, minlength=k) == (per_class if probe_ratio > 0 else 0)).all()
  np.testing.assert_array_equal(data.y_train_clean, labels[train_rows])
  np.testing.assert_array_equal(data.corrupted, data.y_train != data.y_train_clean)
  assert len(data.y_train) == 0 or (data.y_train.min() >= 0 and data.y_train.max() < k)
  if noise == "none":
    np.testing.assert_array_equal(data.y_train, data.y_train_clean)


# ----- resuming inside an evaluation period --------------------------------------------------

def evaluations(segments, max_iteration) -> list[tuple[int, int]]:
  """(Keras epoch, step) of every evaluation when `train` runs these fit calls."""
  step, out = segments[0].first_step, []
  for segment in segments:
    if step >= max_iteration:
      break
    assert segment.first_step == step  # each fit call starts where the previous one stopped
    for epoch in range(segment.initial_epoch, segment.epochs):
      step += segment.steps_per_epoch
      out.append((epoch, step))
      if step >= max_iteration:
        break
  return out


@settings(max_examples=300, deadline=None)
@given(max_iteration=st.integers(1, 400), eval_freq=st.integers(1, 60), data=st.data())
def test_a_resumed_run_evaluates_where_an_uninterrupted_one_does(max_iteration, eval_freq, data):
  start = data.draw(st.integers(0, max_iteration - 1))
  uninterrupted = evaluations(experiment.fit_segments(0, max_iteration, eval_freq), max_iteration)
  resumed = evaluations(experiment.fit_segments(start, max_iteration, eval_freq), max_iteration)
  assert resumed == [(e, s) for e, s in uninterrupted if s > start]
  expected_steps = sorted({s for s in range(eval_freq, max_iteration, eval_freq)} | {max_iteration})
  assert [s for _, s in uninterrupted] == expected_steps  # the hand rule: every eval_freq steps and at the end
