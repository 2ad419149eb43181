"""Detection metrics against scikit-learn, and the plots and detection report every run directory gets."""
import csv
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as sk

from core.errors import UserError
from datasets import noisy as noisy_lib
from ieg import experiment
from ieg.config import RunConfig
from ieg.reports import detection
from ieg.reports import writer as reports
from ieg.run import files as run_files
from tests.methods.toy_models import softmax

# ----- metrics on fixed scores ----------------------------------------------------------------------
RNG = np.random.default_rng(7)
CORRUPTED = RNG.random(300) < 0.35
# Informative but imperfect scores, rounded so that many values tie (ties are where rankings differ).
SCORES = np.round(CORRUPTED * 0.8 + RNG.normal(0, 0.6, 300), 1)


@pytest.mark.parametrize("end", ["high", "low"])
def test_auroc_and_average_precision_match_sklearn_with_ties(end):
  scores = SCORES if end == "high" else -SCORES  # the same ranking, seen from the other end
  values = detection.suspicion(scores, end)
  assert len(np.unique(values)) < len(values) / 3  # many ties
  assert detection.auroc(values, CORRUPTED) == pytest.approx(sk.roc_auc_score(CORRUPTED, SCORES), abs=1e-12)
  assert detection.average_precision(values, CORRUPTED) == pytest.approx(
      sk.average_precision_score(CORRUPTED, SCORES), abs=1e-12)


def test_auroc_by_pair_counting():
  scores, positive = np.array([0.1, 0.4, 0.4, 0.9, 0.2]), np.array([False, True, False, True, False])
  pairs = [(p, n) for p in scores[positive] for n in scores[~positive]]
  expected = np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs])
  assert detection.auroc(scores, positive) == pytest.approx(expected)
  assert np.isnan(detection.auroc(scores, np.zeros(5, bool)))


def test_average_ranks_match_midranks():
  from scipy import stats  # pylint: disable=g-import-not-at-top
  np.testing.assert_allclose(detection.average_ranks(SCORES), stats.rankdata(SCORES, method="average"))


def test_flagging_takes_the_k_most_suspicious_or_a_decision():
  flagged = detection.flag(SCORES, 100)
  assert flagged.sum() == 100
  assert SCORES[flagged].min() >= SCORES[~flagged].max()  # nothing left out is more suspicious
  decision = np.where(RNG.random(300) < 0.3, 1.0, 0.0)
  np.testing.assert_array_equal(detection.flag(decision, 100), decision == 1.0)


def test_detection_metrics_match_sklearn_precision_and_recall():
  m = detection.detection_metrics(SCORES, "high", CORRUPTED, flag_count=105)
  flagged = detection.flag(SCORES, 105)
  assert m["precision"] == pytest.approx(sk.precision_score(CORRUPTED, flagged))
  assert m["recall"] == pytest.approx(sk.recall_score(CORRUPTED, flagged))
  assert m["f1"] == pytest.approx(sk.f1_score(CORRUPTED, flagged))
  assert m["num_flagged"] == 105 and m["num_corrupted"] == CORRUPTED.sum()
  weights = np.where(CORRUPTED, 0.2, 0.9) + RNG.normal(0, 0.2, 300)  # a weight: low marks corruption
  low = detection.detection_metrics(weights, "low", CORRUPTED, flag_count=105)
  assert low["auroc"] == pytest.approx(sk.roc_auc_score(CORRUPTED, -weights))


def test_bad_inputs_are_user_errors():
  with pytest.raises(UserError, match="suspicious end"):
    detection.suspicion(SCORES, "middle")
  with pytest.raises(UserError, match="same examples"):
    detection.auroc(SCORES[:10], CORRUPTED)
  with pytest.raises(UserError, match="NaN"):
    detection.auroc(np.r_[np.nan, SCORES[1:]], CORRUPTED)


