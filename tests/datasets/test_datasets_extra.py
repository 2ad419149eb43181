"""The other datasets of the seed papers: TREC (real files), CIFAR-N, instance-dependent and open-set
noise, WebVision-mini and Clothing1M (streamed from files). Every loader reads a tiny fixture that
the test writes in the real on-disk format; missing files give one UserError naming what goes where."""
import json
import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from core.errors import UserError
from datasets import noisy
from datasets import noisy_files
from datasets import sources
from datasets import text as text_lib
from datasets.noise import instance as noise_instance
from datasets.pipelines import files as pipeline_files
from datasets.pipelines import text as pipeline_text
from datasets.sources import archives, cifar_n, clothing1m, trec, webvision
from datasets.spec import parse_dataset_spec
from tests.datasets.archive_writers import chw_rows, cifar_images, md5, write_pickle_tar


def take(dataset, n):
  return [{k: v.numpy() for k, v in b.items()} for b in dataset.take(n)]


# ---------------------------------------------------------------------------------------------
# TREC: the real files

TREC_TRAIN_COUNTS = {"ABBR": 86, "DESC": 1162, "ENTY": 1250, "HUM": 1223, "LOC": 835, "NUM": 896}
TREC_TEST_COUNTS = {"ABBR": 9, "DESC": 138, "ENTY": 94, "HUM": 65, "LOC": 81, "NUM": 113}


@pytest.fixture(scope="module")
def trec_raw(real_data_dir):
  return sources.load_raw("trec", real_data_dir)


def hand_count_coarse(path):
  counts = {}
  for line in open(path, encoding="latin-1"):
    if line.strip():
      coarse = line.split(":", 1)[0]
      counts[coarse] = counts.get(coarse, 0) + 1
  return counts


@pytest.mark.realdata
def test_trec_real_files_class_counts_and_token_ids(trec_raw, real_data_dir):
  raw = trec_raw
  assert raw.x_train.shape == (5452, 300) and raw.x_test.shape == (500, 300)
  assert raw.x_train.dtype == np.int32 and raw.class_names == list(TREC_TRAIN_COUNTS)
  train_counts = dict(zip(raw.class_names, np.bincount(raw.y_train, minlength=6).tolist()))
  assert train_counts == TREC_TRAIN_COUNTS == hand_count_coarse(real_data_dir / "trec" / "train_5500.label")
  assert dict(zip(raw.class_names, np.bincount(raw.y_test).tolist())) == TREC_TEST_COUNTS
  # The first training question, decoded back from its ids (hand-tokenised: lower case, spaces).
  first = open(real_data_dir / "trec" / "train_5500.label", encoding="latin-1").readline()
  label, _, question = first.partition(" ")
  ids = raw.x_train[0]
  decoded = [raw.vocabulary[i] for i in ids[ids != text_lib.PAD_ID]]
  assert decoded == question.lower().split() and raw.class_names[raw.y_train[0]] == label.split(":")[0]
  assert raw.vocabulary[:2] == [text_lib.PAD, text_lib.UNK]
  # Every training token is in the vocabulary; only the test split can hold unknown tokens.
  assert (raw.x_train != text_lib.UNK_ID).all() and (raw.x_test == text_lib.UNK_ID).any()


@pytest.mark.realdata
def test_trec_symmetric_noise_and_text_pipeline(trec_raw, real_data_dir):
  data = noisy.build_noisy_dataset(parse_dataset_spec("trec_symmetric_0.5"), data_dir=str(real_data_dir),
                                   probe_ratio=0.02, seed=3)
  assert data.kind == "text" and data.image_shape == (300,)
  assert data.network_options == {"vocabulary_size": len(trec_raw.vocabulary)}
  assert data.num_probe == 108 and (np.bincount(data.y_probe) == 18).all()   # floor(5452*0.02)//6 per class
  np.testing.assert_array_equal(data.y_probe, trec_raw.y_train[data.probe_ids])   # clean
  assert abs(data.realised_noise_rate - 0.5) < 0.03
  np.testing.assert_array_equal(data.y_train_clean, trec_raw.y_train[data.train_ids])
  batches = take(pipeline_text.train_dataset(data.x_train, data.y_train, batch_size=64, seed=1,
                                             probe_tokens=data.x_probe, probe_labels=data.y_probe,
                                             probe_batch_size=12), 3)
  for step, b in enumerate(batches):
    assert b["image"].dtype == np.int32 and b["image"].shape == (64, 300)
    np.testing.assert_array_equal(b["image"], data.x_train[b["index"]])
    np.testing.assert_array_equal(b["label"], data.y_train[b["index"]])
    rows = (step * 12 + np.arange(12)) % data.num_probe   # the probe set cycles in its fixed order
    np.testing.assert_array_equal(b["probe_image"], data.x_probe[rows])
  resumed = take(pipeline_text.train_dataset(data.x_train, data.y_train, batch_size=64, seed=1, start_step=2), 1)
  np.testing.assert_array_equal(resumed[0]["index"], batches[2]["index"])
  test = take(pipeline_text.eval_dataset(data.x_test, data.y_test, batch_size=200), 3)
  np.testing.assert_array_equal(np.concatenate([b["label"] for b in test]), data.y_test)


