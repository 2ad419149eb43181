"""Probe holdout as IEG: class-balanced on clean labels, class-interleaved, disjoint from train."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import UserError
from datasets.probe import probe_size, split_probe


def labels_with_counts(counts, seed=0):
  labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
  return np.random.default_rng(seed).permutation(labels)


def test_ieg_sizes_cifar_like():
  labels = labels_with_counts([5000] * 10)
  probe, train = split_probe(labels, 10, 0.002, seed=1)
  assert len(probe) == 100 and len(train) == 49900          # 10 per class
  probe, train = split_probe(labels, 10, 0.02, seed=1)
  assert len(probe) == 1000 and len(train) == 49000         # 100 per class
  labels100 = labels_with_counts([500] * 100)
  probe, _ = split_probe(labels100, 100, 0.02, seed=1)
  assert len(probe) == 1000                                 # 10 per class of CIFAR-100
  assert (np.bincount(labels100[probe], minlength=100) == 10).all()


def test_balanced_interleaved_disjoint_and_complete():
  labels = labels_with_counts([300, 120, 500, 90, 200])
  probe, train = split_probe(labels, 5, 0.1, seed=7)       # floor(1210 * 0.1) = 121 -> 24 / class
  assert probe.dtype == np.int64 and train.dtype == np.int64
  assert len(probe) == 24 * 5
  np.testing.assert_array_equal(labels[probe], np.tile(np.arange(5), 24))   # c0, c1, ..., c4, c0...
  assert len(np.unique(probe)) == len(probe)
  assert not set(probe) & set(train)
  np.testing.assert_array_equal(np.sort(np.concatenate([probe, train])), np.arange(len(labels)))
  np.testing.assert_array_equal(train, np.sort(train))      # train keeps the original order


def test_within_class_order_is_shuffled():
  labels = labels_with_counts([1000, 1000])
  probe, _ = split_probe(labels, 2, 0.2, seed=3)
  class0 = probe[0::2]
  assert not (np.all(np.diff(class0) > 0) or np.all(np.diff(class0) < 0))


def test_seeded():
  labels = labels_with_counts([400] * 4)
  a, _ = split_probe(labels, 4, 0.05, seed=1)
  b, _ = split_probe(labels, 4, 0.05, seed=1)
  c, _ = split_probe(labels, 4, 0.05, seed=2)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_zero_ratio_is_empty():
  labels = labels_with_counts([10, 10])
  probe, train = split_probe(labels, 2, 0.0, seed=0)
  assert probe.shape == (0,)
  np.testing.assert_array_equal(train, np.arange(20))


def test_ratio_too_small_names_flag_and_smallest_ratio():
  labels = labels_with_counts([1000] * 10)
  with pytest.raises(UserError) as e:
    split_probe(labels, 10, 0.0005, seed=0)                 # 5 examples < 10 classes
  msg = str(e.value)
  assert "--probe_dataset_hold_ratio" in msg and "0.0005" in msg and "0.001" in msg
  probe, _ = split_probe(labels, 10, 0.001, seed=0)         # the suggested ratio works
  assert len(probe) == 10


def test_class_with_too_few_examples_is_named():
  labels = labels_with_counts([100, 100, 3, 100])
  with pytest.raises(UserError) as e:
    split_probe(labels, 4, 0.2, seed=0)                     # 15 per class, class 2 has 3
  assert "class 2" in str(e.value) and "--probe_dataset_hold_ratio" in str(e.value)


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, float("nan"), "x"])
def test_bad_ratio(ratio):
  with pytest.raises(UserError, match="--probe_dataset_hold_ratio"):
    split_probe(labels_with_counts([10, 10]), 2, ratio, seed=0)


def test_probe_size_is_robust_to_float_rounding():
  assert probe_size(50000, 0.002) == 100
  assert probe_size(100, 0.29) == 29          # 100 * 0.29 = 28.999999999999996
  assert probe_size(10, 0.15) == 1


@settings(max_examples=40, deadline=None)
@given(k=st.integers(2, 12), per_class=st.integers(1, 40), ratio=st.floats(0.0, 0.9),
       seed=st.integers(0, 2**31))
def test_property_disjoint_and_balanced(k, per_class, ratio, seed):
  labels = labels_with_counts([per_class] * k, seed=seed % 1000)
  n = len(labels)
  try:
    probe, train = split_probe(labels, k, ratio, seed)
  except UserError as e:
    assert probe_size(n, ratio) // k == 0 < ratio, str(e)   # only "too small" can fail here
    return
  assert not set(probe) & set(train)
  assert len(probe) + len(train) == n
  m = probe_size(n, ratio) // k
  assert len(probe) == m * k
  np.testing.assert_array_equal(labels[probe], np.tile(np.arange(k), m))


# ----- the validation holdout (--validation_fraction) ---------------------------------------------

def test_validation_split_is_class_balanced_disjoint_and_seeded():
  from datasets.validation import split_validation  # pylint: disable=g-import-not-at-top
  labels = labels_with_counts([300, 200, 101])
  validation, train = split_validation(labels, 3, 0.1, seed=4)
  assert np.bincount(labels[validation], minlength=3).tolist() == [30, 20, 10]  # round(0.1 * 101) = 10
  assert not set(validation) & set(train) and len(validation) + len(train) == len(labels)
  assert np.all(np.diff(train) > 0) and np.all(np.diff(validation) > 0)
  again, _ = split_validation(labels, 3, 0.1, seed=4)
  other, _ = split_validation(labels, 3, 0.1, seed=5)
  np.testing.assert_array_equal(validation, again)
  assert not np.array_equal(validation, other)
  none, everything = split_validation(labels, 3, 0.0, seed=4)
  assert len(none) == 0 and np.array_equal(everything, np.arange(len(labels)))


def test_validation_split_never_empties_a_class():
  from datasets.validation import split_validation  # pylint: disable=g-import-not-at-top
  with pytest.raises(UserError, match="--validation_fraction=0.9 would leave class 1 with no training example"):
    split_validation(np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), 2, 0.9, seed=0)


def test_validation_rows_keep_their_noisy_labels_and_the_rest_is_unchanged():
  from datasets import noisy  # pylint: disable=g-import-not-at-top
  plain = noisy.build_noisy_dataset("digits_uniform_0.4", data_dir=None, probe_ratio=0.0, seed=2)
  held = noisy.build_noisy_dataset("digits_uniform_0.4", data_dir=None, probe_ratio=0.0, seed=2,
                                   validation_fraction=0.2)
  by_id = dict(zip(plain.train_ids.tolist(), plain.y_train.tolist()))
  assert held.num_validation + held.num_train == plain.num_train
  assert abs(held.num_validation - 0.2 * plain.num_train) <= 10
  assert [by_id[i] for i in held.train_ids.tolist()] == held.y_train.tolist()  # noise as without the holdout
  assert [by_id[i] for i in held.validation_ids.tolist()] == held.y_val.tolist()  # noisy, not clean, labels
  assert not set(held.train_ids.tolist()) & set(held.validation_ids.tolist())
  counts = np.bincount(held.y_val, minlength=10) / np.bincount(plain.y_train, minlength=10)
  assert np.all(np.abs(counts - 0.2) < 0.02)  # balanced over the noisy classes
