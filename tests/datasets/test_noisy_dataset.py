"""build_noisy_dataset end to end (digits, custom), noise report, noise file round trip."""
import numpy as np
import pytest

from core.errors import UserError
from datasets import noise as noise_lib
from datasets import sources
from datasets.noisy import build_noisy_dataset, confusion_matrix, load_noise_file
from datasets.probe import split_probe
from datasets.sources import registry as source_registry
from datasets.spec import parse_dataset_spec


@pytest.fixture(scope="module")
def digits_raw():
  return sources.load_raw("digits", None)


def build(text, **kw):
  kw.setdefault("data_dir", None)
  kw.setdefault("probe_ratio", 0.05)
  kw.setdefault("seed", 3)
  return build_noisy_dataset(parse_dataset_spec(text), **kw)


def test_digits_end_to_end(digits_raw):
  ds = build("digits_symmetric_0.4")
  k = 10
  assert ds.num_classes == k and ds.image_shape == (8, 8, 1)
  # probe: floor(1437 * 0.05) = 71 -> 7 per class, interleaved, clean, from the original train set
  assert len(ds.y_probe) == 70 and len(ds.y_train) == 1437 - 70
  np.testing.assert_array_equal(ds.y_probe, np.tile(np.arange(k), 7))
  np.testing.assert_array_equal(ds.y_probe, digits_raw.y_train[ds.probe_ids])
  np.testing.assert_array_equal(ds.x_probe, digits_raw.x_train[ds.probe_ids])
  assert not set(ds.probe_ids) & set(ds.train_ids)
  np.testing.assert_array_equal(np.sort(np.concatenate([ds.probe_ids, ds.train_ids])),
                                np.arange(1437))
  # train: images and clean labels follow train_ids; noise only on those labels
  np.testing.assert_array_equal(ds.x_train, digits_raw.x_train[ds.train_ids])
  np.testing.assert_array_equal(ds.y_train_clean, digits_raw.y_train[ds.train_ids])
  np.testing.assert_array_equal(ds.corrupted, ds.y_train != ds.y_train_clean)
  n = len(ds.y_train)
  assert abs(ds.corrupted.sum() - 0.4 * n) <= 5 * np.sqrt(n * 0.4 * 0.6)
  np.testing.assert_array_equal(ds.transition, noise_lib.transition_matrix("symmetric", 0.4, k,
                                                                           "digits"))
  np.testing.assert_array_equal(ds.x_test, digits_raw.x_test)
  np.testing.assert_array_equal(ds.y_test, digits_raw.y_test)
  for a in (ds.y_train, ds.y_probe, ds.y_test, ds.train_ids, ds.probe_ids):
    assert a.dtype == np.int64


def test_probe_is_drawn_on_clean_labels_and_never_noised(digits_raw):
  ds = build("digits_pairflip_1.0")            # every training label flips
  assert ds.corrupted.all()
  np.testing.assert_array_equal(ds.y_train, (ds.y_train_clean + 1) % 10)
  np.testing.assert_array_equal(ds.y_probe, digits_raw.y_train[ds.probe_ids])
  np.testing.assert_array_equal(np.bincount(ds.y_probe), np.full(10, 7))


def test_probe_and_noise_streams_are_independent(digits_raw):
  a = build("digits_uniform_0.6")
  b = build("digits_asymmetric_0.2")
  np.testing.assert_array_equal(a.probe_ids, b.probe_ids)   # the noise spec does not move the probe
  probe, train = split_probe(digits_raw.y_train, 10, 0.05, seed=3)
  np.testing.assert_array_equal(a.probe_ids, probe)
  expected = noise_lib.corrupt_labels(digits_raw.y_train[train], "uniform", 0.6, 10, seed=3,
                                      dataset="digits")
  np.testing.assert_array_equal(a.y_train, expected.labels)
  c = build("digits_uniform_0.6", probe_ratio=0.1)          # a bigger probe keeps the noise seed
  assert len(c.y_probe) > len(a.y_probe)


def test_seed_determinism():
  a, b, c = build("digits_uniform_0.5"), build("digits_uniform_0.5"), build("digits_uniform_0.5",
                                                                           seed=4)
  np.testing.assert_array_equal(a.y_train, b.y_train)
  np.testing.assert_array_equal(a.probe_ids, b.probe_ids)
  assert not np.array_equal(a.probe_ids, c.probe_ids)


def test_none_on_known_data_keeps_labels():
  ds = build("digits", probe_ratio=0.0)
  assert len(ds.y_probe) == 0 and ds.x_probe.shape == (0, 8, 8, 1) and ds.probe_ids.shape == (0,)
  np.testing.assert_array_equal(ds.y_train, ds.y_train_clean)
  assert not ds.corrupted.any()
  np.testing.assert_array_equal(ds.transition, np.eye(10))
  np.testing.assert_array_equal(ds.train_ids, np.arange(1437))


def _custom_file(tmp_path, with_probe=False):
  rng = np.random.default_rng(0)
  arrays = dict(x_train=rng.integers(0, 256, (60, 5, 5, 3), dtype=np.uint8),
                y_train=np.arange(60) % 3,
                x_test=rng.integers(0, 256, (9, 5, 5, 3), dtype=np.uint8),
                y_test=np.arange(9) % 3)
  if with_probe:
    arrays.update(x_probe=rng.integers(0, 256, (6, 5, 5, 3), dtype=np.uint8),
                  y_probe=np.array([0, 1, 2, 0, 1, 2]))
  path = tmp_path / "mine.npz"
  np.savez(path, **arrays)
  return path, arrays


