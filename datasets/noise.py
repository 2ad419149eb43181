"""Synthetic label-noise models, registered by name (the `<noise>` part of `--dataset`).

Every model is a row-stochastic transition matrix T[true, noisy]. Labels are drawn from the rows
of T, except 'uniform', which copies IEG's sampler (mask = u <= r, then a uniform class among
all K, the true one included). All randomness comes from `np.random.default_rng` seeded by
`(seed, a fixed stream tag)`, never from the global numpy state.

See shared/reference/methods.md section 0.1 and ieg.md section 3 for the definitions.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

from datasets.sources import meta as sources_meta
from core.errors import UserError

# Tag that makes the noise stream independent of other streams drawn from the same --seed.
NOISE_STREAM = 0x6E6F697365  # "noise"


@dataclasses.dataclass
class NoisyLabels:
  labels: np.ndarray         # int64 [N] noisy labels
  transition: np.ndarray     # float64 [K, K] row-stochastic T[true, noisy] of the process
  corrupted: np.ndarray      # bool [N], labels != clean


Sampler = Callable[[np.ndarray, float, np.ndarray, np.random.Generator], np.ndarray]


@dataclasses.dataclass(frozen=True)
class NoiseModel:
  name: str
  transition: Callable[[float, int, str], np.ndarray]   # (ratio, K, dataset) -> T
  sampler: Sampler                                      # (clean, ratio, T, rng) -> noisy labels
  needs_ratio: bool = True
  # Instance-level models (a per-example label file, open-set images) have no transition matrix;
  # they map the whole training split at once (see `register_example_noise`).
  per_example: "ExampleSampler | None" = None


_MODELS: dict[str, NoiseModel] = {}


def sample_from_transition(clean: np.ndarray, ratio: float, transition: np.ndarray,
                           rng: np.random.Generator) -> np.ndarray:
  """Draws noisy[i] ~ T[clean[i]] with one uniform per example and the row's cumulative sum."""
  del ratio
  cum = np.cumsum(transition, axis=1)
  cum[:, -1] = 1.0   # guard against rounding: the last bucket ends exactly at 1
  u = rng.random(len(clean))
  noisy = (u[:, None] >= cum[clean]).sum(axis=1)   # first index with cum > u
  return np.minimum(noisy, transition.shape[0] - 1).astype(np.int64)