def test_trec_missing_and_damaged_files(tmp_path, real_data_dir):
  with pytest.raises(UserError) as e:
    sources.load_raw("trec", tmp_path)
  msg = str(e.value)
  assert "train_5500.label" in msg and "TREC_10.label" in msg and str(tmp_path / "trec") in msg
  assert "cogcomp" in msg and "\n" not in msg
  (tmp_path / "trec").mkdir()
  (tmp_path / "trec" / "train_5500.label").write_bytes(b"DESC:manner How ?\n")
  (tmp_path / "trec" / "TREC_10.label").write_bytes(b"NUM:date When ?\n")
  with pytest.raises(UserError, match="sha256 checksum mismatch.*download it again"):
    sources.load_raw("trec", tmp_path)


def test_trec_reader_on_a_written_file(tmp_path, monkeypatch):
  folder = tmp_path / "trec"
  folder.mkdir()
  (folder / "train_5500.label").write_bytes(b"DESC:manner How did Serfdom develop ?\nHUM:ind Who was \xe9mile ?\n"
                                            b"NUM:date When was Ozzy born ?\n")
  (folder / "TREC_10.label").write_bytes(b"NUM:count How many zorks ?\n")
  monkeypatch.setattr(trec, "SHA256", {f.name: archives.file_digest(f, "sha256") for f in folder.iterdir()})
  raw = sources.load_raw("trec", tmp_path)
  np.testing.assert_array_equal(raw.y_train, [1, 3, 5])
  vocab = raw.vocabulary
  assert vocab[2:4] == ["?", "was"]   # most frequent first, ties alphabetical
  assert [vocab[i] for i in raw.x_test[0][:5]] == ["how", "<unk>", "<unk>", "?", "<pad>"]
  assert "émile" in vocab   # Latin-1 text
  (folder / "TREC_10.label").write_bytes(b"just some words\n")
  monkeypatch.setattr(trec, "SHA256", {f.name: archives.file_digest(f, "sha256") for f in folder.iterdir()})
  with pytest.raises(UserError, match=r"TREC_10.label:1: not a TREC line"):
    sources.load_raw("trec", tmp_path)


# ---------------------------------------------------------------------------------------------
# Tiny official CIFAR archives


def write_cifar10(data_dir, monkeypatch, per_batch=6):
  folder = data_dir / "cifar10"
  folder.mkdir(parents=True, exist_ok=True)
  x = cifar_images(5 * per_batch, 1)
  y = np.random.default_rng(2).permutation(np.arange(5 * per_batch) % 10)   # every class present
  members = [(f"cifar-10-batches-py/data_batch_{i + 1}",
              {"data": chw_rows(x[i * per_batch:(i + 1) * per_batch]),
               "labels": y[i * per_batch:(i + 1) * per_batch].tolist()}) for i in range(5)]
  members.append(("cifar-10-batches-py/test_batch", {"data": chw_rows(cifar_images(4, 3)), "labels": [0, 1, 2, 3]}))
  path = folder / archives.CIFAR10_TAR
  write_pickle_tar(path, members)
  monkeypatch.setitem(archives.CHECKSUMS, "cifar10", {archives.CIFAR10_TAR: ("md5", md5(path))})
  return x, y


