"""The user's own images as --dataset sources: folder, csv and tfds:<name>.

Tiny image files are written with Pillow, which is also the independent reference decoder: every
pixel the sources return must equal Pillow's reading of the file.
"""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from core.errors import UserError
from datasets import noisy as noisy_lib
from datasets import sources
from datasets.sources import archives, load_raw
from datasets.sources.own import decode, labelled_files, tfds_family
from datasets.spec import parse_dataset_spec

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# Sorted: ids follow the folder names ('dog house' has a space, 'ñandú' is not ASCII).
CLASSES = ["cat", "dog house", "ñandú"]


def pixels(index: int, size=(8, 8), colour=False) -> np.ndarray:
  """An image whose pixels spell its index (so a decoded image says which file it came from)."""
  rng = np.random.default_rng(index)
  image = rng.integers(0, 256, size=(*size, 3 if colour else 1), dtype=np.uint8)
  image[0, 0, 0] = index
  return image if colour else image[..., 0]


def write_image(path, array, fmt=None) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array).save(path, format=fmt)


def pil_reference(path, colour: bool) -> np.ndarray:
  """Pillow's decode: RGB when the set is colour, else grey with one channel."""
  with Image.open(path) as image:
    if colour:
      return np.asarray(image.convert("RGB"))
    return np.asarray(image.convert("L"))[..., None]


def make_folder(root, per_class=4, splits=("train",), colour_classes=("dog house", "ñandú"),
                jpg_classes=("ñandú",), size=(8, 8)) -> dict:
  """root/<split>/<class>/img<i>.png|jpg; colour for `colour_classes`, grey for the rest."""
  written = {}
  index = 0
  for split in splits:
    for name in CLASSES:
      for i in range(per_class):
        ext = "jpg" if name in jpg_classes else "png"
        path = os.path.join(root, split, name, f"img{i}.{ext}")
        write_image(path, pixels(index, size, colour=name in colour_classes))
        written.setdefault(split, []).append((path, CLASSES.index(name)))
        index += 1
  return written


def options(**kw) -> sources.SourceOptions:
  return sources.SourceOptions(**kw)


# ----- folder ----------------------------------------------------------------------------------

def test_folder_with_test_split_names_labels_paths_and_pixels(tmp_path):
  written = make_folder(tmp_path, splits=("train", "test"))
  raw = load_raw("folder", None, None, options(dataset_dir=str(tmp_path)))
  assert raw.class_names == CLASSES and raw.num_classes == 3
  assert raw.x_train.shape == (12, 8, 8, 3) and raw.x_train.dtype == np.uint8   # grey became RGB
  assert raw.x_test.shape == (12, 8, 8, 3)
  assert raw.paths == [p for p, _ in written["train"]]
  np.testing.assert_array_equal(raw.y_train, [y for _, y in written["train"]])
  np.testing.assert_array_equal(raw.y_test, [y for _, y in written["test"]])
  for split, x in (("train", raw.x_train), ("test", raw.x_test)):
    for row, (path, _) in enumerate(written[split]):
      np.testing.assert_array_equal(x[row], pil_reference(path, colour=True), err_msg=path)
  assert raw.x_probe is None


def test_folder_of_grey_images_has_one_channel(tmp_path):
  written = make_folder(tmp_path, colour_classes=(), jpg_classes=())
  raw = load_raw("folder", None, None, options(dataset_dir=str(tmp_path), test_fraction=0.25))
  assert raw.x_train.shape[1:] == (8, 8, 1)
  by_path = dict(zip(raw.paths, raw.x_train))
  for path, _ in written["train"]:
    if path in by_path:
      np.testing.assert_array_equal(by_path[path], pil_reference(path, colour=False))