# ----- a run's report -------------------------------------------------------------------------------
def tiny_config(root, **overrides):
  settings = dict(dataset="digits_uniform_0.4", method="supervised", network_name="mnist_cnn", batch_size=32,
                  val_batch_size=256, max_iteration=50, eval_freq=25, learning_rate=0.05, lr_schedule="constant",
                  probe_dataset_hold_ratio=0.0, checkpoint_path=str(root), seed=2, distribution_strategy="one_device")
  return RunConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """50 supervised steps of 32 on digits (1437 training examples) with 40% uniform noise: at least one pass over
  the training set, so the detection report is written at the end of training."""
  config = tiny_config(tmp_path_factory.mktemp("reports"))
  run = experiment.build(config)
  experiment.train(run)
  return config, run


def read_csv(path):
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  return {name: np.array([float(r[name]) for r in rows]) for name in rows[0]}


def test_every_plot_is_a_valid_png(trained):
  config, _ = trained
  names = {"accuracy", "loss", "learning_rate", "transition", "score_histograms"}
  for name in names:
    path = os.path.join(config.run_dir, reports.PLOTS_DIR, f"{name}.png")
    with Image.open(path) as image:
      image.verify()
      assert image.format == "PNG" and image.size[0] > 200 and image.size[1] > 150


def test_the_plots_are_tensorboard_images(trained):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  config, _ = trained
  directory = os.path.join(config.run_dir, reports.TENSORBOARD_DIR)
  tags = set()
  for name in os.listdir(directory):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(directory, name)):
      for value in event.summary.value:
        if value.metadata.plugin_data.plugin_name == "images":
          tags.add(value.tag)
  assert {"plots/accuracy", "plots/loss", "plots/transition", "plots/score_histograms"} <= tags


def test_scores_csv_holds_every_training_example_with_its_labels_and_scores(trained):
  config, run = trained
  table = read_csv(os.path.join(config.run_dir, reports.DETECTION_DIR, reports.SCORES_CSV))
  noise = noisy_lib.load_noise_file(os.path.join(config.run_dir, run_files.NOISE_FILE))
  np.testing.assert_array_equal(table["index"], np.arange(len(run.data.y_train)))
  np.testing.assert_array_equal(table["noisy_label"], noise["noisy_labels"])
  np.testing.assert_array_equal(table["clean_label"], noise["clean_labels"])
  np.testing.assert_array_equal(table["corrupted"], noise["corrupted"].astype(int))
  # The scores are those of the final evaluation weights, recomputed here with numpy from the logits.
  logits = run.model.evaluation_logits((run.data.x_train.astype(np.float32) / 127.5 - 1.0)).numpy()
  p = softmax(logits.astype(np.float64))
  ce = -np.log(p[np.arange(len(p)), run.data.y_train])
  np.testing.assert_allclose(table["cross_entropy"], ce, rtol=2e-4, atol=1e-5)
  np.testing.assert_allclose(table["max_softmax"], p.max(axis=1), rtol=2e-4, atol=1e-5)
  stored = np.load(os.path.join(config.run_dir, reports.DETECTION_DIR, reports.SCORES_NPZ))
  np.testing.assert_allclose(stored["cross_entropy"], table["cross_entropy"], rtol=1e-5)


def test_metrics_json_matches_sklearn_on_the_exported_scores(trained):
  config, _ = trained
  table = read_csv(os.path.join(config.run_dir, reports.DETECTION_DIR, reports.SCORES_CSV))
  document = json.load(open(os.path.join(config.run_dir, reports.DETECTION_DIR, reports.METRICS_JSON)))
  corrupted = table["corrupted"].astype(bool)
  assert document["step"] == 50 and document["flag_count"] == round(0.4 * len(corrupted))
  ce = document["scores"]["cross_entropy"]
  assert ce["auroc"] == pytest.approx(sk.roc_auc_score(corrupted, table["cross_entropy"]), abs=1e-4)
  assert ce["auroc"] > 0.6  # 50 steps already tell many wrong labels apart
  top = np.argsort(-table["cross_entropy"], kind="stable")[:document["flag_count"]]
  assert ce["precision"] == pytest.approx(corrupted[top].mean(), abs=5e-3)  # CSV rounding may swap a tie
  ms = document["scores"]["max_softmax"]
  assert ms["suspicious_end"] == "low"
  assert ms["auroc"] == pytest.approx(sk.roc_auc_score(corrupted, -table["max_softmax"]), abs=1e-4)
  text = open(os.path.join(config.run_dir, reports.DETECTION_DIR, reports.REPORT_MD)).read()
  assert f"{ce['auroc']:.4f}" in text