def write_cifar100(data_dir, monkeypatch, n=40):
  folder = data_dir / "cifar100"
  folder.mkdir(parents=True, exist_ok=True)
  x = cifar_images(n, 7)
  fine = np.arange(n) % 100
  path = folder / archives.CIFAR100_TAR
  write_pickle_tar(path, [("cifar-100-python/train", {"data": chw_rows(x), "fine_labels": fine.tolist(),
                                                "coarse_labels": (fine % 20).tolist()}),
                    ("cifar-100-python/test", {"data": chw_rows(x[:2]), "fine_labels": [0, 1],
                                               "coarse_labels": [0, 1]})])
  monkeypatch.setitem(archives.CHECKSUMS, "cifar100", {archives.CIFAR100_TAR: ("md5", md5(path))})
  return x


# ---------------------------------------------------------------------------------------------
# CIFAR-N

def write_human_labels(data_dir, name, table):
  folder = data_dir / name
  folder.mkdir(parents=True, exist_ok=True)
  path = folder / ("CIFAR-10_human.npy" if name == "cifar10n" else "CIFAR-100_human.npy")
  np.save(path, table, allow_pickle=True)   # the published format: a pickled dict of label arrays
  return path


def test_cifar10n_labels_land_on_their_images(tmp_path, monkeypatch):
  x, y = write_cifar10(tmp_path, monkeypatch)
  rng = np.random.default_rng(5)
  table = {"clean_label": y, "aggre_label": np.where(rng.random(len(y)) < 0.3, (y + 1) % 10, y),
           "worse_label": (y + 3) % 10, "random_label1": rng.integers(0, 10, len(y)),
           "random_label2": y, "random_label3": y}
  write_human_labels(tmp_path, "cifar10n", table)
  for name, key in [("cifar10n_aggre", "aggre_label"), ("cifar10n_worst", "worse_label"),
                    ("cifar10n_rand1", "random_label1")]:
    data = noisy.build_noisy_dataset(parse_dataset_spec(name), data_dir=str(tmp_path), probe_ratio=0.0, seed=0)
    # Row i of the file belongs to image i of the archive (the official data_batch order).
    np.testing.assert_array_equal(data.x_train, x)
    np.testing.assert_array_equal(data.y_train, table[key])
    np.testing.assert_array_equal(data.y_train_clean, y)
    assert data.realised_noise_rate == pytest.approx(np.mean(table[key] != y))
    assert data.transition is None and "noise none" in data.noise_report()


def test_cifar_n_order_guard_and_clear_errors(tmp_path, monkeypatch):
  x, y = write_cifar10(tmp_path, monkeypatch)
  with pytest.raises(UserError) as e:   # label file missing, TFDS not prepared
    sources.load_raw("cifar10n_worst", tmp_path)
  msg = str(e.value)
  assert "CIFAR-10_human.npy" in msg and str(tmp_path / "cifar10n") in msg and "cifar10_n" in msg
  shuffled = np.random.default_rng(0).permutation(len(y))
  write_human_labels(tmp_path, "cifar10n", {"clean_label": y[shuffled], "worse_label": y[shuffled]})
  with pytest.raises(UserError, match="disagrees with the archive's training labels"):
    sources.load_raw("cifar10n_worst", tmp_path)
  write_human_labels(tmp_path, "cifar10n", {"clean_label": y})
  with pytest.raises(UserError, match="lacks worse_label"):
    sources.load_raw("cifar10n_worst", tmp_path)
  with pytest.raises(UserError, match="real noisy labels"):
    parse_dataset_spec("cifar10n_worst_symmetric_0.2")


class _Exploit:
  def __reduce__(self):
    return (os.system, ("echo pwned",))


def test_a_label_file_with_code_in_it_is_refused(tmp_path):
  path = tmp_path / "bad.npy"
  np.save(path, np.array({"clean_label": _Exploit()}, dtype=object), allow_pickle=True)
  with pytest.raises(UserError, match="not a readable CIFAR-N label file.*unexpected object .*system"):
    cifar_n.read_human_labels(str(path))


