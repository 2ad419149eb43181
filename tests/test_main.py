"""End to end: the command line, a supervised run that learns, resume, evaluation mode, run files."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from core.errors import UserError
from ieg import experiment
from ieg.config import RunConfig
from ieg.run import files as run_files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, timeout=300):
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
  return subprocess.run([sys.executable, "-m", "ieg.main", *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=timeout)


def tiny_digits_config(tmp_path, **overrides):
  settings = dict(dataset="digits_uniform_0.4", method="supervised", network_name="mnist_cnn", batch_size=32,
                  val_batch_size=128, max_iteration=40, eval_freq=20, learning_rate=0.05, lr_schedule="constant",
                  probe_dataset_hold_ratio=0.0, checkpoint_path=str(tmp_path), seed=1,
                  distribution_strategy="one_device")
  settings.update(overrides)
  return RunConfig(**settings)


@pytest.mark.parametrize("flag, message", [
    ("--dataset=cifar10_uniform_1.7", "--dataset"),
    ("--method=magic", "--method=magic"),
    ("--batch_size=0", "--batch_size=0"),
    ("--batch_size=abc", "batch_size"),
    ("--seed=-1", "--seed=-1 is out of range: use an integer in [0, 4294967295]"),
    ("--seed=99999999999", "--seed=99999999999 is out of range"),
    ("--probe_dataset_hold_ratio=1.7", "--probe_dataset_hold_ratio=1.7 is out of range"),
    ("--forget_rate=lots", "--forget_rate=lots is not a number"),
    ("--forget_rate=1.5", "--forget_rate=1.5 is out of range"),
    ("--cross_val_folds=1", "--cross_val_folds=1 is out of range"),
    ("--precision=float64", "--precision=float64 is not known"),
])
def test_bad_flags_exit_2_with_one_line(flag, message):
  result = run_cli("--method=supervised", flag, "--checkpoint_path=/nonexistent/never_written")
  assert result.returncode == 2, result.stderr
  lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
  assert len(lines) == 1 and message in lines[0], result.stderr
  assert "Traceback" not in result.stderr


@pytest.mark.parametrize("overrides, message", [
    ({"network_name": "vgg99"}, "--network_name=vgg99"),
    ({"probe_dataset_hold_ratio": 1.5}, "--probe_dataset_hold_ratio"),
    ({"val_batch_size": -1}, "--val_batch_size"),
    ({"lr_schedule": "linear"}, "--lr_schedule=linear"),
    ({"aug_type": "magic"}, "--aug_type"),
    ({"dataset": "custom"}, "--dataset_file"),
    ({"dataset": "csv_uniform_0.2"}, "--dataset_file"),
    ({"dataset": "folder"}, "--dataset_dir"),
    ({"dataset": "digits", "dataset_dir": "/nonexistent/images"}, "--dataset_dir=/nonexistent/images"),
    ({"dataset": "mnist_uniform"}, "--dataset"),
    ({"decay_steps": (0,)}, "--decay_steps"),
])
def test_invalid_settings_name_the_flag(tmp_path, overrides, message):
  with pytest.raises(UserError, match=message.replace("-", r"\-")):
    tiny_digits_config(tmp_path, **overrides).validate()


def test_probe_ratio_too_small_for_one_example_per_class(tmp_path):
  with pytest.raises(UserError, match="probe_dataset_hold_ratio"):
    experiment.run(tiny_digits_config(tmp_path, probe_dataset_hold_ratio=0.001))


@pytest.fixture(scope="module")
def mnist_run(real_data_dir, tmp_path_factory):
  """A supervised mnist_cnn run on real MNIST at 50% symmetric noise: 300 steps, evaluated every 100."""
  root = tmp_path_factory.mktemp("mnist")
  config = RunConfig(dataset="mnist_symmetric_0.5", method="supervised", network_name="mnist_cnn",
                     data_dir=str(real_data_dir), batch_size=64, val_batch_size=500, max_iteration=300, eval_freq=100,
                     learning_rate=0.05, lr_schedule="constant", probe_dataset_hold_ratio=0.0,
                     checkpoint_path=str(root), seed=3, distribution_strategy="one_device")
  results = experiment.run(config)
  return config, results


@pytest.mark.realdata
def test_supervised_learns_on_real_noisy_mnist(mnist_run):
  config, results = mnist_run
  assert [h["step"] for h in results["history"]] == [100, 200, 300]
  assert results["top1"] > 0.8, results  # chance is 0.1; half the training labels are wrong
  assert results["top5"] >= results["top1"]


@pytest.mark.realdata
def test_run_directory_holds_flags_noise_checkpoints_and_events(mnist_run):
  config, _ = mnist_run
  run_dir = config.run_dir
  assert run_dir.endswith(os.path.join("mnist_symmetric_0.5_p0.0", "mnist_cnn", "supervised"))
  flags = json.load(open(os.path.join(run_dir, run_files.FLAGS_FILE)))
  assert flags["dataset"] == "mnist_symmetric_0.5" and flags["global_batch"] == 64
  noise = np.load(os.path.join(run_dir, run_files.NOISE_FILE))
  realised = (noise["noisy_labels"] != noise["clean_labels"]).mean()
  assert 0.48 < realised < 0.52
  assert sorted(os.listdir(os.path.join(run_dir, run_files.CHECKPOINT_DIR)))  # checkpoints exist
  for sub in ("train", "eval"):
    assert any(f.startswith("events") for f in os.listdir(os.path.join(run_dir, sub)))
  log = [json.loads(l) for l in open(os.path.join(run_dir, run_files.LOG_FILE))]
  assert [r["step"] for r in log] == [100, 200, 300]


@pytest.mark.realdata
def test_evaluation_mode_reproduces_the_last_training_evaluation(mnist_run):
  config, results = mnist_run
  record = experiment.run(RunConfig(**{**config.to_json(), "mode": "evaluation"}))
  assert record["step"] == 300
  assert record["top1"] == pytest.approx(results["top1"], abs=1e-6)


@pytest.mark.realdata
def test_rerunning_resumes_from_the_checkpoint(mnist_run):
  config, _ = mnist_run
  longer = RunConfig(**{**config.to_json(), "max_iteration": 400})
  run = experiment.build(longer)
  results = experiment.train(run)
  assert [h["step"] for h in results["history"]] == [100, 200, 300, 400]
  assert int(run.model.optimizer.iterations.numpy()) == 400


def test_cli_trains_and_evaluates_offline_on_digits(tmp_path):
  args = ["--dataset=digits_uniform_0.4", "--method=supervised", "--network_name=mnist_cnn", "--batch_size=32",
          "--max_iteration=40", "--eval_freq=20", "--lr_schedule=constant", "--learning_rate=0.05",
          "--probe_dataset_hold_ratio=0", f"--checkpoint_path={tmp_path}"]
  train = run_cli(*args)
  assert train.returncode == 0, train.stderr[-3000:]
  # Every log line on stderr is the project's own (TensorFlow's info lines, e.g. checkpoint sharding, are not).
  sources = {line.split("]")[0].split()[-1].split(":")[0] for line in train.stderr.splitlines() if line[:1] in "IWE"
             and line[1:5].isdigit()}
  assert sources and sources <= {"experiment.py", "callbacks.py", "writer.py", "checkpoints.py", "strategy.py",
                                 "main.py"}, sources
  run_dir = tiny_digits_config(tmp_path).run_dir
  results = json.load(open(os.path.join(run_dir, run_files.RESULTS_FILE)))
  assert results["step"] == 40 and 0.0 <= results["top1"] <= 1.0
  evaluation = run_cli(*args, "--mode=evaluation")
  assert evaluation.returncode == 0, evaluation.stderr[-3000:]
  assert "[Evaluation] step 40" in evaluation.stdout


def test_evaluation_without_checkpoint_exits_1(tmp_path):
  result = run_cli("--dataset=digits_uniform_0.4", "--method=supervised", "--network_name=mnist_cnn",
                   "--probe_dataset_hold_ratio=0", "--mode=evaluation", f"--checkpoint_path={tmp_path}")
  assert result.returncode == 1, result.stderr
  assert "no checkpoint found" in result.stderr and "Traceback" not in result.stderr


def test_select_on_validation_takes_the_best_validation_epoch_and_reports_its_test_top1():
  history = [{"step": 10, "top1": 0.90, "validation_top1": 0.50}, {"step": 20, "top1": 0.70, "validation_top1": 0.60},
             {"step": 30, "top1": 0.95, "validation_top1": 0.60}]
  selected = run_files.select_on_validation(history)
  assert (selected["step"], selected["top1"]) == (20, 0.70)  # the earliest of the tied best, not the test's best
  assert run_files.select_on_validation([{"step": 10, "top1": 0.9}]) is None  # no validation: no choice


def test_a_validation_holdout_chooses_the_epoch_in_results(tmp_path):
  config = tiny_digits_config(tmp_path, validation_fraction=0.1, max_iteration=40, eval_freq=20)
  results = experiment.run(config)
  history = results["history"]
  assert [h["step"] for h in history] == [20, 40]
  assert all(0.0 <= h["validation_top1"] <= 1.0 for h in history)
  best = max(history, key=lambda h: (h["validation_top1"], -h["step"]))
  assert results["selected"] == {"by": "validation_top1", "step": best["step"], "epoch": best["epoch"],
                                 "validation_top1": best["validation_top1"], "top1": best["top1"],
                                 "top5": best["top5"]}
  saved = run_files.read_json(os.path.join(config.run_dir, run_files.FLAGS_FILE))
  assert saved["validation_fraction"] == 0.1 and saved["num_validation"] > 0
  assert saved["num_train"] + saved["num_validation"] == 1437  # scikit-learn digits' training rows here
