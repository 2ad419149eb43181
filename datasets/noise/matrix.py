"""The transition-matrix noise models: uniform, symmetric, pairflip, asymmetric and none.

Every model is a row-stochastic transition matrix T[true, noisy]. Labels are drawn from the rows
of T, except 'uniform', which copies IEG's sampler (mask = u <= r, then a uniform class among
all K, the true one included).
"""
from __future__ import annotations

import numpy as np

from core.errors import UserError
from datasets.noise.registry import register_noise, sample_none
from datasets.sources import meta


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
  coarse = np.asarray(meta.CIFAR100_FINE_TO_COARSE)
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


def _check_asymmetric(dataset: str) -> None:
  if dataset not in ASYMMETRIC_MAPS:
    raise UserError(f"--dataset: asymmetric noise is defined only for "
                    f"{', '.join(ASYMMETRIC_MAPS)}, not for {dataset!r}; use uniform, symmetric "
                    "or pairflip")


@register_noise("asymmetric", check_dataset=_check_asymmetric)
def _asymmetric(ratio, k, dataset):
  _check_asymmetric(dataset)
  expected_k, mapping = ASYMMETRIC_MAPS[dataset]
  if k != expected_k:
    raise UserError(f"--dataset: asymmetric noise for {dataset} needs {expected_k} classes, "
                    f"the data has {k}")
  t = np.eye(k)
  for s, d in mapping.items():
    t[s, s] = 1.0 - ratio
    t[s, d] = ratio
  return t


@register_noise("none", sampler=sample_none, needs_ratio=False)
def _none(ratio, k, dataset):
  del ratio, dataset
  return np.eye(k)