def test_custom_none_has_unknown_clean_labels(tmp_path):
  path, arrays = _custom_file(tmp_path)
  ds = build("custom", dataset_file=path, probe_ratio=0.1)
  assert ds.y_train_clean is None and ds.corrupted is None and ds.transition is None
  assert len(ds.y_probe) == 6 and len(ds.y_train) == 54
  np.testing.assert_array_equal(ds.y_train, arrays["y_train"][ds.train_ids])
  report = ds.noise_report()
  assert "unknown" in report and "confusion" not in report


def test_custom_with_own_probe_and_synthetic_noise(tmp_path):
  path, arrays = _custom_file(tmp_path, with_probe=True)
  ds = build("custom_uniform_0.5", dataset_file=path, probe_ratio=0.2)
  assert ds.probe_from_file
  np.testing.assert_array_equal(ds.x_probe, arrays["x_probe"])
  np.testing.assert_array_equal(ds.y_probe, arrays["y_probe"])
  np.testing.assert_array_equal(ds.train_ids, np.arange(60))   # no holdout
  np.testing.assert_array_equal(ds.y_train_clean, arrays["y_train"])
  np.testing.assert_array_equal(ds.corrupted, ds.y_train != ds.y_train_clean)


def test_noise_report(digits_raw):
  ds = build("digits_asymmetric_0.4")
  report = ds.noise_report()
  rate = ds.corrupted.mean()
  assert f"{rate:.4f}" in report and "realised corruption rate" in report
  assert "confusion matrix" in report and "digits_asymmetric_0.4" in report
  conf = confusion_matrix(ds.y_train_clean, ds.y_train, 10)
  assert conf.sum() == len(ds.y_train) and conf[2, 7] > 0 and conf[0, 1:].sum() == 0
  for value in conf[2]:
    assert str(value) in report


@pytest.mark.parametrize("text, kw", [
    ("digits_uniform_0.3", {}),
    ("custom", {"probe_ratio": 0.1}),
])
def test_noise_file_round_trip(tmp_path, text, kw):
  if text == "custom":
    kw["dataset_file"], _ = _custom_file(tmp_path)
  ds = build(text, **kw)
  path = tmp_path / "sub" / "noise_labels"     # no .npz suffix: the exact name is kept
  ds.save_noise_file(path)
  assert path.exists()
  d = load_noise_file(path)
  assert d["spec"] == ds.spec and d["num_classes"] == ds.num_classes and d["seed"] == 3
  np.testing.assert_array_equal(d["noisy_labels"], ds.y_train)
  np.testing.assert_array_equal(d["train_ids"], ds.train_ids)
  np.testing.assert_array_equal(d["probe_ids"], ds.probe_ids)
  np.testing.assert_array_equal(d["probe_labels"], ds.y_probe)
  if ds.y_train_clean is None:
    assert d["clean_labels"] is None and d["corrupted"] is None and d["transition"] is None
  else:
    np.testing.assert_array_equal(d["clean_labels"], ds.y_train_clean)
    np.testing.assert_array_equal(d["corrupted"], ds.corrupted)
    np.testing.assert_array_equal(d["transition"], ds.transition)
  assert d["probe_ratio"] == pytest.approx(ds.probe_ratio)


def test_load_noise_file_errors(tmp_path):
  with pytest.raises(UserError, match="does not exist"):
    load_noise_file(tmp_path / "nothing.npz")
  (tmp_path / "bad.npz").write_text("x")
  with pytest.raises(UserError, match="not a readable npz"):
    load_noise_file(tmp_path / "bad.npz")
  np.savez(tmp_path / "other.npz", a=np.zeros(1))
  with pytest.raises(UserError, match="lacks"):
    load_noise_file(tmp_path / "other.npz")


def test_validation_of_loaded_arrays(monkeypatch):
  x = np.zeros((40, 4, 4, 1), np.uint8)
  bad = sources.RawDataset(x, np.arange(40) % 2, np.zeros((5, 4, 3, 1), np.uint8),
                           np.zeros(5, np.int64), 2)
  monkeypatch.setitem(source_registry._SOURCES, "digits", lambda d, f: bad)
  with pytest.raises(UserError, match="test images"):
    build("digits_uniform_0.2")


def test_bad_seed_and_probe_ratio():
  with pytest.raises(UserError, match="--seed"):
    build("digits_uniform_0.2", seed=-5)
  with pytest.raises(UserError, match="--probe_dataset_hold_ratio"):
    build("digits_uniform_0.2", probe_ratio=0.001)


def test_noise_report_for_many_classes_is_a_summary():
  from datasets.noisy import NoisyDataset
  clean = np.arange(5000) % 100
  out = noise_lib.corrupt_labels(clean, "asymmetric", 0.4, 100, seed=0, dataset="cifar100")
  x = np.zeros((5000, 2, 2, 1), np.uint8)
  empty = np.zeros(0, np.int64)
  ds = NoisyDataset(parse_dataset_spec("cifar100_asymmetric_0.4"), 100, (2, 2, 1), x, out.labels,
                    clean, out.corrupted, np.arange(5000), out.transition, x[:0], empty, empty,
                    x[:10], clean[:10])
  report = ds.noise_report()
  assert "confusion matrix (100 x 100)" in report and "largest confusions" in report
  assert len(report.splitlines()) < 120