def test_extensions_in_any_case_other_files_ignored(tmp_path):
  make_folder(tmp_path, per_class=2, colour_classes=(), jpg_classes=())
  write_image(tmp_path / "train" / "cat" / "SHOUT.PNG", pixels(99), fmt="PNG")
  write_image(tmp_path / "train" / "cat" / "photo.Jpeg", pixels(98), fmt="JPEG")
  write_image(tmp_path / "train" / "cat" / "old.bmp", pixels(97, colour=True), fmt="BMP")
  (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
  (tmp_path / "train" / "cat" / ".DS_Store").write_bytes(b"\0\1")
  (tmp_path / "train" / "README").write_text("a file next to the class folders")
  os.makedirs(tmp_path / "test" / "cat")
  for name in CLASSES:
    write_image(tmp_path / "test" / name / "t.png", pixels(50 + CLASSES.index(name)))
  raw = load_raw("folder", None, None, options(dataset_dir=str(tmp_path)))
  names = [os.path.basename(p) for p, y in zip(raw.paths, raw.y_train) if y == 0]
  assert names == ["SHOUT.PNG", "img0.png", "img1.png", "old.bmp", "photo.Jpeg"]
  assert raw.x_train.shape[-1] == 3   # the BMP is colour, so every image is
  np.testing.assert_array_equal(raw.x_train[list(raw.paths).index(str(tmp_path / "train" / "cat" / "old.bmp"))],
                                pil_reference(tmp_path / "train" / "cat" / "old.bmp", colour=True))


def test_alpha_is_dropped_and_gif_reads_its_first_frame(tmp_path):
  from datasets.sources.own import decode  # pylint: disable=g-import-not-at-top
  rgba = np.random.default_rng(0).integers(0, 256, (8, 8, 4), dtype=np.uint8)
  files = [tmp_path / "rgba.png", tmp_path / "grey_alpha.png", tmp_path / "palette.gif"]
  Image.fromarray(rgba, "RGBA").save(files[0])
  Image.fromarray(rgba[..., :2], "LA").save(files[1])
  Image.fromarray(rgba[..., :3]).convert("P").save(files[2])
  out = decode.decode_files([str(f) for f in files], image_size=0, skip_bad=False, where="test")
  assert out.images.shape == (3, 8, 8, 3)
  for image, path in zip(out.images, files):
    np.testing.assert_array_equal(image, pil_reference(path, colour=True), err_msg=str(path))


def test_test_fraction_is_class_balanced_seeded_and_disjoint(tmp_path):
  make_folder(tmp_path, per_class=10, colour_classes=(), jpg_classes=())

  def load(seed, fraction=0.3):
    return load_raw("folder", None, None, options(dataset_dir=str(tmp_path), test_fraction=fraction, seed=seed))

  a, b, c = load(1), load(1), load(2)
  assert np.bincount(a.y_test).tolist() == [3, 3, 3] and np.bincount(a.y_train).tolist() == [7, 7, 7]
  np.testing.assert_array_equal(a.x_test, b.x_test)
  assert a.paths == b.paths and a.paths != c.paths
  train_ids, test_ids = set(a.x_train[:, 0, 0, 0].tolist()), set(a.x_test[:, 0, 0, 0].tolist())
  assert not train_ids & test_ids and train_ids | test_ids == set(range(30))   # pixel 0 spells the file
  assert a.paths == sorted(a.paths, key=lambda p: (CLASSES.index(p.split(os.sep)[-2]), p))   # listed order
  assert np.bincount(load(1, 0.9).y_test).tolist() == [9, 9, 9]


def test_split_test_rounds_per_class_and_keeps_one_for_training():
  labels = np.array([0] * 5 + [1] * 2 + [2] * 1)
  test, train = labelled_files.split_test(labels, 0.5, seed=0)
  assert np.bincount(labels[test], minlength=3).tolist() == [3, 1, 0]   # round(2.5) = 3, >= 1, < n
  assert sorted(np.concatenate([test, train]).tolist()) == list(range(8))
  with pytest.raises(UserError, match="--test_fraction=0.95"):
    labelled_files.split_test(labels, 0.95, seed=0)


def test_probe_folder_is_a_clean_probe_set_and_noise_applies_to_train(tmp_path):
  make_folder(tmp_path, per_class=6, splits=("train", "test", "probe"), colour_classes=(), jpg_classes=())
  raw = load_raw("folder", None, None, options(dataset_dir=str(tmp_path)))
  assert raw.x_probe.shape == (18, 8, 8, 1) and np.bincount(raw.y_probe).tolist() == [6, 6, 6]
  data = noisy_lib.build_noisy_dataset(
      "folder_symmetric_0.5", data_dir=None, probe_ratio=0.02, seed=3,
      source_options=options(dataset_dir=str(tmp_path)))
  assert data.probe_from_file and data.num_probe == 18 and data.num_train == 18
  np.testing.assert_array_equal(data.y_train_clean, raw.y_train)   # the folder labels are the reference
  np.testing.assert_array_equal(data.corrupted, data.y_train != data.y_train_clean)
  assert data.corrupted.any() and data.transition is not None
  assert data.source_paths == raw.paths and data.class_names == CLASSES


def test_folder_without_noise_keeps_labels_of_unknown_cleanliness(tmp_path):
  make_folder(tmp_path, per_class=5, colour_classes=(), jpg_classes=())
  data = noisy_lib.build_noisy_dataset("folder", data_dir=None, probe_ratio=0.0, seed=0,
                                       source_options=options(dataset_dir=str(tmp_path)))
  assert data.y_train_clean is None and data.corrupted is None


@pytest.mark.parametrize("text, name, noise, ratio", [
    ("folder_symmetric_0.2", "folder", "symmetric", 0.2),
    ("csv_uniform_0.4", "csv", "uniform", 0.4),
    ("folder", "folder", "none", 0.0),
    ("csv_none", "csv", "none", 0.0),
    ("tfds:mnist_uniform_0.4", "tfds:mnist", "uniform", 0.4),
    ("tfds:fashion_mnist", "tfds:fashion_mnist", "none", 0.0),
    ("tfds:fashion_mnist_pairflip_0.45", "tfds:fashion_mnist", "pairflip", 0.45),
    ("tfds:mnist:3.0.1", "tfds:mnist:3.0.1", "none", 0.0),
    ("tfds:imagenette/320px_symmetric_0.2", "tfds:imagenette/320px", "symmetric", 0.2),
    ("tfds:cifar10_corrupted/brightness_1:1.*.*_uniform_0.4", "tfds:cifar10_corrupted/brightness_1:1.*.*",
     "uniform", 0.4),
])
def test_spec_parsing_of_own_sources(text, name, noise, ratio):
  spec = parse_dataset_spec(text)
  assert (spec.name, spec.noise, spec.ratio) == (name, noise, ratio)
  assert parse_dataset_spec(str(spec)) == spec


def test_a_tfds_config_names_one_run_folder():
  from ieg.config import RunConfig  # pylint: disable=g-import-not-at-top
  config = RunConfig(dataset="tfds:imagenette/320px:1.0.0_symmetric_0.2", checkpoint_path="/runs",
                     network_name="resnet29", method="supervised", probe_dataset_hold_ratio=0.0)
  assert os.path.relpath(config.training_run_dir, "/runs").split(os.sep) == [
      "tfds:imagenette-320px:1.0.0_symmetric_0.2_p0.0", "resnet29", "supervised"]


@pytest.mark.parametrize("text, message", [
    ("tfds:", "unknown dataset name"),
    ("tfds:Mnist", "unknown dataset name"),
    ("tfdz:mnist", "unknown dataset name"),
    ("tfds:mnist_uniform", "needs a ratio"),
    ("tfds:mnist_uniform_1.5", "outside the range"),
    ("tfds:mnist/", "unknown dataset name"),
    ("tfds:mnist:3.0", "tfds:<name>\\[/<config>\\]\\[:<version>\\]"),
    ("tfds:mnist/a b", "unknown dataset name"),
])
def test_bad_family_specs(text, message):
  with pytest.raises(UserError, match=message):
    parse_dataset_spec(text)


def _folder_error(tmp_path, **kw) -> str:
  with pytest.raises(UserError) as e:
    load_raw("folder", None, None, options(dataset_dir=str(tmp_path), **kw))
  message = str(e.value)
  assert "\n" not in message
  return message


def test_folder_layout_errors(tmp_path):
  assert "does not exist" in _folder_error(tmp_path / "missing")
  assert "has no train/ folder" in _folder_error(tmp_path)
  write_image(tmp_path / "train" / "cat" / "a.png", pixels(0))
  message = _folder_error(tmp_path)
  assert "at least 2 class folders" in message and "'cat'" in message
  os.makedirs(tmp_path / "train" / "dog house")
  message = _folder_error(tmp_path)
  assert "dog house" in message and "holds no image files" in message
  write_image(tmp_path / "train" / "dog house" / "b.png", pixels(1))
  write_image(tmp_path / "test" / "ñandú" / "c.png", pixels(2))
  message = _folder_error(tmp_path)
  assert "test/ñandú is not a class of train/" in message


def test_mixed_sizes_need_image_size(tmp_path):
  make_folder(tmp_path, per_class=2, colour_classes=(), jpg_classes=())
  write_image(tmp_path / "train" / "cat" / "wide.png", pixels(7, size=(6, 10)))
  message = _folder_error(tmp_path)
  assert "8x8" in message and "10x6" in message and "--image_size" in message
  raw = load_raw("folder", None, None, options(dataset_dir=str(tmp_path), image_size=8, test_fraction=0.5))
  assert raw.x_train.shape[1:] == (8, 8, 1)
  # Images already 8 x 8 are untouched.
  by_path = dict(zip(raw.paths, raw.x_train))
  for path, image in by_path.items():
    if not path.endswith("wide.png"):
      np.testing.assert_array_equal(image, pil_reference(path, colour=False))
  raw = load_raw("folder", None, None, options(dataset_dir=str(tmp_path), image_size=4))
  assert raw.x_train.shape[1:] == (4, 4, 1) and raw.x_test.shape[1:] == (4, 4, 1)


def test_unreadable_image_is_named_or_skipped(tmp_path):
  make_folder(tmp_path, per_class=3, colour_classes=(), jpg_classes=())
  bad = tmp_path / "train" / "dog house" / "broken.png"
  bad.write_bytes(b"this is not a png")
  (tmp_path / "train" / "cat" / "empty.jpg").write_bytes(b"")
  message = _folder_error(tmp_path)
  assert str(tmp_path / "train" / "cat" / "empty.jpg") in message and "1 more" in message
  assert "--skip_bad_images" in message
  raw = load_raw("folder", None, None, options(dataset_dir=str(tmp_path), skip_bad_images=True, test_fraction=0.34))
  assert len(raw.y_train) + len(raw.y_test) == 9
  assert str(bad) not in raw.paths
  assert sorted(raw.skipped_paths) == sorted([str(bad), str(tmp_path / "train" / "cat" / "empty.jpg")])


def test_a_set_too_large_for_memory_held_in_memory_is_one_line_naming_an_image_size_that_fits(tmp_path, monkeypatch):
  make_folder(tmp_path, per_class=4, colour_classes=("cat",), jpg_classes=(), size=(16, 16))
  fits = load_raw("folder", None, None, options(dataset_dir=str(tmp_path), test_fraction=0.25))
  # Independent reference: the decoded arrays' own bytes, held COPIES times.
  held = decode.COPIES * (fits.x_train.nbytes + fits.x_test.nbytes)
  assert decode.decoded_bytes(12, 16, 16, 3) == held
  monkeypatch.setattr(decode, "available_memory_bytes", lambda: held - 1)
  message = _folder_error(tmp_path, image_cache="memory")
  assert "12 images of 16x16x3" in message and "free" in message and "--image_size=15 or smaller" in message
  assert "--image_cache=disk" in message
  # The size the message names fits; with room for the full size the set loads again.
  raw = load_raw("folder", None, None, options(dataset_dir=str(tmp_path), image_size=15, test_fraction=0.25,
                                               image_cache="memory"))
  assert raw.x_train.shape[1:] == (15, 15, 3)
  monkeypatch.setattr(decode, "available_memory_bytes", lambda: held)
  assert load_raw("folder", None, None, options(dataset_dir=str(tmp_path), image_cache="memory")).x_train.shape[1:] == (16, 16, 3)


def test_available_memory_is_read_from_this_machine():
  available = decode.available_memory_bytes()
  with open("/proc/meminfo", encoding="utf-8") as f:
    total = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))
  assert available is not None and 0 < available <= total