def test_cifar100n_from_mocked_tfds_is_put_back_in_id_order(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  n = 12
  rng = np.random.default_rng(4)
  images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
  clean = rng.integers(0, 100, n)
  noise = (clean + 1) % 100
  stored = rng.permutation(n)   # TFDS keeps its examples shuffled

  def as_dataset(self, split, **kwargs):
    del kwargs
    prefix = "train_" if str(split).startswith("train") else "test_"
    return tf.data.Dataset.from_tensor_slices({
        "id": [f"{prefix}{i:05d}" for i in stored], "image": images[stored], "label": clean[stored],
        "coarse_label": clean[stored] % 20, "noise_label": noise[stored],
        "worker_id": np.zeros(n, np.int64), "worker_time": np.zeros(n, np.float32)})

  with tfds.testing.mock_data(as_dataset_fn=as_dataset):
    raw = sources.load_raw("cifar100n_noisy", tmp_path)
  np.testing.assert_array_equal(raw.x_train, images)
  np.testing.assert_array_equal(raw.y_train, clean)
  np.testing.assert_array_equal(raw.y_train_noisy, noise)
  np.testing.assert_array_equal(raw.x_test, images)


# ---------------------------------------------------------------------------------------------
# Instance-dependent and open-set noise

def test_dependent_labels_from_predictions_match_a_per_example_reference():
  rng = np.random.default_rng(0)
  n, k, ratio = 200, 5, 0.3
  clean = rng.integers(0, k, n)
  probs = rng.dirichlet(np.ones(k), n)
  noisy_labels = noise_instance.dependent_labels_from_predictions(clean, probs, ratio)
  # Reference: per example, the most probable wrong class and its probability; flip the 60 top.
  best = [max((c for c in range(k) if c != clean[i]), key=lambda c: probs[i, c]) for i in range(n)]
  score = [probs[i, best[i]] for i in range(n)]
  top = set(sorted(range(n), key=lambda i: -score[i])[:int(ratio * n)])
  expected = [best[i] if i in top else clean[i] for i in range(n)]
  np.testing.assert_array_equal(noisy_labels, expected)
  assert np.mean(noisy_labels != clean) == ratio   # exactly floor(ratio * N) flips


def test_dependent_noise_from_a_label_file(tmp_path, monkeypatch):
  x, y = write_cifar10(tmp_path, monkeypatch)
  probs = np.random.default_rng(1).dirichlet(np.ones(10), len(y))
  file_noisy = noise_instance.dependent_labels_from_predictions(y, probs, 0.4)
  path = noise_instance.label_file_path(str(tmp_path), "cifar10", "dependent", 0.4)
  assert path.endswith(os.path.join("cifar10", "label_noisy", "dependent0.4.csv"))
  with pytest.raises(UserError, match="dependent0.4.csv"):
    noisy.build_noisy_dataset("cifar10_dependent_0.4", data_dir=str(tmp_path), probe_ratio=0.0, seed=0)
  noise_instance.write_label_file(path, y, file_noisy)
  assert open(path).readline().strip() == "label,label_noisy"
  data = noisy.build_noisy_dataset("cifar10_dependent_0.4", data_dir=str(tmp_path), probe_ratio=0.34, seed=0)
  assert data.num_probe == 10
  np.testing.assert_array_equal(data.y_train, file_noisy[data.train_ids])   # after the probe holdout
  np.testing.assert_array_equal(data.y_train_clean, y[data.train_ids])
  np.testing.assert_array_equal(data.y_probe, y[data.probe_ids])
  np.testing.assert_array_equal(data.corrupted, file_noisy[data.train_ids] != y[data.train_ids])
  noise_instance.write_label_file(path, np.roll(y, 1), file_noisy)   # rows in another order
  with pytest.raises(UserError, match="disagrees with the dataset's clean labels"):
    noisy.build_noisy_dataset("cifar10_dependent_0.4", data_dir=str(tmp_path), probe_ratio=0.0, seed=0)


def test_openset_replaces_exactly_ratio_of_images_with_cifar100_images(tmp_path, monkeypatch):
  x, y = write_cifar10(tmp_path, monkeypatch)
  donors = write_cifar100(tmp_path, monkeypatch)
  data = noisy.build_noisy_dataset("cifar10_openset_0.4", data_dir=str(tmp_path), probe_ratio=0.0, seed=2)
  replaced = np.flatnonzero(data.corrupted)
  assert len(replaced) == int(0.4 * len(y)) == 12
  np.testing.assert_array_equal(data.y_train, y)   # labels kept
  kept = ~data.corrupted
  np.testing.assert_array_equal(data.x_train[kept], x[kept])
  sources_of = [np.flatnonzero((donors == img).all(axis=(1, 2, 3))) for img in data.x_train[replaced]]
  assert all(len(s) == 1 for s in sources_of) and len({int(s[0]) for s in sources_of}) == 12   # distinct
  assert "images replaced, labels kept" in data.noise_report()
  again = noisy.build_noisy_dataset("cifar10_openset_0.4", data_dir=str(tmp_path), probe_ratio=0.0, seed=2)
  np.testing.assert_array_equal(again.x_train, data.x_train)   # a function of the seed
  with pytest.raises(UserError, match="open-set noise"):
    parse_dataset_spec("mnist_openset_0.4")


# ---------------------------------------------------------------------------------------------
# Image-file fixtures: every image is one flat colour that encodes its row, so a view of it tells
# which file was read.

def colour(i):
  return (i * 37 % 256, i * 11 % 256, 200)


def write_image(path, i, size=(12, 10)):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.new("RGB", size, colour(i)).save(path)


def png_bytes(i):
  buf = io.BytesIO()
  Image.new("RGB", (9, 11), colour(i)).save(buf, format="PNG")
  return buf.getvalue()


def signed(i):
  return np.asarray(colour(i), np.float32) / 127.5 - 1.0


def assert_views_show_rows(images, rows, atol=2e-2):
  for image, row in zip(images, rows):
    np.testing.assert_allclose(image, np.broadcast_to(signed(row), image.shape), atol=atol)


SYNSETS = [f"n{i:08d}" for i in range(60)]


@pytest.fixture(scope="module")
def webvision_dir(tmp_path_factory):
  """WebVision 1.0 official layout (lists, google/ images, val_images_256/), IEG's probe TFRecord,
  and ImageNet val in class folders."""
  data_dir = tmp_path_factory.mktemp("webvision")
  root = data_dir / "webvisionmini"
  train_labels = [0, 1, 2, 3, 55, 1, 0, 49, 700, 2]   # labels >= 50 are outside the mini subset
  lines = []
  for i, label in enumerate(train_labels):
    rel = f"google/q{label + 1:04d}/{i:05d}.png"
    write_image(root / rel, i)
    lines.append(f"{rel} {label}")
  (root / "info").mkdir(parents=True, exist_ok=True)
  (root / "info" / "train_filelist_google.txt").write_text("\n".join(lines) + "\n")
  val_labels = [3, 51, 0, 1]
  for i, label in enumerate(val_labels):
    write_image(root / "val_images_256" / f"val{i:06d}.png", 100 + i)
  (root / "info" / "val_filelist.txt").write_text(
      "".join(f"val{i:06d}.png {label}\n" for i, label in enumerate(val_labels)))
  (root / "info" / "synsets.txt").write_text("".join(f"{s} name {i}\n" for i, s in enumerate(SYNSETS)))
  probe = root / "probe_500" / webvision.PROBE_FILE
  probe.parent.mkdir(parents=True)
  with tf.io.TFRecordWriter(str(probe)) as writer:
    for i in range(5):
      features = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png_bytes(200 + i)])),
                  "image/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i]))}
      writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
  for c, synset in enumerate(SYNSETS):
    (data_dir / "imagenet" / "val" / synset).mkdir(parents=True)
    if c in (0, 4, 59):
      write_image(data_dir / "imagenet" / "val" / synset / "ILSVRC2012_val_1.JPEG", 300 + c)
  return data_dir