def test_report_mode_rewrites_the_report_from_the_checkpoint(trained, tmp_path):
  config, _ = trained
  csv_path = os.path.join(config.run_dir, reports.DETECTION_DIR, reports.SCORES_CSV)
  before = read_csv(csv_path)
  os.remove(csv_path)
  document = experiment.run(RunConfig(**{**config.to_json(), "mode": "report"}))
  assert document["step"] == 50
  np.testing.assert_allclose(read_csv(csv_path)["cross_entropy"], before["cross_entropy"], rtol=1e-5)
  with pytest.raises(UserError, match="no checkpoint") as error:
    experiment.run(tiny_config(tmp_path, mode="report"))
  assert error.value.exit_code == 1


def test_rerunning_a_finished_run_writes_a_missing_report(trained):
  config, _ = trained
  detection_dir = os.path.join(config.run_dir, reports.DETECTION_DIR)
  before = read_csv(os.path.join(detection_dir, reports.SCORES_CSV))
  shutil.rmtree(detection_dir)  # as if the first run had stopped while writing its report
  experiment.train(experiment.build(config))
  after = read_csv(os.path.join(detection_dir, reports.SCORES_CSV))
  np.testing.assert_allclose(after["cross_entropy"], before["cross_entropy"], rtol=1e-5)
  stamp = os.path.getmtime(os.path.join(detection_dir, reports.METRICS_JSON))
  experiment.train(experiment.build(config))  # complete now: left alone
  assert os.path.getmtime(os.path.join(detection_dir, reports.METRICS_JSON)) == stamp


def test_curves_skip_missing_values_and_show_method_metrics():
  history = [{"step": s, "top1": 0.1 * s, "top5": None, "train_loss": 1.0 / s, "train_accuracy": 0.05 * s,
              "eval_loss": 2.0, "learning_rate": 0.1, "train_weight_mean": 0.5} for s in (1, 2, 3)]
  plots = reports.curve_plots(history)
  assert set(plots) == {"accuracy", "loss", "learning_rate", "train_metrics"}
  assert all(png.startswith(b"\x89PNG") for png in plots.values())
  assert reports.curve_plots([]) == {}


# ----- confident learning: label issues and the noise estimate ------------------------------------

def _confident_joint_by_loop(labels, probs):
  """Confident learning written out example by example, as the paper states it."""
  k = probs.shape[1]
  thresholds = [np.mean([probs[i, j] for i in range(len(labels)) if labels[i] == j]) for j in range(k)]
  counts = np.zeros((k, k))
  for i, given in enumerate(labels):
    candidates = [j for j in range(k) if probs[i, j] >= thresholds[j]]
    if candidates:
      counts[given, max(candidates, key=lambda j: probs[i, j])] += 1
  per_label = np.bincount(labels, minlength=k)
  calibrated = np.array([counts[i] / counts[i].sum() * per_label[i] if counts[i].sum() else counts[i]
                         for i in range(k)])
  return calibrated / calibrated.sum()


def _noisy_predictions(n=600, k=4, noise=0.25, seed=0):
  """Labels with a known fraction flipped and probabilities that mostly know the true class."""
  rng = np.random.default_rng(seed)
  true = rng.integers(0, k, n)
  flip = rng.random(n) < noise
  given = np.where(flip, (true + rng.integers(1, k, n)) % k, true)
  logits = rng.normal(0, 1, (n, k)) + 3.0 * np.eye(k)[true]
  probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  return true, given, probs, flip