# ----- csv -------------------------------------------------------------------------------------

def write_csv(path, header, rows) -> str:
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)
  return str(path)


def csv_images(tmp_path, n=4) -> list[str]:
  """n grey and n colour images under tmp_path/images/, as paths relative to tmp_path."""
  rel = []
  for i in range(2 * n):
    name = f"images/{i}.{'png' if i % 2 else 'jpg'}"
    write_image(tmp_path / name, pixels(i, colour=i >= n))
    rel.append(name)
  return rel


def test_csv_with_names_and_split(tmp_path, monkeypatch):
  rel = csv_images(tmp_path)
  labels = ["zebra", "ant", "zebra", "ant", "zebra", "ant", "zebra", "ant"]
  splits = ["train", "train", "TRAIN", "train", "test", "test", "probe", "probe"]
  path = write_csv(tmp_path / "labels.csv", ["path", "label", "split", "note"],
                   [[p, y, s, "x"] for p, y, s in zip(rel, labels, splits)])
  monkeypatch.chdir("/")   # paths are relative to the CSV, not to the working directory
  raw = load_raw("csv", None, path, options())
  assert raw.class_names == ["ant", "zebra"]
  np.testing.assert_array_equal(raw.y_train, [1, 0, 1, 0])
  np.testing.assert_array_equal(raw.y_test, [1, 0])
  np.testing.assert_array_equal(raw.y_probe, [1, 0])
  assert raw.paths == [str(tmp_path / p) for p in rel[:4]]
  assert raw.x_train.shape == (4, 8, 8, 3)
  for row, p in enumerate(rel[:4]):
    np.testing.assert_array_equal(raw.x_train[row], pil_reference(tmp_path / p, colour=True))
  np.testing.assert_array_equal(raw.x_probe[1], pil_reference(tmp_path / rel[7], colour=True))