def test_webvision_official_layout(webvision_dir):
  data = noisy_files.build_file_dataset("webvisionmini", data_dir=str(webvision_dir), probe_ratio=0.02, seed=0)
  assert data.kind == "image_files" and data.num_classes == 50 and data.image_shape == (224, 224, 3)
  np.testing.assert_array_equal(data.y_train, [0, 1, 2, 3, 1, 0, 49, 2])   # first 50 classes only
  assert [os.path.basename(p) for p in data.train.paths][:2] == ["00000.png", "00001.png"]
  np.testing.assert_array_equal(data.y_test, [3, 0, 1])
  assert data.class_names == SYNSETS[:50]
  assert data.probe_from_file and data.num_probe == 5 and list(data.y_probe) == [0, 1, 2, 3, 4]
  assert data.y_train_clean is None and "clean training labels unknown" in data.noise_report()
  assert data.num_validation == 0   # its validation split is the test split: never chosen on
  imagenet = noisy_files.build_file_dataset("webvisionmini", data_dir=str(webvision_dir), probe_ratio=0.0,
                                            seed=0, use_imagenet_as_eval=True)
  assert imagenet.num_probe == 0 and list(imagenet.y_test) == [0, 4]   # synset 59 is not among the 50
  np.testing.assert_array_equal(imagenet.y_val, [3, 0, 1])   # with ImageNet as the test, WebVision val selects


