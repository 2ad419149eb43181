"""Noise models: structure of T, realised rates within 5 sigma, empirical confusion ~ T, seeding."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import UserError
from datasets import noise as noise_lib
from datasets.noise import corrupt_labels, matrix, transition_matrix
from datasets.sources import meta

K = 10
N = 20000


def balanced_labels(n=N, k=K, seed=0):
  return np.random.default_rng(seed).permutation(np.arange(n) % k)


def within_5_sigma(count, n, p):
  """Binomial(n, p) count within 5 standard deviations of its mean (+1 for p in {0, 1})."""
  return abs(count - n * p) <= 5 * np.sqrt(n * p * (1 - p)) + 1


def assert_confusion_matches(clean, noisy, t):
  k = t.shape[0]
  for i in range(k):
    rows = noisy[clean == i]
    counts = np.bincount(rows, minlength=k)
    for j in range(k):
      assert within_5_sigma(counts[j], len(rows), t[i, j]), (i, j, counts[j], len(rows), t[i, j])


def test_registered_models():
  assert set(noise_lib.noise_names()) >= {"uniform", "symmetric", "pairflip", "asymmetric", "none"}


@pytest.mark.parametrize("noise", ["uniform", "symmetric", "pairflip", "none"])
@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
def test_rows_sum_to_one(noise, ratio):
  t = transition_matrix(noise, ratio, 7, "mnist")
  assert t.dtype == np.float64 and t.shape == (7, 7)
  np.testing.assert_allclose(t.sum(axis=1), 1.0)
  assert (t >= 0).all()


def test_uniform_structure():
  t = transition_matrix("uniform", 0.4, K, "cifar10")
  np.testing.assert_allclose(np.diag(t), 1 - 0.4 + 0.4 / K)
  off = t[~np.eye(K, dtype=bool)]
  np.testing.assert_allclose(off, 0.4 / K)


def test_symmetric_structure():
  t = transition_matrix("symmetric", 0.4, K, "cifar10")
  np.testing.assert_allclose(np.diag(t), 0.6)
  np.testing.assert_allclose(t[~np.eye(K, dtype=bool)], 0.4 / (K - 1))


def test_pairflip_structure():
  t = transition_matrix("pairflip", 0.3, K, "cifar10")
  expected = 0.7 * np.eye(K)
  expected[np.arange(K), (np.arange(K) + 1) % K] = 0.3
  np.testing.assert_array_equal(t, expected)


def test_asymmetric_cifar10_structure():
  t = transition_matrix("asymmetric", 0.4, 10, "cifar10")
  mapping = {9: 1, 2: 0, 3: 5, 5: 3, 4: 7}
  for i in range(10):
    nonzero = set(np.flatnonzero(t[i]))
    if i in mapping:
      assert nonzero == {i, mapping[i]}
      assert t[i, i] == pytest.approx(0.6) and t[i, mapping[i]] == pytest.approx(0.4)
    else:
      assert nonzero == {i} and t[i, i] == 1.0
  np.testing.assert_array_equal(t, transition_matrix("asymmetric", 0.4, 10, "cifar10_subset"))


def test_asymmetric_mnist_structure():
  t = transition_matrix("asymmetric", 0.3, 10, "mnist")
  mapping = {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}
  for s, d in mapping.items():
    assert t[s, d] == pytest.approx(0.3) and t[s, s] == pytest.approx(0.7)
  for i in set(range(10)) - set(mapping):
    assert t[i, i] == 1.0
  np.testing.assert_array_equal(t, transition_matrix("asymmetric", 0.3, 10, "digits"))


def test_cifar100_table_has_five_fine_classes_per_coarse():
  coarse = np.asarray(meta.CIFAR100_FINE_TO_COARSE)
  assert coarse.shape == (100,)
  np.testing.assert_array_equal(np.bincount(coarse, minlength=20), np.full(20, 5))
  assert len(meta.CIFAR100_FINE_NAMES) == 100
  assert len(meta.CIFAR100_COARSE_NAMES) == 20
  assert meta.CIFAR100_FINE_NAMES == sorted(meta.CIFAR100_FINE_NAMES)
  # Spot checks against the published superclass lists (names, independent of the indices).
  published = {
      "fish": {"aquarium_fish", "flatfish", "ray", "shark", "trout"},
      "flowers": {"orchid", "poppy", "rose", "sunflower", "tulip"},
      "people": {"baby", "boy", "girl", "man", "woman"},
      "vehicles_1": {"bicycle", "bus", "motorcycle", "pickup_truck", "train"},
      "vehicles_2": {"lawn_mower", "rocket", "streetcar", "tank", "tractor"},
      "trees": {"maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"},
      "aquatic_mammals": {"beaver", "dolphin", "otter", "seal", "whale"},
      "insects": {"bee", "beetle", "butterfly", "caterpillar", "cockroach"},
  }
  for coarse_name, fine_names in published.items():
    c = meta.CIFAR100_COARSE_NAMES.index(coarse_name)
    got = {meta.CIFAR100_FINE_NAMES[f] for f in np.flatnonzero(coarse == c)}
    assert got == fine_names, coarse_name


def test_asymmetric_cifar100_cycles_within_superclass():
  coarse = np.asarray(meta.CIFAR100_FINE_TO_COARSE)
  t = transition_matrix("asymmetric", 0.4, 100, "cifar100")
  np.testing.assert_allclose(t.sum(1), 1.0)
  np.testing.assert_allclose(np.diag(t), 0.6)
  target = np.array([np.flatnonzero((t[i] > 0) & (np.arange(100) != i))[0] for i in range(100)])
  assert (coarse[target] == coarse).all()           # stays in the superclass
  assert sorted(target) == list(range(100))         # a permutation
  for c in range(20):                               # one 5-cycle per superclass, by fine index
    members = np.flatnonzero(coarse == c)
    np.testing.assert_array_equal(target[members], np.roll(members, -1))
  # fruit_and_vegetables: apple 0 -> mushroom 51 -> orange 53 -> pear 57 -> sweet_pepper 83 -> apple
  assert [target[f] for f in (0, 51, 53, 57, 83)] == [51, 53, 57, 83, 0]


def test_asymmetric_unsupported_dataset():
  with pytest.raises(UserError) as e:
    transition_matrix("asymmetric", 0.4, 10, "fashion_mnist")
  for name in ("cifar10", "cifar100", "mnist", "digits"):
    assert name in str(e.value)
  with pytest.raises(UserError, match="100 classes"):
    transition_matrix("asymmetric", 0.4, 10, "cifar100")


@pytest.mark.parametrize("noise, ratio, rate", [
    ("uniform", 0.4, 0.4 * (K - 1) / K),
    ("uniform", 0.8, 0.8 * (K - 1) / K),
    ("symmetric", 0.4, 0.4),
    ("pairflip", 0.45, 0.45),
    ("asymmetric", 0.4, 0.4 * 5 / 10),   # 5 of 10 classes flip
    ("none", 0.0, 0.0),
])
def test_realised_rate_and_confusion(noise, ratio, rate):
  clean = balanced_labels()
  out = corrupt_labels(clean, noise, ratio, K, seed=3, dataset="cifar10")
  assert out.labels.dtype == np.int64 and out.labels.shape == clean.shape
  assert out.corrupted.dtype == bool
  np.testing.assert_array_equal(out.corrupted, out.labels != clean)
  assert within_5_sigma(out.corrupted.sum(), N, rate), (out.corrupted.mean(), rate)
  np.testing.assert_array_equal(out.transition, transition_matrix(noise, ratio, K, "cifar10"))
  assert_confusion_matches(clean, out.labels, out.transition)
  # the expected flip rate from T and the class prior is the same number
  assert noise_lib.expected_flip_rate(out.transition, np.bincount(clean)) == pytest.approx(rate)


def test_uniform_draws_the_true_class_too():
  clean = balanced_labels()
  out = corrupt_labels(clean, "uniform", 1.0, K, seed=0, dataset="cifar10")
  assert within_5_sigma((~out.corrupted).sum(), N, 1 / K)   # ~1/K keep their label at r=1
  sym = corrupt_labels(clean, "symmetric", 1.0, K, seed=0, dataset="cifar10")
  assert sym.corrupted.all()                                 # symmetric never draws it


def test_uniform_follows_ieg_sampler():
  clean = balanced_labels(1000)
  out = corrupt_labels(clean, "uniform", 0.4, K, seed=5, dataset="cifar10")
  rng = np.random.default_rng(noise_lib.stream_seed(5, noise_lib.NOISE_STREAM))
  mask = rng.random(1000) <= 0.4
  expected = clean.copy()
  expected[mask] = rng.integers(0, K, size=mask.sum())
  np.testing.assert_array_equal(out.labels, expected)


def test_asymmetric_only_touches_mapped_classes():
  clean = balanced_labels()
  out = corrupt_labels(clean, "asymmetric", 0.4, K, seed=1, dataset="cifar10")
  mapping = matrix.CIFAR10_ASYMMETRIC_MAP
  touched = np.isin(clean, list(mapping))
  assert not out.corrupted[~touched].any()
  flipped = out.corrupted
  np.testing.assert_array_equal(out.labels[flipped], [mapping[c] for c in clean[flipped]])
  for s in mapping:
    assert within_5_sigma(out.corrupted[clean == s].sum(), (clean == s).sum(), 0.4)


def test_none_keeps_labels():
  clean = balanced_labels(500)
  out = corrupt_labels(clean, "none", 0.0, K, seed=0, dataset="custom")
  np.testing.assert_array_equal(out.labels, clean)
  np.testing.assert_array_equal(out.transition, np.eye(K))
  assert not out.corrupted.any()


@pytest.mark.parametrize("noise", ["uniform", "symmetric", "pairflip", "asymmetric"])
def test_seeding(noise):
  clean = balanced_labels(5000)
  state = np.random.get_state()
  a = corrupt_labels(clean, noise, 0.4, K, seed=11, dataset="mnist")
  b = corrupt_labels(clean, noise, 0.4, K, seed=11, dataset="mnist")
  c = corrupt_labels(clean, noise, 0.4, K, seed=12, dataset="mnist")
  np.testing.assert_array_equal(a.labels, b.labels)
  assert (a.labels != c.labels).any()
  after = np.random.get_state()
  assert state[0] == after[0] and np.array_equal(state[1], after[1])   # global state untouched


def test_zero_ratio_changes_nothing():
  clean = balanced_labels(3000)
  for noise in ("uniform", "symmetric", "pairflip", "asymmetric"):
    out = corrupt_labels(clean, noise, 0.0, K, seed=0, dataset="cifar10")
    np.testing.assert_array_equal(out.labels, clean)


def test_bad_inputs():
  with pytest.raises(UserError, match=r"\[0, 10\)"):
    corrupt_labels(np.array([0, 10]), "uniform", 0.1, 10, seed=0, dataset="cifar10")
  with pytest.raises(UserError, match=r"\[0, 1\]"):
    corrupt_labels(np.array([0, 1]), "uniform", 1.5, 10, seed=0, dataset="cifar10")
  with pytest.raises(UserError, match="noise type"):
    corrupt_labels(np.array([0, 1]), "gaussian", 0.1, 10, seed=0, dataset="cifar10")
  with pytest.raises(UserError, match="--seed"):
    corrupt_labels(np.array([0, 1]), "uniform", 0.1, 10, seed=-1, dataset="cifar10")
  with pytest.raises(UserError, match="integer"):
    corrupt_labels(np.array([0.5, 1.0]), "uniform", 0.1, 10, seed=0, dataset="cifar10")


@settings(max_examples=30, deadline=None)
@given(k=st.integers(2, 30), ratio=st.floats(0.0, 1.0, allow_nan=False),
       seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300),
       noise=st.sampled_from(["uniform", "symmetric", "pairflip", "none"]))
def test_property_labels_in_range_and_t_stochastic(k, ratio, seed, n, noise):
  if noise == "none":
    ratio = 0.0
  clean = np.random.default_rng(seed).integers(0, k, size=n)
  out = corrupt_labels(clean, noise, ratio, k, seed=seed, dataset="custom")
  assert out.labels.shape == (n,)
  assert n == 0 or (out.labels.min() >= 0 and out.labels.max() < k)
  np.testing.assert_allclose(out.transition.sum(axis=1), 1.0)
  assert (out.transition >= 0).all()
  np.testing.assert_array_equal(out.corrupted, out.labels != clean)
  # a label can only move where T allows it
  assert (out.transition[clean, out.labels] > 0).all()