def test_confident_joint_matches_a_per_example_loop():
  from ieg.reports import label_issues  # pylint: disable=g-import-not-at-top
  _, given, probs, _ = _noisy_predictions()
  estimate = label_issues.estimate_noise(given, probs)
  np.testing.assert_allclose(estimate.joint, _confident_joint_by_loop(given, probs), atol=1e-12)
  assert estimate.joint.sum() == pytest.approx(1.0)
  np.testing.assert_allclose(estimate.transition.sum(axis=1), 1.0)


def test_noise_estimate_and_flags_find_the_flipped_labels():
  from ieg.reports import label_issues  # pylint: disable=g-import-not-at-top
  _, given, probs, flip = _noisy_predictions(n=2000, noise=0.25)
  issues = label_issues.find_label_issues(given, probs)
  assert abs(issues.estimate.noise_rate - flip.mean()) < 0.05  # estimated, not told
  assert issues.is_issue.sum() == round(issues.estimate.noise_rate * len(given))
  precision = (issues.is_issue & flip).sum() / issues.is_issue.sum()
  recall = (issues.is_issue & flip).sum() / flip.sum()
  assert precision > 0.8 and recall > 0.8, (precision, recall)
  order_scores = 1.0 - issues.self_confidence[issues.order]
  assert np.all(np.diff(order_scores) <= 0)  # most suspicious first


def test_label_issues_csv_names_classes_and_sorts_by_suspicion(tmp_path):
  import csv  # pylint: disable=g-import-not-at-top
  from ieg.reports import label_issues  # pylint: disable=g-import-not-at-top
  given = np.array([0, 1, 1, 0])
  probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.6, 0.4]])
  issues = label_issues.find_label_issues(given, probs)
  path = str(tmp_path / "issues.csv")
  label_issues.write_issues_csv(path, issues, given, ids=np.array([10, 11, 12, 13]), class_names=["cat", "dog"])
  with open(path, encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert [r["index"] for r in rows] == ["11", "13", "10", "12"]
  assert rows[0] == {"index": "11", "given_label": "dog", "suggested_label": "cat", "is_label_issue": str(
      bool(issues.is_issue[1])), "score": "0.800000", "scored": "in_sample"}
  paths = [f"img{i}.png" for i in range(14)]   # the file of every source row: index 11 -> img11.png
  label_issues.write_issues_csv(path, issues, given, ids=np.array([10, 11, 12, 13]), paths=paths)
  with open(path, encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert [r["path"] for r in rows] == ["img11.png", "img13.png", "img10.png", "img12.png"]


def test_every_run_writes_its_in_sample_label_issues_and_noise_estimate(trained):
  from ieg.reports import label_issues  # pylint: disable=g-import-not-at-top
  config, run = trained
  directory = os.path.join(config.run_dir, "detection")
  with open(os.path.join(directory, label_issues.ISSUES_FILE), newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == run.data.num_train and {r["scored"] for r in rows} == {"in_sample"}
  assert sorted(int(r["index"]) for r in rows) == sorted(run.data.train_ids.tolist())
  by_id = dict(zip(run.data.train_ids.tolist(), run.data.y_train.tolist()))
  assert all(int(r["given_label"]) == by_id[int(r["index"])] for r in rows)
  probs = np.load(os.path.join(directory, label_issues.PROBS_FILE))
  assert probs.shape == (run.data.num_train, 10) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
  estimate = json.load(open(os.path.join(directory, label_issues.ESTIMATE_FILE), encoding="utf-8"))
  assert 0.0 <= estimate["estimated_noise_rate"] <= 1.0
  assert estimate["num_flagged"] == sum(r["is_label_issue"] == "True" for r in rows)
  assert estimate["num_flagged"] == round(estimate["estimated_noise_rate"] * run.data.num_train)
  assert estimate["true_noise_rate"] == pytest.approx(run.data.corrupted.mean())
  reference = label_issues.find_label_issues(run.data.y_train, probs)  # the same numbers from the saved probs
  assert reference.estimate.noise_rate == pytest.approx(estimate["estimated_noise_rate"])