def test_webvision_file_pipeline(webvision_dir, monkeypatch):
  # The strong view itself is the augmentation tests' subject (and slow to trace): a stand-in that
  # shows which image it was given checks the wiring.
  def fake_strong_view(image, seed, size):
    del seed
    return tf.image.resize(tf.cast(image, tf.float32), [size, size]) / 127.5 - 1.0

  monkeypatch.setattr(pipeline_files.strong_view, "imagenet_strong_view", fake_strong_view)
  data = noisy_files.build_file_dataset("webvisionmini", data_dir=str(webvision_dir), probe_ratio=0.02, seed=0)
  file_rows = [0, 1, 2, 3, 5, 6, 7, 9]   # colour index of each kept training row
  make = lambda start: pipeline_files.train_dataset(  # noqa: E731
      data.train, data.y_train, batch_size=4, seed=3, start_step=start, image_size=16,
      view="inception_crop", strong=True, probe=data.probe, probe_batch_size=3)
  batches = take(make(0), 4)   # two passes of 8
  for step, b in enumerate(batches):
    assert b["image"].shape == (4, 16, 16, 3) and b["image_strong"].shape == (4, 16, 16, 3)
    assert_views_show_rows(b["image_strong"], [file_rows[i] for i in b["index"]])
    np.testing.assert_array_equal(b["label"], data.y_train[b["index"]])
    assert_views_show_rows(b["image"], [file_rows[i] for i in b["index"]])
    probe_rows = (step * 3 + np.arange(3)) % 5
    np.testing.assert_array_equal(b["probe_label"], probe_rows)
    assert_views_show_rows(b["probe_image"], 200 + probe_rows)
  assert sorted(np.concatenate([b["index"] for b in batches[:2]])) == list(range(8))
  resumed = take(make(3), 1)[0]
  for key in ("index", "image", "image_strong", "probe_image"):
    np.testing.assert_array_equal(resumed[key], batches[3][key])
  test = take(pipeline_files.eval_dataset(data.test, batch_size=2, image_size=16), 2)
  np.testing.assert_array_equal(np.concatenate([b["label"] for b in test]), [3, 0, 1])
  assert_views_show_rows(np.concatenate([b["image"] for b in test]), [100, 102, 103])
  probe_eval = take(pipeline_files.eval_dataset(data.probe, batch_size=5, image_size=8), 1)[0]
  assert_views_show_rows(probe_eval["image"], 200 + np.arange(5))


def test_webvision_missing_files_name_what_goes_where(tmp_path, webvision_dir):
  with pytest.raises(UserError) as e:
    noisy_files.build_file_dataset("webvisionmini", data_dir=str(tmp_path), probe_ratio=0.0, seed=0)
  msg = str(e.value)
  assert str(tmp_path / "webvisionmini") in msg and "train_filelist_google.txt" in msg and "train/<class>" in msg
  no_probe = tmp_path / "copy"
  os.symlink(webvision_dir / "imagenet", tmp_path / "imagenet")
  (no_probe / "webvisionmini").mkdir(parents=True)
  for name in ("info", "google", "val_images_256"):
    os.symlink(webvision_dir / "webvisionmini" / name, no_probe / "webvisionmini" / name)
  with pytest.raises(UserError, match="probe_500/imagenet2012-probe.tfrecord-1-of-1.*probe_dataset_hold_ratio=0"):
    noisy_files.build_file_dataset("webvisionmini", data_dir=str(no_probe), probe_ratio=0.02, seed=0)
  with pytest.raises(UserError, match=r"imagenet/val/<synset>"):
    noisy_files.build_file_dataset("webvisionmini", data_dir=str(no_probe), probe_ratio=0.0, seed=0,
                                   use_imagenet_as_eval=True)
  with pytest.raises(UserError, match="real noisy labels"):
    parse_dataset_spec("webvisionmini_uniform_0.2")


