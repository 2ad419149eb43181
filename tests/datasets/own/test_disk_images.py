"""Folder and CSV images decoded once to a file on disk (--image_cache=disk, or auto when memory is short).

The in-memory load of the same files is the reference: the disk path must give the same pixels,
labels, paths and batches, hold no image array in memory, and reuse its file while the files stay.
"""
import os
import pickle
import shutil

import numpy as np
import pytest

from core.errors import UserError
from core import disk_images
from datasets import noisy as noisy_lib
from datasets.pipelines import images as pipeline
from datasets.sources import load_raw
from datasets.sources.own import decode, disk_cache
from tests.datasets.own.test_own_sources import make_folder, options, pil_reference, write_csv


def _disk(tmp_path, **kw):
  return options(image_cache="disk", image_cache_dir=str(tmp_path / "cache"), **kw)


def _cache_files(tmp_path):
  folder = tmp_path / "cache"
  return sorted(n for n in os.listdir(folder) if n.endswith(disk_cache.SUFFIX)) if folder.exists() else []


def test_disk_images_select_rows_without_copying_and_read_them_like_numpy(tmp_path):
  reference = np.random.default_rng(0).integers(0, 256, size=(10, 3, 2, 1), dtype=np.uint8)
  path = tmp_path / "x.uint8"
  reference.tofile(path)
  images = disk_images.DiskImages(str(path), (3, 2, 1), 10)
  assert images.shape == (10, 3, 2, 1) and images.dtype == np.uint8 and len(images) == 10
  picked = images[np.array([7, 2, 9, 0])]
  assert isinstance(picked, disk_images.DiskImages) and picked.shape == (4, 3, 2, 1)
  twice = picked[np.array([3, 1])]                 # a selection of a selection: rows 0 and 2
  np.testing.assert_array_equal(np.asarray(twice), reference[[0, 2]])
  mask = np.zeros(10, bool)
  mask[[1, 4]] = True
  np.testing.assert_array_equal(np.asarray(images[mask]), reference[mask])
  np.testing.assert_array_equal(picked[1:3], reference[[2, 9]])
  np.testing.assert_array_equal(picked[0], reference[7])
  np.testing.assert_array_equal(picked.read([2, 2]), reference[[9, 9]])
  again = pickle.loads(pickle.dumps(picked))
  np.testing.assert_array_equal(np.asarray(again), reference[[7, 2, 9, 0]])


def test_folder_on_disk_gives_the_pixels_labels_and_paths_of_the_in_memory_load(tmp_path):
  data = tmp_path / "data"
  make_folder(data, per_class=4, splits=("train", "probe"), size=(8, 8))
  os.makedirs(data / "extra")
  memory = load_raw("folder", None, None, options(dataset_dir=str(data), test_fraction=0.25, image_cache="memory"))
  disk = load_raw("folder", None, None, _disk(tmp_path, dataset_dir=str(data), test_fraction=0.25))
  for split in ("x_train", "x_test", "x_probe"):
    assert isinstance(getattr(disk, split), disk_images.DiskImages), split
    assert isinstance(getattr(memory, split), np.ndarray), split
    np.testing.assert_array_equal(np.asarray(getattr(disk, split)), getattr(memory, split))
  for split in ("y_train", "y_test", "y_probe"):
    np.testing.assert_array_equal(getattr(disk, split), getattr(memory, split))
  assert disk.paths == memory.paths and disk.class_names == memory.class_names
  # The pixels are Pillow's reading of each file (grey files repeated into RGB: the set has colour).
  for row in (0, 5):
    np.testing.assert_array_equal(disk.x_train[row], pil_reference(disk.paths[row], colour=True))
  [name] = _cache_files(tmp_path)
  assert name.startswith("images_24_") and os.path.getsize(tmp_path / "cache" / name) == 24 * 8 * 8 * 3
  assert sorted(os.listdir(tmp_path / "cache")) == sorted([name, name.replace(".uint8", ".json")])