def _sample_uniform_ieg(clean: np.ndarray, ratio: float, transition: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray:
  """IEG's `load_train_val_uniform_noise`: with probability r, a class drawn from all K."""
  k = transition.shape[0]
  noisy = clean.copy()
  if ratio <= 0:
    return noisy
  mask = rng.random(len(clean)) <= ratio
  noisy[mask] = rng.integers(0, k, size=int(mask.sum()))
  return noisy


def _sample_none(clean, ratio, transition, rng):
  del ratio, transition, rng
  return clean.copy()


def register_noise(name: str, *, sampler: Sampler = sample_from_transition,
                   needs_ratio: bool = True):
  """Decorator: registers `transition(ratio, num_classes, dataset) -> T` as noise model `name`."""
  def decorator(fn):
    if name in _MODELS:
      raise ValueError(f"noise model {name!r} is already registered")
    _MODELS[name] = NoiseModel(name, fn, sampler, needs_ratio)
    return fn
  return decorator


def noise_names() -> list[str]:
  return list(_MODELS)


def get_model(noise: str) -> NoiseModel:
  if noise not in _MODELS:
    raise UserError(f"--dataset: unknown noise type {noise!r}; valid noise types: "
                    f"{', '.join(noise_names())}")
  return _MODELS[noise]


@register_noise("uniform", sampler=_sample_uniform_ieg)
def _uniform(ratio, k, dataset):
  del dataset
  return (1.0 - ratio) * np.eye(k) + ratio / k * np.ones((k, k))


@register_noise("symmetric")
def _symmetric(ratio, k, dataset):
  del dataset
  t = np.full((k, k), ratio / (k - 1))
  np.fill_diagonal(t, 1.0 - ratio)
  return t


@register_noise("pairflip")
def _pairflip(ratio, k, dataset):
  del dataset
  t = (1.0 - ratio) * np.eye(k)
  t[np.arange(k), (np.arange(k) + 1) % k] += ratio
  return t


# Source class -> target class of the asymmetric ("class-dependent") noise.
CIFAR10_ASYMMETRIC_MAP = {9: 1, 2: 0, 3: 5, 5: 3, 4: 7}   # truck->automobile, bird->airplane,
                                                          # cat<->dog, deer->horse
MNIST_ASYMMETRIC_MAP = {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}


def cifar100_superclass_map() -> dict[int, int]:
  """Each fine class -> the next fine class of its superclass (cyclic, by fine index)."""
  coarse = np.asarray(sources_meta.CIFAR100_FINE_TO_COARSE)
  mapping = {}
  for c in range(coarse.max() + 1):
    members = np.flatnonzero(coarse == c)   # sorted by fine index
    for i, f in enumerate(members):
      mapping[int(f)] = int(members[(i + 1) % len(members)])
  return mapping


# dataset name -> (num_classes, class map). Other datasets have no asymmetric model.
ASYMMETRIC_MAPS: dict[str, tuple[int, dict[int, int]]] = {
    "cifar10": (10, CIFAR10_ASYMMETRIC_MAP),
    "cifar10_subset": (10, CIFAR10_ASYMMETRIC_MAP),
    "mnist": (10, MNIST_ASYMMETRIC_MAP),
    "digits": (10, MNIST_ASYMMETRIC_MAP),
    "cifar100": (100, cifar100_superclass_map()),
}


@register_noise("asymmetric")
def _asymmetric(ratio, k, dataset):
  check_supported("asymmetric", dataset)
  expected_k, mapping = ASYMMETRIC_MAPS[dataset]
  if k != expected_k:
    raise UserError(f"--dataset: asymmetric noise for {dataset} needs {expected_k} classes, "
                    f"the data has {k}")
  t = np.eye(k)
  for s, d in mapping.items():
    t[s, s] = 1.0 - ratio
    t[s, d] = ratio
  return t


@register_noise("none", sampler=_sample_none, needs_ratio=False)
def _none(ratio, k, dataset):
  del ratio, dataset
  return np.eye(k)


def check_supported(noise: str, dataset: str) -> None:
  """UserError if `noise` is unknown or has no definition for `dataset`."""
  get_model(noise)
  if noise == "asymmetric" and dataset not in ASYMMETRIC_MAPS:
    raise UserError(f"--dataset: asymmetric noise is defined only for "
                    f"{', '.join(ASYMMETRIC_MAPS)}, not for {dataset!r}; use uniform, symmetric "
                    "or pairflip")
  if noise == "openset" and dataset not in OPENSET_DATASETS:
    raise UserError(f"--dataset: open-set noise (CIFAR-100 images inside CIFAR-10) is defined only "
                    f"for {', '.join(OPENSET_DATASETS)}, not for {dataset!r}")


def _check_ratio(ratio: float) -> float:
  try:
    ratio = float(ratio)
  except (TypeError, ValueError):
    raise UserError(f"--dataset: noise ratio {ratio!r} is not a number in [0, 1]") from None
  if not math.isfinite(ratio) or not 0.0 <= ratio <= 1.0:
    raise UserError(f"--dataset: noise ratio {ratio!r} must be in [0, 1]")
  return ratio


def transition_matrix(noise: str, ratio: float, num_classes: int, dataset: str) -> np.ndarray:
  """The row-stochastic T[true, noisy] (float64 [K, K]) of noise model `noise` at rate `ratio`."""
  model = get_model(noise)
  ratio = _check_ratio(ratio)
  if int(num_classes) < 2:
    raise UserError(f"label noise needs at least 2 classes, got {num_classes}")
  t = np.asarray(model.transition(ratio, int(num_classes), dataset), dtype=np.float64)
  assert t.shape == (num_classes, num_classes) and np.allclose(t.sum(1), 1.0), (noise, t)
  return t


def corrupt_labels(clean: np.ndarray, noise: str, ratio: float, num_classes: int, seed: int,
                   dataset: str) -> NoisyLabels:
  """Applies noise model `noise` at rate `ratio` to `clean`, reproducibly from `seed`."""
  clean = np.asarray(clean)
  if clean.ndim != 1 or (clean.size and not np.issubdtype(clean.dtype, np.integer)):
    raise UserError(f"labels must be a 1-D integer array, got {clean.dtype} {clean.shape}")
  clean = clean.astype(np.int64)
  t = transition_matrix(noise, ratio, num_classes, dataset)
  if clean.size and (clean.min() < 0 or clean.max() >= num_classes):
    raise UserError(f"labels must be in [0, {num_classes}), found "
                    f"{int(clean.min())}..{int(clean.max())}")
  rng = np.random.default_rng(stream_seed(seed, NOISE_STREAM))
  labels = get_model(noise).sampler(clean, float(ratio), t, rng)
  return NoisyLabels(labels=labels.astype(np.int64), transition=t, corrupted=labels != clean)


def stream_seed(seed: int, stream: int) -> np.random.SeedSequence:
  """A SeedSequence for one named stream of `seed` (streams of one seed are independent)."""
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
    raise UserError(f"--seed must be a non-negative integer, got {seed!r}")
  return np.random.SeedSequence([int(seed), int(stream)])


def expected_flip_rate(transition: np.ndarray, class_counts: np.ndarray) -> float:
  """Expected fraction of labels that change: sum_c p(c) (1 - T[c, c])."""
  counts = np.asarray(class_counts, dtype=np.float64)
  if counts.sum() == 0:
    return 0.0
  return float(np.sum(counts / counts.sum() * (1.0 - np.diag(transition))))


# ---------------------------------------------------------------------------------------------
# Instance-level noise: models that act on whole examples instead of through a matrix T.

# Datasets whose training images open-set noise may replace with CIFAR-100 images.
OPENSET_DATASETS = ("cifar10", "cifar10_subset")


@dataclasses.dataclass
class ExampleNoiseInput:
  """What an instance-level model sees: the training rows to corrupt (after the probe holdout)."""
  dataset: str
  data_dir: str | None
  ratio: float
  num_classes: int
  seed: int
  clean: np.ndarray                # int64 [N] clean labels of the rows
  source_ids: np.ndarray           # int64 [N] their rows in the source's training order
  images: np.ndarray | None = None  # the rows' inputs (uint8 images or token ids)


@dataclasses.dataclass
class ExampleNoise:
  labels: np.ndarray                # int64 [N] training labels after the noise
  corrupted: np.ndarray             # bool [N] rows the noise touched (label or image)
  images: np.ndarray | None = None  # the rows' inputs when the model replaced some, else None


ExampleSampler = Callable[[ExampleNoiseInput], ExampleNoise]


def _no_transition(name: str):
  def transition(ratio, k, dataset):
    raise ValueError(f"noise {name!r} acts per example and has no transition matrix; "
                     "use apply_example_noise")
  return transition


def register_example_noise(name: str, *, needs_ratio: bool = True):
  """Decorator: registers `fn(ExampleNoiseInput) -> ExampleNoise` as noise model `name`."""
  def decorator(fn: ExampleSampler) -> ExampleSampler:
    if name in _MODELS:
      raise ValueError(f"noise model {name!r} is already registered")
    _MODELS[name] = NoiseModel(name, _no_transition(name), _sample_none, needs_ratio, per_example=fn)
    return fn
  return decorator


def apply_example_noise(noise: str, inputs: ExampleNoiseInput) -> ExampleNoise:
  """Runs instance-level model `noise` and checks what it returns."""
  model = get_model(noise)
  if model.per_example is None:
    raise ValueError(f"noise {noise!r} is a transition-matrix model; use corrupt_labels")
  inputs.ratio = _check_ratio(inputs.ratio)
  stream_seed(inputs.seed, 0)   # validates the seed
  out = model.per_example(inputs)
  n = len(inputs.clean)
  assert out.labels.shape == (n,) and out.corrupted.shape == (n,), (noise, out)
  assert out.images is None or len(out.images) == n, noise
  out.labels = out.labels.astype(np.int64)
  return out


# The instance-level models register themselves on import.
from datasets import noise_instance  # noqa: E402,F401  pylint: disable=wrong-import-position