def test_webvision_class_folder_layout(tmp_path):
  root = tmp_path / "webvisionmini"
  for c, synset in enumerate(SYNSETS[:50]):
    for split in ("train", "val"):
      (root / split / synset).mkdir(parents=True)
  write_image(root / "train" / SYNSETS[3] / "b.jpg", 1)
  write_image(root / "train" / SYNSETS[3] / "a.jpg", 2)
  write_image(root / "train" / SYNSETS[0] / "z.png", 3)
  write_image(root / "val" / SYNSETS[7] / "v.png", 4)
  data = noisy_files.build_file_dataset("webvisionmini", data_dir=str(tmp_path), probe_ratio=0.0, seed=0)
  np.testing.assert_array_equal(data.y_train, [0, 3, 3])
  assert [os.path.basename(p) for p in data.train.paths] == ["z.png", "a.jpg", "b.jpg"]
  np.testing.assert_array_equal(data.y_test, [7])


# ---------------------------------------------------------------------------------------------
# Clothing1M

@pytest.fixture(scope="module")
def clothing_dir(tmp_path_factory):
  """The official release: images/ and the label files in annotations/."""
  data_dir = tmp_path_factory.mktemp("clothing")
  root = data_dir / "clothing1m"
  ann = root / "annotations"
  ann.mkdir(parents=True)
  keys = [f"images/{i % 10}/{i:02d}/{i}.jpg" for i in range(60)]
  for i, key in enumerate(keys):
    write_image(root / key, i)
  noisy_labels = {key: i % 14 for i, key in enumerate(keys[:40])}
  noisy_labels["images/9/99/not_in_train.jpg"] = 3
  clean_labels = {key: (i * 5) % 14 for i, key in enumerate(keys[30:], start=30)}
  write = lambda name, lines: (ann / name).write_text("".join(l + "\n" for l in lines))  # noqa: E731
  write("noisy_label_kv.txt", [f"{k} {v}" for k, v in noisy_labels.items()])
  write("clean_label_kv.txt", [f"{k} {v}" for k, v in clean_labels.items()])
  write("noisy_train_key_list.txt", keys[:40])
  write("clean_train_key_list.txt", keys[30:50])
  write("clean_val_key_list.txt", keys[50:55])
  write("clean_test_key_list.txt", keys[55:60])
  return data_dir, keys, noisy_labels, clean_labels


def test_clothing1m_official_files(clothing_dir):
  data_dir, keys, noisy_labels, clean_labels = clothing_dir
  data = noisy_files.build_file_dataset("clothing1m", data_dir=str(data_dir), probe_ratio=0.0, seed=0)
  np.testing.assert_array_equal(data.y_train, [noisy_labels[k] for k in keys[:40]])
  assert [p.endswith(k) for p, k in zip(data.train.paths, keys[:40])] == [True] * 40
  np.testing.assert_array_equal(data.y_val, [clean_labels[k] for k in keys[50:55]])
  assert data.num_validation == 5
  np.testing.assert_array_equal(data.validation_as_test().y_test, data.y_val)
  np.testing.assert_array_equal(data.y_test, [clean_labels[k] for k in keys[55:60]])
  assert data.class_names[0] == "T-Shirt" and data.num_classes == 14 and data.examples_per_epoch == 40
  balanced = noisy_files.build_file_dataset("clothing1m_balanced", data_dir=str(data_dir), probe_ratio=0.7,
                                            seed=0)   # 14 of the 20 clean training keys: 1 per class
  assert balanced.examples_per_class_per_epoch == clothing1m.SLN_EXAMPLES_PER_CLASS
  # Probe: class-balanced from the clean training keys, clean labels.
  assert balanced.num_probe == 14 and not balanced.probe_from_file
  np.testing.assert_array_equal(np.bincount(balanced.y_probe), np.ones(14))
  for path, label in zip(balanced.probe.paths, balanced.y_probe):
    assert clean_labels[os.path.relpath(path, data_dir / "clothing1m")] == label
  batch = take(pipeline_files.train_dataset(data.train, data.y_train, batch_size=5, seed=1, image_size=16,
                                            view="resize_crop"), 1)[0]
  assert batch["image"].shape == (5, 16, 16, 3)
  assert_views_show_rows(batch["image"], batch["index"], atol=0.06)   # JPEG: a few levels off


