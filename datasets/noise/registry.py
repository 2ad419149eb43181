"""The noise-model registry: the types, the name -> model table and the functions that apply a model.

A model is either a row-stochastic transition matrix T[true, noisy] with a sampler
(`register_noise`, see `datasets.noise.matrix`) or an instance-level function of the whole
training split (`register_example_noise`, see `datasets.noise.instance`). All randomness comes
from `np.random.default_rng` seeded by `(seed, a fixed stream tag)`, never from the global numpy
state.

This module imports none of the models; `datasets/noise/__init__.py` imports them, which fills
the table. See shared/reference/methods.md section 0.1 and ieg.md section 3 for the definitions.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

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
  # UserError when the model has no definition for a dataset (None: defined for every dataset).
  check_dataset: "Callable[[str], None] | None" = None


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


def sample_none(clean, ratio, transition, rng):
  """The labels as given (the 'none' model, and every instance-level model)."""
  del ratio, transition, rng
  return clean.copy()


def register_noise(name: str, *, sampler: Sampler = sample_from_transition,
                   needs_ratio: bool = True, check_dataset: Callable[[str], None] | None = None):
  """Decorator: registers `transition(ratio, num_classes, dataset) -> T` as noise model `name`."""
  def decorator(fn):
    if name in _MODELS:
      raise ValueError(f"noise model {name!r} is already registered")
    _MODELS[name] = NoiseModel(name, fn, sampler, needs_ratio, check_dataset=check_dataset)
    return fn
  return decorator


def noise_names() -> list[str]:
  return list(_MODELS)


def get_model(noise: str) -> NoiseModel:
  if noise not in _MODELS:
    raise UserError(f"--dataset: unknown noise type {noise!r}; valid noise types: "
                    f"{', '.join(noise_names())}")
  return _MODELS[noise]


def check_supported(noise: str, dataset: str) -> None:
  """UserError if `noise` is unknown or has no definition for `dataset`."""
  model = get_model(noise)
  if model.check_dataset is not None:
    model.check_dataset(dataset)


def check_ratio(ratio: float) -> float:
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
  ratio = check_ratio(ratio)
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


def register_example_noise(name: str, *, needs_ratio: bool = True,
                           check_dataset: Callable[[str], None] | None = None):
  """Decorator: registers `fn(ExampleNoiseInput) -> ExampleNoise` as noise model `name`."""
  def decorator(fn: ExampleSampler) -> ExampleSampler:
    if name in _MODELS:
      raise ValueError(f"noise model {name!r} is already registered")
    _MODELS[name] = NoiseModel(name, _no_transition(name), sample_none, needs_ratio, per_example=fn,
                               check_dataset=check_dataset)
    return fn
  return decorator


def apply_example_noise(noise: str, inputs: ExampleNoiseInput) -> ExampleNoise:
  """Runs instance-level model `noise` and checks what it returns."""
  model = get_model(noise)
  if model.per_example is None:
    raise ValueError(f"noise {noise!r} is a transition-matrix model; use corrupt_labels")
  inputs.ratio = check_ratio(inputs.ratio)
  stream_seed(inputs.seed, 0)   # validates the seed
  out = model.per_example(inputs)
  n = len(inputs.clean)
  assert out.labels.shape == (n,) and out.corrupted.shape == (n,), (noise, out)
  assert out.images is None or len(out.images) == n, noise
  out.labels = out.labels.astype(np.int64)
  return out