def test_csv_integer_labels_without_split_use_test_fraction(tmp_path):
  rel = csv_images(tmp_path, n=6)
  path = write_csv(tmp_path / "labels.csv", ["Path", "Label"], [[p, i % 3] for i, p in enumerate(rel)])
  raw = load_raw("csv", None, path, options(test_fraction=0.25, seed=4))
  assert raw.class_names is None and raw.num_classes == 3
  assert np.bincount(raw.y_test).tolist() == [1, 1, 1] and np.bincount(raw.y_train).tolist() == [3, 3, 3]
  data = noisy_lib.build_noisy_dataset("csv_uniform_0.4", data_dir=None, probe_ratio=0.0, seed=4,
                                       dataset_file=path, source_options=options(test_fraction=0.25))
  np.testing.assert_array_equal(data.y_train_clean, raw.y_train)
  assert data.corrupted is not None


@pytest.mark.parametrize("header, rows, message", [
    (["file", "class"], [["a.png", "x"]], "lacks the columns path, label"),
    (["path", "klass"], [["a.png", "x"]], "lacks the column label"),
    (["path", "label", "split"], [["images/0.jpg", "a", "valid"]], "unknown split 'valid'"),
    (["path", "label"], [["images/0.jpg", "a"], ["images/nope.png", "b"]], "line 3: image images/nope.png does not exist"),
    (["path", "label"], [["images/0.jpg", "a"], ["images/1.png", "a"]], "at least 2 classes"),
    (["path", "label"], [["images/0.jpg", "0"], ["images/1.png", "2"]], "class id 1 of 0..2 has no training row"),
    (["path", "label", "split"], [["images/0.jpg", "a"], ["images/1.png", "b"], ["images/2.jpg", "c", "test"]],
     "label 'c' has no training row"),
    (["path", "label"], [], "no rows"),
])
def test_csv_errors(tmp_path, header, rows, message):
  csv_images(tmp_path)
  path = write_csv(tmp_path / "labels.csv", header, rows)
  with pytest.raises(UserError) as e:
    load_raw("csv", None, path, options())
  assert message in str(e.value) and "\n" not in str(e.value)