def test_disk_cache_is_reused_while_the_files_stay_and_redone_when_one_changes(tmp_path, monkeypatch):
  data = tmp_path / "data"
  written = make_folder(data, per_class=3, size=(8, 8))
  first = load_raw("folder", None, None, _disk(tmp_path, dataset_dir=str(data), test_fraction=0.34))
  real = decode.decoded_dataset
  calls = []
  monkeypatch.setattr(decode, "decoded_dataset", lambda paths: calls.append(len(paths)) or real(paths))
  again = load_raw("folder", None, None, _disk(tmp_path, dataset_dir=str(data), test_fraction=0.34))
  assert calls == []                         # nothing decoded: the pixels come from the file
  np.testing.assert_array_equal(np.asarray(again.x_train), np.asarray(first.x_train))
  np.testing.assert_array_equal(again.y_test, first.y_test)
  path, _ = written["train"][0]
  os.utime(path, ns=(1, 1))                  # the same bytes, another modification time
  load_raw("folder", None, None, _disk(tmp_path, dataset_dir=str(data), test_fraction=0.34))
  assert len(_cache_files(tmp_path)) == 2 and calls == [len(written["train"])] * 2   # shapes, then pixels
  load_raw("folder", None, None, _disk(tmp_path, dataset_dir=str(data), test_fraction=0.34, image_size=4))
  assert len(_cache_files(tmp_path)) == 3    # another image size, another file


def test_disk_path_keeps_the_in_memory_errors_and_skips(tmp_path):
  data = tmp_path / "data"
  make_folder(data, per_class=3, size=(8, 8))
  from PIL import Image
  Image.new("L", (9, 8)).save(data / "train" / "cat" / "wide.png")
  with pytest.raises(UserError, match=r"images differ in size .*--image_size=N") as e:
    load_raw("folder", None, None, _disk(tmp_path, dataset_dir=str(data)))
  assert "\n" not in str(e.value)
  (data / "train" / "cat" / "broken.png").write_bytes(b"not a png")
  with pytest.raises(UserError, match=r"cannot decode .*broken.png.*--skip_bad_images"):
    load_raw("folder", None, None, _disk(tmp_path, dataset_dir=str(data), image_size=6))
  raw = load_raw("folder", None, None, _disk(tmp_path, dataset_dir=str(data), image_size=6, skip_bad_images=True,
                                              test_fraction=0.25))
  assert raw.x_train.shape[1:] == (6, 6, 3) and str(data / "train" / "cat" / "broken.png") in raw.skipped_paths
  reused = load_raw("folder", None, None, _disk(tmp_path, dataset_dir=str(data), image_size=6, skip_bad_images=True,
                                                 test_fraction=0.25))   # from the file: the same skips
  assert reused.skipped_paths == raw.skipped_paths and reused.paths == raw.paths
  with pytest.raises(UserError, match=r"cannot decode .*broken.png"):   # without the flag the file is named again
    load_raw("folder", None, None, _disk(tmp_path, dataset_dir=str(data), image_size=6))
  memory = load_raw("folder", None, None, options(dataset_dir=str(data), image_size=6, skip_bad_images=True,
                                                  test_fraction=0.25))
  np.testing.assert_array_equal(np.asarray(raw.x_train), memory.x_train)   # resized alike
  with pytest.raises(UserError, match="--image_cache=attic is not known"):
    load_raw("folder", None, None, options(dataset_dir=str(data), image_cache="attic"))


def test_auto_goes_to_disk_when_memory_is_short(tmp_path, monkeypatch, caplog):
  data = tmp_path / "data"
  make_folder(data, per_class=3, size=(8, 8))
  monkeypatch.setattr(decode, "available_memory_bytes", lambda: 100)
  raw = load_raw("folder", None, None, options(dataset_dir=str(data), test_fraction=0.34,
                                               image_cache_dir=str(tmp_path / "cache")))
  assert isinstance(raw.x_train, disk_images.DiskImages) and len(_cache_files(tmp_path)) == 1
  [line] = [r.getMessage() for r in caplog.records if "decoded once to" in r.getMessage()]
  assert "more than the 0.1 KiB free" in line and str(tmp_path / "cache") in line and "--image_cache=memory" in line
  monkeypatch.setattr(decode, "available_memory_bytes", lambda: 1 << 40)
  assert isinstance(load_raw("folder", None, None, options(dataset_dir=str(data), test_fraction=0.34,
                                                           image_cache_dir=str(tmp_path / "cache"))).x_train, np.ndarray)


