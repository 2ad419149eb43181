"""--mode=find_issues: stratified folds, out-of-sample probabilities from the fold models, the label-issue files."""
import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from core.errors import UserError
from datasets import folds as folds_lib
from datasets import noisy as noisy_lib
from datasets.sources import archives
from ieg import cross_validation
from ieg import experiment
from ieg.config import RunConfig
from ieg.reports import label_issues
from ieg.reports import writer as reports
from ieg.run import files as run_files


def test_folds_partition_every_class_evenly_and_follow_the_seed():
  labels = np.random.default_rng(0).integers(0, 7, size=503)
  folds = folds_lib.assign_folds(labels, 5, seed=3)
  assert folds.shape == labels.shape and set(folds) == set(range(5))
  assert np.ptp(np.bincount(folds)) <= 1   # fold sizes differ by at most one
  for c in range(7):
    per_fold = np.bincount(folds[labels == c], minlength=5)
    assert np.ptp(per_fold) <= 1           # each class is dealt evenly
  np.testing.assert_array_equal(folds, folds_lib.assign_folds(labels, 5, seed=3))
  assert not np.array_equal(folds, folds_lib.assign_folds(labels, 5, seed=4))


def test_too_few_examples_for_the_folds_is_one_line():
  with pytest.raises(UserError, match=r"--cross_val_folds=5 needs at least 10 training examples"):
    folds_lib.assign_folds(np.zeros(9, np.int64), 5, seed=0)


def search_config(root, **overrides):
  settings = dict(dataset="digits_uniform_0.4", method="supervised", network_name="mnist_cnn", mode="find_issues",
                  cross_val_folds=3, batch_size=32, val_batch_size=256, max_iteration=120, eval_freq=120,
                  learning_rate=0.05, lr_schedule="constant", probe_dataset_hold_ratio=0.0, checkpoint_path=str(root),
                  seed=2, distribution_strategy="one_device")
  return RunConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
  config = search_config(tmp_path_factory.mktemp("find_issues"))
  return config, experiment.run(config)


def test_each_row_is_scored_by_the_fold_model_that_never_saw_it(searched):
  config, _ = searched
  data = experiment.load_data(config)
  probs = np.load(os.path.join(config.run_dir, "detection", label_issues.PROBS_FILE))
  assert probs.shape == (data.num_train, data.num_classes)
  np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
  folds = folds_lib.assign_folds(data.y_train, 3, config.seed)
  for fold in range(3):
    fold_run_dir = cross_validation.fold_config(config, fold).run_dir
    saved = noisy_lib.load_noise_file(os.path.join(fold_run_dir, run_files.NOISE_FILE))
    np.testing.assert_array_equal(saved["train_ids"], data.train_ids[folds != fold])   # trained without the fold
  # Reference for fold 2: its checkpoint restored afresh, then its softmax over the held-out rows.
  held_out = np.flatnonzero(folds == 1)
  fold_run = experiment.build(cross_validation.fold_config(config, 1), data.training_subset(np.flatnonzero(folds != 1)))
  fold_run.store.restore(0, require=True)
  reference = reports.training_probabilities(fold_run.model, data.training_subset(held_out), 256)
  np.testing.assert_allclose(probs[held_out], reference, atol=1e-5)