def test_clothing1m_missing_files_is_one_clear_error(tmp_path):
  with pytest.raises(UserError) as e:
    noisy_files.build_file_dataset("clothing1m", data_dir=str(tmp_path), probe_ratio=0.0, seed=0)
  msg = str(e.value)
  assert str(tmp_path / "clothing1m") in msg and "noisy_label_kv.txt" in msg and "clean_test_key_list.txt" in msg
  assert "images/" in msg and "\n" not in msg


def test_balanced_resampling_per_epoch():
  labels = np.repeat(np.arange(4), [10, 3, 7, 5])
  quota = np.minimum(np.bincount(labels), 5)   # 5, 3, 5, 5 -> 18 per pass
  order = [int(i) for i in pipeline_files.balanced_order(labels, 5, seed=2).take(54)]
  passes = [order[i:i + 18] for i in range(0, 54, 18)]
  for p in passes:
    assert len(set(p)) == 18
    np.testing.assert_array_equal(np.bincount(labels[p], minlength=4), quota)
  assert set(passes[0]) != set(passes[1])   # a fresh draw of class 0 every pass
  resumed = [int(i) for i in pipeline_files.balanced_order(labels, 5, seed=2, start_position=25).take(29)]
  assert resumed == order[25:]


@pytest.mark.slow
def test_a_clothing1m_run_chooses_its_epoch_on_the_clean_validation_split(clothing_dir, tmp_path, monkeypatch):
  from ieg import experiment  # pylint: disable=g-import-not-at-top
  from ieg.config import RunConfig  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(clothing1m, "IMAGE_SIZE", 32)
  data_dir = clothing_dir[0]
  config = RunConfig(dataset="clothing1m", method="supervised", network_name="resnet29", data_dir=str(data_dir),
                     batch_size=4, val_batch_size=4, max_iteration=4, eval_freq=2, learning_rate=0.01,
                     lr_schedule="constant", probe_dataset_hold_ratio=0.0, use_ema=False,
                     checkpoint_path=str(tmp_path), seed=1, distribution_strategy="one_device")
  experiment.run(config)
  saved = json.load(open(os.path.join(config.run_dir, "results.json")))
  history = saved["history"]
  assert len(history) == 2 and all("validation_top1" in h for h in history)
  chosen = max(history, key=lambda h: h["validation_top1"])
  assert saved["selected"]["step"] == chosen["step"] and saved["selected"]["top1"] == chosen["top1"]
  flags = json.load(open(os.path.join(config.run_dir, "flags.json")))
  assert flags["num_validation"] == 5


def test_a_short_webvision_run_streams_files_through_the_experiment(webvision_dir, tmp_path, monkeypatch):
  from ieg import experiment  # pylint: disable=g-import-not-at-top
  from ieg.config import RunConfig  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(webvision, "IMAGE_SIZE", 32)   # a small network input keeps it quick
  config = RunConfig(dataset="webvisionmini", method="supervised", network_name="resnet29",
                     data_dir=str(webvision_dir), batch_size=4, val_batch_size=2, max_iteration=2, eval_freq=2,
                     learning_rate=0.01, lr_schedule="constant", probe_dataset_hold_ratio=0.0, use_ema=False,
                     checkpoint_path=str(tmp_path), seed=1, distribution_strategy="one_device")
  results = experiment.run(config)
  assert results["step"] == 2 and 0.0 <= results["top1"] <= 1.0
  flags = json.load(open(os.path.join(config.run_dir, "flags.json")))
  assert (flags["num_train"], flags["num_test"], flags["steps_per_epoch"]) == (8, 3, 2)
  saved = noisy.load_noise_file(os.path.join(config.run_dir, "noise.npz"))
  np.testing.assert_array_equal(saved["noisy_labels"], [0, 1, 2, 3, 1, 0, 49, 2])