def test_csv_on_disk(tmp_path):
  data = tmp_path / "data"
  written = make_folder(data, per_class=3, size=(8, 8))
  rows = [(os.path.relpath(p, data), y) for p, y in written["train"]]
  table = write_csv(data / "labels.csv", ["path", "label"], rows)
  memory = load_raw("csv", None, table, options(test_fraction=0.34, image_cache="memory"))
  disk = load_raw("csv", None, table, _disk(tmp_path, test_fraction=0.34))
  np.testing.assert_array_equal(np.asarray(disk.x_train), memory.x_train)
  np.testing.assert_array_equal(disk.y_test, memory.y_test)


def test_too_little_disk_or_a_failed_write_leaves_no_cache_file(tmp_path, monkeypatch):
  data = tmp_path / "data"
  make_folder(data, per_class=3, size=(8, 8))
  monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**6, 10**6 - 100, 100))
  with pytest.raises(UserError, match=r"need 1\.7 KiB on disk and .* has 0\.1 KiB free") as e:  # 9 images of 8x8x3
    load_raw("folder", None, None, _disk(tmp_path, dataset_dir=str(data)))
  assert "\n" not in str(e.value) and "--image_cache_dir=DIR" in str(e.value)
  monkeypatch.undo()

  def fail(images, target):
    raise KeyboardInterrupt   # stopped half-way
  monkeypatch.setattr(disk_cache, "CHUNK", 4)
  real = decode.to_common_shape
  calls = []
  monkeypatch.setattr(decode, "to_common_shape", lambda images, target: calls.append(1) or (
      real(images, target) if len(calls) < 2 else fail(images, target)))
  with pytest.raises(KeyboardInterrupt):
    load_raw("folder", None, None, _disk(tmp_path, dataset_dir=str(data)))
  assert os.listdir(tmp_path / "cache") == []   # no finished-looking file, no partial one, no index
  monkeypatch.undo()
  load_raw("folder", None, None, _disk(tmp_path, dataset_dir=str(data), test_fraction=0.34))
  assert len(_cache_files(tmp_path)) == 1


@pytest.fixture(scope="module")
def both_loads(tmp_path_factory):
  """The same noisy folder dataset assembled from memory and from disk."""
  root = tmp_path_factory.mktemp("both")
  make_folder(root / "data", per_class=6, size=(8, 8))
  def build(**kw):
    return noisy_lib.build_noisy_dataset("folder_symmetric_0.4", data_dir=None, probe_ratio=0.25, seed=3,
                                         source_options=options(dataset_dir=str(root / "data"), test_fraction=0.2, **kw))
  return build(image_cache="memory"), build(image_cache="disk", image_cache_dir=str(root / "cache"))


def test_noisy_dataset_from_disk_matches_memory(both_loads):
  memory, disk = both_loads
  assert isinstance(disk.x_train, disk_images.DiskImages) and isinstance(disk.x_probe, disk_images.DiskImages)
  np.testing.assert_array_equal(disk.y_train, memory.y_train)
  np.testing.assert_array_equal(disk.corrupted, memory.corrupted)
  np.testing.assert_array_equal(np.asarray(disk.x_train), memory.x_train)
  np.testing.assert_array_equal(np.asarray(disk.x_probe), memory.x_probe)
  rows = np.array([3, 0, 5])
  np.testing.assert_array_equal(np.asarray(disk.training_subset(rows).x_train), memory.training_subset(rows).x_train)


def _batches(dataset, count):
  return [{k: v.numpy() for k, v in batch.items()} for batch in dataset.take(count)]


def test_pipelines_read_the_same_batches_from_disk(both_loads):
  """Eagerly and inside tf.data: the same augmented training batches (with probe batches and the
  strong view), the same test batches and ordered batches."""
  memory, disk = both_loads
  kw = dict(batch_size=4, seed=5, start_step=2, weak_augmentation="crop_flip", pad=2, flip=True,
            strong_aug_type="autoaug", cutout_size=4, probe_batch_size=3)
  expected = _batches(pipeline.train_dataset(memory.x_train, memory.y_train, probe_images=memory.x_probe,
                                             probe_labels=memory.y_probe, **kw), 3)
  got = _batches(pipeline.train_dataset(disk.x_train, disk.y_train, probe_images=disk.x_probe,
                                        probe_labels=disk.y_probe, **kw), 3)
  for want, have in zip(expected, got):
    assert want.keys() == have.keys()
    for key in want:
      np.testing.assert_array_equal(have[key], want[key], err_msg=key)
  for want, have in zip(_batches(pipeline.eval_dataset(memory.x_test, memory.y_test, batch_size=2), 9),
                        _batches(pipeline.eval_dataset(disk.x_test, disk.y_test, batch_size=2), 9)):
    np.testing.assert_array_equal(have["image"], want["image"])
    np.testing.assert_array_equal(have["label"], want["label"])
  ordered = _batches(pipeline.ordered_batches(disk.x_train, {"index": np.arange(len(disk.y_train))}, batch_size=5), 99)
  np.testing.assert_array_equal(np.concatenate([b["image"] for b in ordered]), memory.x_train)
  assert [len(b["index"]) for b in ordered][-1] == len(memory.y_train) - 5 * (len(ordered) - 1)


