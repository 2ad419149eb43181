"""Sources: real MNIST / Fashion-MNIST / CIFAR-10 subset, checksums, CIFAR tar archives, TFDS
(mocked), scikit-learn digits, the user's npz, and the one clear error when nothing is found."""
import gzip
import os
import socket
import time

import numpy as np
import pytest

from core.errors import UserError
from datasets import sources
from datasets.sources import archives
from datasets.sources import load_raw
from datasets.sources import registry as source_registry
from datasets.sources import standard
from tests.datasets.archive_writers import chw_rows, cifar_images, md5, write_pickle_tar


@pytest.fixture
def offline(monkeypatch):
  """No network probe, no TFDS download: is_online() says False (and counts calls)."""
  calls = []
  monkeypatch.setattr(standard, "is_online", lambda *a, **k: calls.append(1) or False)
  return calls


# ---------------------------------------------------------------------------------------------
# Real data (../shared/data)

@pytest.mark.realdata
def test_real_mnist_idx(real_data_dir):
  raw = load_raw("mnist", real_data_dir)
  assert raw.x_train.shape == (60000, 28, 28, 1) and raw.x_train.dtype == np.uint8
  assert raw.x_test.shape == (10000, 28, 28, 1)
  assert raw.y_train.dtype == np.int64 and raw.num_classes == 10
  np.testing.assert_array_equal(raw.y_train[:10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
  np.testing.assert_array_equal(np.bincount(raw.y_train),
                                [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
  np.testing.assert_array_equal(np.bincount(raw.y_test),
                                [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
  assert abs(raw.x_train.mean() / 255 - 0.1307) < 1e-3
  assert raw.x_probe is None and raw.class_names == [str(d) for d in range(10)]


@pytest.mark.realdata
def test_real_fashion_mnist(real_data_dir):
  raw = load_raw("fashion_mnist", real_data_dir)
  assert raw.x_train.shape == (60000, 28, 28, 1) and raw.x_test.shape == (10000, 28, 28, 1)
  np.testing.assert_array_equal(raw.y_train[:10], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
  assert (np.bincount(raw.y_train) == 6000).all() and (np.bincount(raw.y_test) == 1000).all()
  assert len(raw.class_names) == 10


@pytest.mark.realdata
def test_real_cifar10_subset(real_data_dir):
  raw = load_raw("cifar10_subset", real_data_dir)
  assert raw.x_train.shape == (4000, 32, 32, 3) and raw.x_test.shape == (1000, 32, 32, 3)
  np.testing.assert_array_equal(raw.y_train[:10], [6, 9, 9, 4, 1, 1, 2, 7, 8, 3])
  np.testing.assert_array_equal(raw.y_test[:10], [3, 8, 8, 0, 6, 6, 1, 6, 3, 1])
  np.testing.assert_array_equal(raw.x_train[0, 0, :3], [[59, 62, 63], [43, 46, 45], [50, 48, 43]])
  np.testing.assert_array_equal(raw.x_test[0, 0, :3],
                                [[158, 112, 49], [159, 111, 47], [165, 116, 51]])
  assert raw.num_classes == 10 and raw.class_names[0] == "airplane"


@pytest.mark.realdata
def test_non_keras_mnist_npz_alone_is_a_checksum_error(real_data_dir, tmp_path, offline):
  (tmp_path / "mnist").mkdir()
  os.symlink(real_data_dir / "mnist" / "mnist.npz", tmp_path / "mnist" / "mnist.npz")
  with pytest.raises(UserError) as e:
    load_raw("mnist", tmp_path)
  msg = str(e.value)
  assert "mnist.npz" in msg and "checksum" in msg and "train-images-idx3-ubyte.gz" in msg
  assert not offline   # failed on the local file, before any network check


# ---------------------------------------------------------------------------------------------
# Checksums and idx files

def test_idx_checksum_mismatch_names_file_and_fix(tmp_path, offline):
  folder = tmp_path / "mnist"
  folder.mkdir()
  for name in archives.MNIST_IDX_FILES:
    with gzip.open(folder / name, "wb") as f:
      f.write(b"\x00\x00\x08\x01\x00\x00\x00\x01\x05")
  with pytest.raises(UserError) as e:
    load_raw("mnist", tmp_path)
  msg = str(e.value)
  assert "train-images-idx3-ubyte.gz" in msg and "md5" in msg
  assert "download it again" in msg and "https://" in msg


def _write_idx_gz(path, array):
  header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


def test_tiny_idx_files_with_patched_checksums(tmp_path, monkeypatch):
  folder = tmp_path / "fashion_mnist"
  folder.mkdir()
  rng = np.random.default_rng(0)
  arrays = [rng.integers(0, 256, (6, 28, 28)), np.arange(6) % 3,
            rng.integers(0, 256, (4, 28, 28)), np.arange(4) % 3]
  table = {}
  for name, a in zip(archives.MNIST_IDX_FILES, arrays):
    _write_idx_gz(folder / name, a)
    table[name] = ("md5", md5(folder / name))
  monkeypatch.setitem(archives.CHECKSUMS, "fashion_mnist", table)
  raw = load_raw("fashion_mnist", tmp_path)
  np.testing.assert_array_equal(raw.x_train[..., 0], arrays[0])
  np.testing.assert_array_equal(raw.y_test, arrays[3])
  assert raw.num_classes == 10


def test_truncated_idx_is_a_clear_error(tmp_path, monkeypatch):
  folder = tmp_path / "mnist"
  folder.mkdir()
  table = {}
  for name in archives.MNIST_IDX_FILES:
    _write_idx_gz(folder / name, np.zeros((3, 28, 28) if "images" in name else (3,)))
    table[name] = None
  data = (folder / "train-images-idx3-ubyte.gz").read_bytes()
  (folder / "train-images-idx3-ubyte.gz").write_bytes(data[:len(data) // 2])
  for name in archives.MNIST_IDX_FILES:
    table[name] = ("md5", md5(folder / name))
  monkeypatch.setitem(archives.CHECKSUMS, "mnist", table)
  with pytest.raises(UserError, match="train-images-idx3-ubyte.gz.*truncated or corrupt"):
    load_raw("mnist", tmp_path)


# ---------------------------------------------------------------------------------------------
# CIFAR python archives written by the test


def write_tiny_cifar10(folder, per_batch=3):
  folder.mkdir(parents=True, exist_ok=True)
  batches, members = [], []
  for i in range(1, 6):
    x = cifar_images(per_batch, i)
    y = [(i + j) % 10 for j in range(per_batch)]
    batches.append((x, y))
    members.append((f"cifar-10-batches-py/data_batch_{i}",
                    {"batch_label": f"training batch {i} of 5", "data": chw_rows(x), "labels": y}))
  x_test = cifar_images(2, 99)
  members.append(("cifar-10-batches-py/test_batch",
                  {"batch_label": "testing batch 1 of 1", "data": chw_rows(x_test),
                   "labels": [7, 8]}))
  members.append(("cifar-10-batches-py/batches.meta", {"label_names": ["a"] * 10}))
  order = [3, 0, 6, 4, 1, 5, 2]   # archive order scrambled: the loader must sort by batch name
  path = folder / archives.CIFAR10_TAR
  write_pickle_tar(path, [members[i] for i in order])
  return path, batches, x_test


def test_tiny_cifar10_archive_order_and_layout(tmp_path, monkeypatch, offline):
  path, batches, x_test = write_tiny_cifar10(tmp_path / "cifar10")
  monkeypatch.setitem(archives.CHECKSUMS, "cifar10", {archives.CIFAR10_TAR: ("md5", md5(path))})
  raw = load_raw("cifar10", tmp_path)
  np.testing.assert_array_equal(raw.x_train, np.concatenate([b[0] for b in batches]))
  np.testing.assert_array_equal(raw.y_train, np.concatenate([b[1] for b in batches]))
  np.testing.assert_array_equal(raw.x_test, x_test)
  np.testing.assert_array_equal(raw.y_test, [7, 8])
  assert raw.x_train.shape == (15, 32, 32, 3) and raw.x_train.flags.c_contiguous
  # pixel (h=0, w=1) of image 0 is element 1 of the red plane, 1025 of green, 2049 of blue
  row = chw_rows(batches[0][0])[0]
  np.testing.assert_array_equal(raw.x_train[0, 0, 1], [row[1], row[1025], row[2049]])
  assert raw.class_names[9] == "truck" and not offline


def test_tiny_cifar100_archive_fine_labels(tmp_path, monkeypatch):
  folder = tmp_path / "cifar100"
  folder.mkdir()
  x, xt = cifar_images(4, 1), cifar_images(2, 2)
  path = folder / archives.CIFAR100_TAR
  write_pickle_tar(path, [
      ("cifar-100-python/test", {"data": chw_rows(xt), "fine_labels": [99, 0],
                                 "coarse_labels": [13, 4]}),
      ("cifar-100-python/train", {"data": chw_rows(x), "fine_labels": [0, 51, 53, 57],
                                  "coarse_labels": [4, 4, 4, 4]}),
  ])
  monkeypatch.setitem(archives.CHECKSUMS, "cifar100", {archives.CIFAR100_TAR: ("md5", md5(path))})
  raw = load_raw("cifar100", tmp_path)
  np.testing.assert_array_equal(raw.y_train, [0, 51, 53, 57])
  np.testing.assert_array_equal(raw.y_test, [99, 0])
  np.testing.assert_array_equal(raw.x_train, x)
  assert raw.num_classes == 100 and raw.class_names[99] == "worm"


def test_cifar_checksum_mismatch(tmp_path):
  write_tiny_cifar10(tmp_path / "cifar10")   # real table: the tiny archive cannot match
  with pytest.raises(UserError) as e:
    load_raw("cifar10", tmp_path)
  msg = str(e.value)
  assert "cifar-10-python.tar.gz" in msg and "c58f30108f718f92721af3b95e74349a" in msg
  assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in msg


def test_truncated_cifar_archive(tmp_path, monkeypatch):
  path, _, _ = write_tiny_cifar10(tmp_path / "cifar10", per_batch=40)
  data = path.read_bytes()
  path.write_bytes(data[:len(data) * 2 // 3])
  monkeypatch.setitem(archives.CHECKSUMS, "cifar10", {archives.CIFAR10_TAR: ("md5", md5(path))})
  with pytest.raises(UserError) as e:
    load_raw("cifar10", tmp_path)
  msg = str(e.value)
  assert "cifar-10-python.tar.gz" in msg and "truncated or corrupt" in msg
  assert "download it again" in msg


def test_archive_with_code_in_a_pickle_is_refused(tmp_path, monkeypatch):
  class Evil:
    def __reduce__(self):
      return (os.system, ("echo pwned",))
  folder = tmp_path / "cifar100"
  folder.mkdir()
  path = folder / archives.CIFAR100_TAR
  write_pickle_tar(path, [("cifar-100-python/train", Evil()), ("cifar-100-python/test", {})])
  monkeypatch.setitem(archives.CHECKSUMS, "cifar100", {archives.CIFAR100_TAR: ("md5", md5(path))})
  with pytest.raises(UserError, match="unexpected object"):
    load_raw("cifar100", tmp_path)


# ---------------------------------------------------------------------------------------------
# TFDS (mocked, offline) and the error when nothing is found

def test_tfds_mock_data(tmp_path, monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  monkeypatch.setattr(standard, "is_online", lambda *a, **k: pytest.fail("network check reached"))
  with tfds.testing.mock_data(num_examples=12):
    raw = load_raw("mnist", tmp_path)   # no local files -> tfds.load(download=False)
  assert raw.x_train.shape == (12, 28, 28, 1) and raw.x_train.dtype == np.uint8
  assert raw.y_train.shape == (12,) and raw.y_train.dtype == np.int64
  assert raw.x_test.shape[1:] == (28, 28, 1) and raw.num_classes == 10
  assert raw.y_train.min() >= 0 and raw.y_train.max() < 10


def test_offline_without_files_is_one_clear_error_fast(tmp_path, offline):
  pytest.importorskip("tensorflow_datasets")
  start = time.monotonic()
  with pytest.raises(UserError) as e:
    load_raw("cifar10", tmp_path)
  elapsed = time.monotonic() - start
  msg = str(e.value)
  assert "cifar-10-python.tar.gz" in msg and str(tmp_path / "cifar10") in msg
  assert "TFDS" in msg and "offline" in msg and "online" in msg
  assert "--dataset" in msg and "https://www.cs.toronto.edu" in msg
  assert offline == [1]          # checked once, never downloaded
  assert elapsed < 30, elapsed   # includes importing TensorFlow when this test runs first


def test_offline_mnist_lists_the_idx_files(tmp_path, offline):
  pytest.importorskip("tensorflow_datasets")
  (tmp_path / "mnist").mkdir()
  with pytest.raises(UserError) as e:
    load_raw("mnist", tmp_path)
  msg = str(e.value)
  for name in archives.MNIST_IDX_FILES + ("mnist.npz",):
    assert name in msg
  assert str(tmp_path / "mnist") in msg


def test_is_online_uses_a_short_connect(monkeypatch):
  server = socket.socket()
  server.bind(("127.0.0.1", 0))
  server.listen(1)
  try:
    monkeypatch.setattr(standard, "TFDS_STORAGE_HOST", server.getsockname())
    assert standard.is_online(timeout=2.0)
  finally:
    server.close()
  closed = socket.socket()
  closed.bind(("127.0.0.1", 0))
  port = closed.getsockname()[1]
  closed.close()
  monkeypatch.setattr(standard, "TFDS_STORAGE_HOST", ("127.0.0.1", port))
  start = time.monotonic()
  assert not standard.is_online(timeout=1.0)
  assert time.monotonic() - start < 1.5


# ---------------------------------------------------------------------------------------------
# digits, cifar10_subset errors, registry

def test_digits():
  raw = load_raw("digits", None)
  assert raw.x_train.shape == (1437, 8, 8, 1) and raw.x_test.shape == (360, 8, 8, 1)
  assert raw.x_train.dtype == np.uint8 and raw.x_train.max() == 255 and raw.x_train.min() == 0
  assert raw.num_classes == 10
  counts = np.bincount(raw.y_test, minlength=10)
  total = np.bincount(np.concatenate([raw.y_train, raw.y_test]))
  assert np.all(np.abs(counts - total * 360 / 1797) < 1)   # stratified
  again = load_raw("digits", "/nonexistent")                # fixed split, no data_dir needed
  np.testing.assert_array_equal(raw.y_train, again.y_train)
  np.testing.assert_array_equal(raw.x_test, again.x_test)


def test_cifar10_subset_missing_and_mismatch(tmp_path):
  with pytest.raises(UserError, match="cifar10_subset.npz"):
    load_raw("cifar10_subset", tmp_path)
  with pytest.raises(UserError, match="--data_dir"):
    load_raw("cifar10_subset", None)
  (tmp_path / "cifar10_subset").mkdir()
  np.savez(tmp_path / "cifar10_subset" / "cifar10_subset.npz", x_train=np.zeros(1))
  with pytest.raises(UserError, match="sha256 checksum mismatch"):
    load_raw("cifar10_subset", tmp_path)


def test_unknown_source_and_registry(monkeypatch):
  with pytest.raises(UserError, match="--dataset.*cifar10, cifar100, mnist"):
    load_raw("imagenet", None)
  names = sources.source_names()
  assert names == ["cifar10", "cifar100", "mnist", "fashion_mnist", "digits", "cifar10_subset",
                   "custom", "folder", "csv", "cifar10n_aggre", "cifar10n_worst", "cifar10n_rand1", "cifar10n_rand2",
                   "cifar10n_rand3", "cifar100n_noisy", "clothing1m", "clothing1m_balanced", "trec",
                   "webvisionmini"]
  monkeypatch.setattr(source_registry, "_SOURCES", dict(source_registry._SOURCES))

  @sources.register_source("tiny")
  def _tiny(data_dir, dataset_file):
    x = np.zeros((4, 2, 2, 1), np.uint8)
    return sources.RawDataset(x, np.array([0, 1, 0, 1]), x, np.array([0, 1, 1, 0]), 2)

  assert "tiny" in sources.source_names()
  assert load_raw("tiny", None).num_classes == 2
  with pytest.raises(ValueError):
    sources.register_source("tiny")(_tiny)


def test_a_source_breaking_the_contract_is_caught(monkeypatch):
  x = np.zeros((4, 2, 2, 1), np.uint8)
  monkeypatch.setitem(source_registry._SOURCES, "broken", lambda d, f: sources.RawDataset(
      x, np.array([0, 1, 0, 5]), x, np.array([0, 1, 1, 0]), 2))
  with pytest.raises(UserError, match=r"\[0, 2\)"):
    load_raw("broken", None)


# ---------------------------------------------------------------------------------------------
# custom npz

def save_custom(path, **arrays):
  rng = np.random.default_rng(0)
  base = dict(x_train=rng.integers(0, 256, (20, 6, 5), dtype=np.uint8),
              y_train=np.arange(20) % 3,
              x_test=rng.integers(0, 256, (6, 6, 5), dtype=np.uint8),
              y_test=np.arange(6) % 3)
  base.update(arrays)
  np.savez(path, **{k: v for k, v in base.items() if v is not None})
  return path


def test_custom_happy_path(tmp_path):
  path = save_custom(tmp_path / "d.npz")
  raw = load_raw("custom", None, path)
  assert raw.x_train.shape == (20, 6, 5, 1) and raw.x_test.shape == (6, 6, 5, 1)
  assert raw.y_train.dtype == np.int64
  assert raw.num_classes == 3                 # max label + 1 over all splits
  assert raw.x_probe is None


def test_custom_float_images_probe_and_names(tmp_path):
  x = np.linspace(0, 1, 10 * 4 * 4 * 3).reshape(10, 4, 4, 3).astype(np.float32)
  path = save_custom(tmp_path / "d.npz", x_train=x, y_train=np.arange(10) % 3,
                     x_test=x[:3], y_test=np.array([[0], [1], [0]]),     # Keras-style [N, 1]
                     x_probe=(x[:4] * 255).astype(np.uint8), y_probe=np.array([0, 1, 2, 1.0]),
                     class_names=np.array(["cat", "dog", "cow"]))
  raw = load_raw("custom", None, path)
  assert raw.x_train.dtype == np.uint8 and raw.x_train.max() == 255 and raw.x_train.min() == 0
  np.testing.assert_array_equal(raw.x_train, np.round(x * 255).astype(np.uint8))
  np.testing.assert_array_equal(raw.y_test, [0, 1, 0])
  np.testing.assert_array_equal(raw.y_probe, [0, 1, 2, 1])
  assert raw.num_classes == 3 and raw.class_names == ["cat", "dog", "cow"]


@pytest.mark.parametrize("arrays, must_mention", [
    (dict(y_test=None), "lacks y_test"),
    (dict(x_train=np.zeros((0, 6, 5), np.uint8), y_train=np.zeros(0, int)), "empty"),
    (dict(y_train=np.zeros(20, int)), "only one class"),
    (dict(y_train=np.arange(20) % 3 - 1), "negative"),
    (dict(y_train=np.arange(20) / 3), "integer"),
    (dict(y_train=np.array(["a"] * 20)), "integer"),
    (dict(x_test=np.zeros((6, 7, 5), np.uint8)), "H, W, C must match"),
    (dict(y_train=np.arange(19) % 3), "len(x_train) = 20 but len(y_train) = 19"),
    (dict(x_train=np.full((20, 6, 5), 2.0)), "outside [0, 1]"),
    (dict(x_train=np.full((20, 6, 5), np.nan)), "outside [0, 1]"),
    (dict(x_train=np.zeros((20, 6, 5), np.int32)), "dtype int32"),
    (dict(x_train=np.zeros((20, 30), np.uint8)), "[N, H, W] or [N, H, W, C]"),
    (dict(y_train=np.zeros((20, 3), int)), "not one-hot"),
    (dict(x_probe=np.zeros((2, 6, 5), np.uint8)), "x_probe / y_probe"),
    (dict(x_probe=np.zeros((2, 6, 4), np.uint8), y_probe=np.array([0, 1])), "x_probe images"),
    (dict(class_names=np.array(["a", "b"])), "class_names"),
    (dict(y_train=np.arange(20) % 3 + 1, y_test=np.arange(6) % 3 + 1), "labels start at 1"),
    (dict(y_test=np.arange(6) % 5), "classes 3, 4 of 0..4 have no training example"),
])
def test_custom_errors(tmp_path, arrays, must_mention):
  path = save_custom(tmp_path / "d.npz", **arrays)
  with pytest.raises(UserError) as e:
    load_raw("custom", None, path)
  assert must_mention in str(e.value) and "--dataset_file" in str(e.value)


def test_custom_file_errors(tmp_path):
  with pytest.raises(UserError, match="needs --dataset_file"):
    load_raw("custom", None, None)
  with pytest.raises(UserError, match="does not exist"):
    load_raw("custom", None, tmp_path / "missing.npz")
  (tmp_path / "text.npz").write_text("hello")
  with pytest.raises(UserError, match="not an npz"):
    load_raw("custom", None, tmp_path / "text.npz")
  np.save(tmp_path / "single.npy", np.zeros(3))
  with pytest.raises(UserError, match="not an npz"):
    load_raw("custom", None, tmp_path / "single.npy")
  np.savez(tmp_path / "obj.npz", x_train=np.array([{}], dtype=object), y_train=np.zeros(1),
           x_test=np.zeros(1), y_test=np.zeros(1))
  with pytest.raises(UserError, match="cannot read array 'x_train'"):
    load_raw("custom", None, tmp_path / "obj.npz")