def test_the_flags_find_the_flipped_digits(searched):
  config, estimate = searched
  assert estimate["scored"] == "out_of_sample" and estimate["folds"] == 3
  assert 0.25 < estimate["estimated_noise_rate"] < 0.5   # the realised rate is 0.36
  assert estimate["precision"] > 0.8 and estimate["recall"] > 0.7, estimate
  with open(os.path.join(config.run_dir, "detection", label_issues.ISSUES_FILE), newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert {r["scored"] for r in rows} == {"out_of_sample"} and len(rows) == estimate["num_examples"]
  assert sum(r["is_label_issue"] == "True" for r in rows) == estimate["num_flagged"]
  with Image.open(os.path.join(config.run_dir, "detection", "label_issues.png")) as image:
    image.verify()
    assert image.format == "PNG"
  flags = json.load(open(os.path.join(config.run_dir, run_files.FLAGS_FILE), encoding="utf-8"))
  assert flags["mode"] == "find_issues" and flags["cross_val_folds"] == 3


def test_a_rerun_reuses_the_trained_folds(searched):
  config, _ = searched
  before = np.load(os.path.join(config.run_dir, "detection", label_issues.PROBS_FILE))
  again = experiment.run(config)
  np.testing.assert_allclose(np.load(os.path.join(config.run_dir, "detection", label_issues.PROBS_FILE)), before)
  assert again["num_flagged"] > 0


def test_two_commands_take_a_misfiled_folder_to_flagged_labels_a_model_and_predictions(real_data_dir, tmp_path):
  """The README's story through the real CLI: find_issues (with an export), then predict; the images
  decoded to disk and streamed from there, as a folder too large for memory is."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  images, labels, _, _ = archives.read_mnist_idx(real_data_dir / "fashion_mnist", "fashion_mnist")
  names = ["T-shirt top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
  rng = np.random.default_rng(0)
  folder, misfiled = tmp_path / "clothes", {}
  for c in range(10):
    for row in np.flatnonzero(labels == c)[:60]:
      filed = (c + rng.integers(1, 10)) % 10 if rng.random() < 0.25 else c
      path = folder / "train" / names[filed] / f"{row}.png"
      path.parent.mkdir(parents=True, exist_ok=True)
      Image.fromarray(images[row]).save(path)
      misfiled[str(path)] = filed != c
  new = tmp_path / "new"
  new.mkdir()
  for row in range(50000, 50020):
    Image.fromarray(images[row]).save(new / f"{row}.png")
  common = [sys.executable, "-m", "ieg.main", "--dataset=folder", f"--dataset_dir={folder}", "--method=supervised",
            "--network_name=mnist_cnn", "--max_iteration=150", "--batch_size=32", "--probe_dataset_hold_ratio=0",
            "--distribution_strategy=one_device", f"--checkpoint_path={tmp_path / 'runs'}",
            "--image_cache=disk"]   # the path a folder too large for memory takes
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  search = subprocess.run(common + ["--mode=find_issues", "--cross_val_folds=2", f"--export_dir={tmp_path / 'model'}"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=1200)
  assert search.returncode == 0, search.stderr[-3000:]
  assert "[find_issues]" in search.stdout and "label_issues.csv" in search.stdout
  found = [os.path.join(d, "label_issues.csv") for d, _, files in os.walk(tmp_path / "runs")
           if "label_issues.csv" in files and d.endswith(os.path.join("find_issues", "detection"))]
  with open(found[0], newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert {r["scored"] for r in rows} == {"out_of_sample"} and {r["given_label"] for r in rows} == set(names)
  flagged = np.array([r["is_label_issue"] == "True" for r in rows])
  wrong = np.array([misfiled[r["path"]] for r in rows])
  assert flagged[wrong].mean() > 2 * flagged[~wrong].mean(), (flagged[wrong].mean(), flagged[~wrong].mean())
  assert json.load(open(tmp_path / "model" / "class_names.json", encoding="utf-8")) == sorted(names)
  [cache] = [n for n in os.listdir(tmp_path / "runs" / "image_cache") if n.endswith(".uint8")]   # one decode for all folds
  assert cache.startswith("images_600_") and os.path.getsize(tmp_path / "runs" / "image_cache" / cache) == 600 * 784
  predict = subprocess.run(common + ["--mode=predict", f"--predict_input={new}"], cwd=repo, env=env,
                           capture_output=True, text=True, timeout=600)
  assert predict.returncode == 0, predict.stderr[-3000:]
  predictions = [os.path.join(d, "new.csv") for d, _, files in os.walk(tmp_path / "runs") if "new.csv" in files]
  with open(predictions[0], newline="", encoding="utf-8") as f:
    predicted = {r["path"]: r["predicted_label"] for r in csv.DictReader(f)}
  assert len(predicted) == 20
  accuracy = np.mean([predicted[f"{row}.png"] == names[labels[row]] for row in range(50000, 50020)])
  assert accuracy > 0.4, accuracy   # chance is 0.1