def test_tfds_on_disk_matches_memory_and_is_read_back_without_the_dataset(tmp_path, monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  from datasets.sources.own import tfds_family  # pylint: disable=g-import-not-at-top
  with tfds.testing.mock_data(num_examples=10):
    memory = load_raw("tfds:mnist", tmp_path, None, options(image_size=14, image_cache="memory"))
    disk = load_raw("tfds:mnist", tmp_path, None, _disk(tmp_path, image_size=14))
  assert isinstance(disk.x_train, disk_images.DiskImages) and disk.x_train.shape == (10, 14, 14, 1)
  for split in ("train", "test"):
    np.testing.assert_array_equal(np.asarray(getattr(disk, f"x_{split}")), getattr(memory, f"x_{split}"))
    np.testing.assert_array_equal(getattr(disk, f"y_{split}"), getattr(memory, f"y_{split}"))
  [name] = _cache_files(tmp_path)
  assert name.startswith("tfds_mnist_") and os.path.getsize(tmp_path / "cache" / name) == 20 * 14 * 14
  monkeypatch.setattr(tfds_family, "_examples", lambda *a: pytest.fail("the dataset was read again"))
  with tfds.testing.mock_data(num_examples=10):
    again = load_raw("tfds:mnist", tmp_path, None, _disk(tmp_path, image_size=14))
  np.testing.assert_array_equal(np.asarray(again.x_test), memory.x_test)
  # Without a test split the holdout is drawn on the rows of the file, as in memory.
  monkeypatch.undo()
  monkeypatch.setattr(tfds_family, "split_names", lambda builder: ["train"])
  with tfds.testing.mock_data(num_examples=10):
    memory = load_raw("tfds:mnist", tmp_path, None, options(test_fraction=0.3, image_cache="memory"))
    disk = load_raw("tfds:mnist", tmp_path, None, _disk(tmp_path, test_fraction=0.3))
  np.testing.assert_array_equal(np.asarray(disk.x_test), memory.x_test)
  np.testing.assert_array_equal(disk.y_train, memory.y_train)


def test_tfds_too_large_for_memory_goes_to_disk_from_its_metadata(tmp_path, monkeypatch):
  """A prepared set whose metadata gives its size: auto decides before reading anything."""
  class Split:
    num_examples = 70_000
  class Info:
    features = {"image": type("F", (), {"shape": (28, 28, 1)})()}
    splits = {"train": Split(), "test": Split()}
  builder = type("B", (), {"info": Info()})()
  from datasets.sources.own import tfds_family  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(decode, "available_memory_bytes", lambda: 10**8)
  estimate = tfds_family._memory_estimate(builder, ["train", "test"], "image", options(image_size=32))  # pylint: disable=protected-access
  # Independent arithmetic: the examples as read, plus two more copies at 32x32.
  assert estimate.need == 140_000 * 28 * 28 + 2 * 140_000 * 32 * 32 and not estimate.fits
  from datasets.sources.own import labelled_files  # pylint: disable=g-import-not-at-top
  assert labelled_files.use_disk(options(image_cache_dir=str(tmp_path)), estimate, "--dataset=tfds:x")
  with pytest.raises(UserError, match=r"140000 images of 28x28x1 .* --image_cache=disk"):
    labelled_files.use_disk(options(image_cache="memory"), estimate, "--dataset=tfds:x")
  monkeypatch.setattr(decode, "available_memory_bytes", lambda: 10**10)
  fits = tfds_family._memory_estimate(builder, ["train", "test"], "image", options())  # pylint: disable=protected-access
  assert fits.fits and not labelled_files.use_disk(options(image_cache_dir=str(tmp_path)), fits, "--dataset=tfds:x")