# ----- tfds:<name> -----------------------------------------------------------------------------

def test_tfds_family_reads_mocked_data(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=12):
    raw = load_raw("tfds:mnist", tmp_path)
  assert raw.x_train.shape == (12, 28, 28, 1) and raw.x_train.dtype == np.uint8
  assert raw.x_test.shape == (12, 28, 28, 1) and raw.num_classes == 10
  assert raw.y_train.dtype == np.int64 and 0 <= raw.y_train.min() and raw.y_train.max() < 10


def test_tfds_config_and_version_reach_the_builder(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=6):
    raw = load_raw("tfds:mnist:3.0.1", tmp_path)
    assert raw.x_train.shape == (6, 28, 28, 1)
    raw = load_raw("tfds:cifar10_corrupted/brightness_1", tmp_path)
    assert raw.x_train.shape == (6, 32, 32, 3)
    with pytest.raises(UserError, match="tfds:mnist:9.9.9: TFDS has no dataset"):
      load_raw("tfds:mnist:9.9.9", tmp_path)


def test_tfds_without_test_split_holds_out_test_fraction(tmp_path, monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  monkeypatch.setattr(tfds_family, "split_names", lambda builder: ["train"])
  with tfds.testing.mock_data(num_examples=40):
    raw = load_raw("tfds:mnist", tmp_path, None, options(test_fraction=0.5, image_size=14))
  assert len(raw.y_train) + len(raw.y_test) == 40 and len(raw.y_test) >= 10
  assert raw.x_train.shape[1:] == (14, 14, 1)


def test_tfds_not_prepared_is_one_line_and_never_downloads(tmp_path, monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare",
                      lambda *a, **k: pytest.fail("download attempted"))
  with pytest.raises(UserError) as e:
    load_raw("tfds:mnist", tmp_path)
  assert "not prepared in" in str(e.value) and str(tmp_path) in str(e.value) and "\n" not in str(e.value)
  with pytest.raises(UserError, match="TFDS has no dataset 'no_such_set'"):
    load_raw("tfds:no_such_set", tmp_path)


# ----- the command line ------------------------------------------------------------------------

def run_cli(*args, timeout=600):
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
  return subprocess.run([sys.executable, "-m", "ieg.main", *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=timeout)


def test_cli_trains_on_a_folder_of_real_fashion_mnist(real_data_dir, tmp_path):
  images, labels, _, _ = archives.read_mnist_idx(real_data_dir / "fashion_mnist", "fashion_mnist")
  names = ["T-shirt top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot"]
  root = tmp_path / "fashion"
  for c, name in enumerate(names):
    for i, row in enumerate(np.flatnonzero(labels == c)[:40]):
      write_image(root / "train" / name / f"{i}.png", images[row])
  broken = root / "train" / names[3] / "broken.png"
  broken.write_bytes(b"not an image")
  result = run_cli("--dataset=folder_symmetric_0.2", f"--dataset_dir={root}", "--method=supervised", "--skip_bad_images",
                   "--network_name=mnist_cnn", "--max_iteration=60", "--eval_freq=60", "--batch_size=32",
                   "--probe_dataset_hold_ratio=0", "--distribution_strategy=one_device", "--seed=1",
                   f"--checkpoint_path={tmp_path / 'runs'}")
  assert result.returncode == 0, result.stderr[-3000:]
  found = [os.path.join(d, "results.json") for d, _, files in os.walk(tmp_path / "runs") if "results.json" in files]
  assert len(found) == 1
  with open(found[0], encoding="utf-8") as f:
    results = json.load(f)
  assert results["top1"] > 0.4, results   # chance is 0.1
  with open(os.path.join(os.path.dirname(found[0]), "detection", "label_issues.csv"), encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 320 and {r["given_label"] for r in rows} == set(names)   # 80 of 400 held out as test
  assert all(os.path.isfile(r["path"]) and r["path"].startswith(str(root / "train")) for r in rows)
  run_dir = os.path.dirname(found[0])
  with open(os.path.join(run_dir, "skipped_images.txt"), encoding="utf-8") as f:
    assert f.read() == f"{broken}\n"
  with open(os.path.join(run_dir, "flags.json"), encoding="utf-8") as f:
    assert json.load(f)["num_skipped_images"] == 1
  with open(os.path.join(run_dir, "noise_report.txt"), encoding="utf-8") as f:
    assert "1 unreadable image file(s) skipped" in f.read()


def _one_line_exit_2(result, *needles):
  assert result.returncode == 2, result.stderr[-2000:]
  lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
  assert len(lines) == 1, result.stderr
  for needle in needles:
    assert needle in lines[0], lines[0]


def test_cli_bad_folder_inputs_exit_2_with_one_line(tmp_path):
  base = ("--method=supervised", "--network_name=mnist_cnn", f"--checkpoint_path={tmp_path / 'runs'}")
  _one_line_exit_2(run_cli("--dataset=folder", *base), "--dataset_dir")
  _one_line_exit_2(run_cli("--dataset=folder", f"--dataset_dir={tmp_path / 'nope'}", *base),
                   "--dataset_dir", "does not exist")
  root = tmp_path / "mixed"
  make_folder(root, per_class=3, colour_classes=(), jpg_classes=())
  write_image(root / "train" / "cat" / "big.png", pixels(5, size=(12, 12)))
  _one_line_exit_2(run_cli("--dataset=folder", f"--dataset_dir={root}", *base), "--image_size", "12x12")
