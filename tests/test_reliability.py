"""Runs that die, get preempted, collide, diverge or meet bad files and folders.

The kill/resume test drives `python -m ieg.main` as a subprocess and freezes it at exact points with
the IEG_TEST_PAUSE_AT hook (ieg/run/fault_points.py), then kills it there. The other checks call the
command line in-process (no new TensorFlow process): most fail before any training, the NaN and
full-disk checks train a few steps of a tiny run.
"""
import glob
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from absl import flags as absl_flags

from core.errors import UserError
from ieg import experiment
from ieg import main as ieg_main
from ieg.config import RunConfig
from ieg.run import checkpoints
from ieg.run import fault_points
from ieg.run import files as run_files
from ieg.run import guard_callbacks
from ieg.run import interrupts
from ieg.run import lock as run_lock
from methods.supervised import Supervised

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = dict(dataset="digits_uniform_0.4", method="supervised", network_name="mnist_cnn", batch_size=32,
                max_iteration=60, eval_freq=20, lr_schedule="constant", learning_rate=0.05,
                probe_dataset_hold_ratio=0.0, seed=3, distribution_strategy="one_device")
PROCESS_TIMEOUT_S = 300
# Only subprocesses run deterministically: op determinism is global and would stay on for other tests.
SUBPROCESS_ONLY = ["--deterministic=true"]


def config_at(root, **overrides) -> RunConfig:
  return RunConfig(**{**SETTINGS, "checkpoint_path": str(root), **overrides})


def command_line(root, **overrides) -> list[str]:
  settings = {**SETTINGS, "checkpoint_path": str(root), **overrides}
  return [f"--{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in settings.items()]


# ----- subprocess helpers --------------------------------------------------------------------

class Training:
  """`python -m ieg.main` in the background; output goes to files so a stopped child never blocks on a pipe."""

  def __init__(self, root, log_dir, tag: str, pause: str | None = None):
    env = {k: v for k, v in os.environ.items() if k != fault_points.ENV}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    if pause:
      env[fault_points.ENV] = pause
    self.stderr_path = os.path.join(log_dir, f"{tag}.stderr")
    with open(os.path.join(log_dir, f"{tag}.stdout"), "w") as out, open(self.stderr_path, "w") as err:
      self.process = subprocess.Popen([sys.executable, "-m", "ieg.main", *command_line(root), *SUBPROCESS_ONLY],
                                      cwd=REPO, env=env, stdout=out, stderr=err)
    self.pid = self.process.pid

  @property
  def stderr(self) -> str:
    with open(self.stderr_path) as f:
      return f.read()

  def wait_until_paused(self) -> None:
    """Waits for the SIGSTOP of the pause point; fails with the child's stderr if it exits instead."""
    deadline = time.time() + PROCESS_TIMEOUT_S
    while time.time() < deadline:
      pid, status = os.waitpid(self.pid, os.WUNTRACED | os.WNOHANG)
      if pid and os.WIFSTOPPED(status):
        return
      if pid:
        self.process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen
        pytest.fail(f"run exited with {self.process.returncode} before its pause point:\n{self.stderr[-3000:]}")
      time.sleep(0.05)
    self.process.kill()
    pytest.fail(f"run did not reach its pause point in {PROCESS_TIMEOUT_S} s:\n{self.stderr[-3000:]}")

  def kill(self) -> None:
    self.process.kill()
    assert self.process.wait(timeout=60) == -signal.SIGKILL

  def wait(self) -> int:
    return self.process.wait(timeout=PROCESS_TIMEOUT_S)


def listed_steps(run_dir) -> list[int]:
  state = tf.train.get_checkpoint_state(os.path.join(run_dir, run_files.CHECKPOINT_DIR))
  return sorted(int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths) if state else []


def checkpoint_prefix(run_dir, step: int) -> str:
  return os.path.join(run_dir, run_files.CHECKPOINT_DIR, f"{checkpoints.PREFIX}-{step}")


def assert_listed_and_readable(run_dir, steps) -> None:
  assert listed_steps(run_dir) == steps
  for step in steps:
    assert checkpoints._unreadable(checkpoint_prefix(run_dir, step)) is None, step  # pylint: disable=protected-access


def checkpoint_tensors(prefix: str) -> dict[str, np.ndarray]:
  """Every saved variable (weights, EMA, dropout seeds, optimizer slots), without the save counter."""
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if not name.startswith(("save_counter", "_CHECKPOINTABLE"))}


# ----- kill, preempt and resume ----------------------------------------------------------------

@pytest.mark.slow
def test_killed_and_preempted_run_resumes_to_the_uninterrupted_weights(tmp_path):
  reference = Training(tmp_path / "reference", tmp_path, "reference")  # same seed, never interrupted, meanwhile
  root = tmp_path / "interrupted"
  run_dir = config_at(root).run_dir

  # 1. Killed between checkpoints (after step 30). While it lives, a second run is refused by name.
  first = Training(root, tmp_path, "step30", pause="step:30")
  first.wait_until_paused()
  assert_listed_and_readable(run_dir, [20])
  with pytest.raises(UserError, match=rf"another run \(pid {first.pid} on host .*is using"):
    experiment.run(config_at(root))
  first.kill()
  assert_listed_and_readable(run_dir, [20])

  # 2. Killed while writing checkpoint 40: its files exist but it is not listed; 20 stays the latest.
  second = Training(root, tmp_path, "checkpoint40", pause="checkpoint:40")
  second.wait_until_paused()
  assert os.path.exists(checkpoint_prefix(run_dir, 40) + ".index")
  second.kill()
  assert_listed_and_readable(run_dir, [20])
  assert "resumed from step 20" in second.stderr
  assert f"from a run that is no longer alive (pid {first.pid}" in second.stderr  # the stale lock was taken over

  # 3. Killed during the evaluation at step 40; the unlisted files of (2) were cleared first.
  third = Training(root, tmp_path, "evaluation40", pause="evaluation:40")
  third.wait_until_paused()
  assert not os.path.exists(checkpoint_prefix(run_dir, 40) + ".index")
  third.kill()
  assert_listed_and_readable(run_dir, [20])
  assert "resumed from step 20" in third.stderr

  # 4. Preempted by SIGTERM after step 47, inside a period: it saves step 47 and exits with 75.
  fourth = Training(root, tmp_path, "sigterm47", pause="step:47")
  fourth.wait_until_paused()
  os.kill(fourth.pid, signal.SIGTERM)
  os.kill(fourth.pid, signal.SIGCONT)
  assert fourth.wait() == interrupts.EXIT_INTERRUPTED, fourth.stderr[-3000:]
  assert "stopped by SIGTERM at step 47" in fourth.stderr and "Traceback" not in fourth.stderr
  assert_listed_and_readable(run_dir, [20, 40, 47])

  # 5. The last rerun finishes from 47: first the rest of that period, then as usual.
  last = Training(root, tmp_path, "finish")
  assert last.wait() == 0, last.stderr[-3000:]
  assert "resumed from step 47" in last.stderr
  assert reference.wait() == 0, reference.stderr[-3000:]

  reference_dir = config_at(tmp_path / "reference").run_dir
  expected = checkpoint_tensors(checkpoint_prefix(reference_dir, 60))
  resumed = checkpoint_tensors(checkpoint_prefix(run_dir, 60))
  assert sorted(resumed) == sorted(expected) and len(expected) > 10
  for name, value in expected.items():
    np.testing.assert_array_equal(resumed[name], value, err_msg=name)
  results = run_files.read_json(os.path.join(run_dir, run_files.RESULTS_FILE))
  assert [h["step"] for h in results["history"]] == [20, 40, 60]  # step 47 was a checkpoint, not a period end
  reference_results = run_files.read_json(os.path.join(reference_dir, run_files.RESULTS_FILE))
  assert results["top1"] == reference_results["top1"]
  assert not os.path.exists(os.path.join(run_dir, run_lock.LOCK_FILE))
  assert not glob.glob(os.path.join(run_dir, run_files.CHECKPOINT_DIR, "*_temp"))


# ----- run lock ----------------------------------------------------------------------------------

def test_lock_refuses_a_live_holder_and_names_it(tmp_path):
  with run_lock.RunLock(str(tmp_path / "run")):
    other = run_lock.RunLock(str(tmp_path / "run"))  # a second open file: flock conflicts as between processes
    with pytest.raises(UserError, match=rf"pid {os.getpid()} on host "):
      other.acquire()
  assert not os.path.exists(tmp_path / "run" / run_lock.LOCK_FILE)


def test_lock_of_a_dead_process_is_taken_over(tmp_path, caplog):
  run_dir = str(tmp_path / "run")
  code = (f"import os, signal; from ieg.run import lock as run_lock; run_lock.RunLock({run_dir!r}).acquire(); "
          "print(os.getpid(), flush=True); os.kill(os.getpid(), signal.SIGKILL)")
  dead = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
  assert dead.returncode == -signal.SIGKILL, dead.stderr
  dead_pid = int(dead.stdout.split()[0])
  with open(os.path.join(run_dir, run_lock.LOCK_FILE)) as f:
    assert json.load(f)["pid"] == dead_pid  # the dead run's lock file is still there
  with run_lock.RunLock(run_dir):
    assert f"pid {dead_pid}" in caplog.text
    with open(os.path.join(run_dir, run_lock.LOCK_FILE)) as f:
      assert json.load(f)["pid"] == os.getpid()


def test_lock_leaves_no_empty_folders_behind(tmp_path):
  with run_lock.RunLock(str(tmp_path / "a" / "b" / "c")):
    assert os.path.isdir(tmp_path / "a" / "b" / "c")
  assert os.listdir(tmp_path) == []


def test_lock_file_per_multi_worker_task(monkeypatch):
  monkeypatch.setenv("TF_CONFIG", json.dumps({"task": {"type": "worker", "index": 2}}))
  assert run_lock.lock_file_name() == "run.worker-2.lock"
  monkeypatch.setenv("TF_CONFIG", json.dumps({"task": {"type": "chief", "index": 0}}))
  assert run_lock.lock_file_name() == run_lock.LOCK_FILE
  monkeypatch.delenv("TF_CONFIG")
  assert run_lock.lock_file_name() == run_lock.LOCK_FILE


# ----- resume inside a period ------------------------------------------------------------------

@pytest.mark.parametrize("start, max_iteration, eval_freq, expected", [
    (0, 60, 20, [(0, 0, 3, 20)]),
    (40, 60, 20, [(40, 2, 3, 20)]),
    (47, 60, 20, [(47, 2, 3, 13)]),
    (47, 100, 20, [(47, 2, 3, 13), (60, 3, 5, 20)]),
    (3, 50, 20, [(3, 0, 1, 17), (20, 1, 2, 20), (40, 2, 3, 10)]),   # the last, shorter period: a call of its own
    (41, 45, 20, [(41, 2, 3, 4)]),
])
def test_fit_segments(start, max_iteration, eval_freq, expected):
  segments = experiment.fit_segments(start, max_iteration, eval_freq)
  assert [(s.first_step, s.initial_epoch, s.epochs, s.steps_per_epoch) for s in segments] == expected


# ----- non-finite loss ---------------------------------------------------------------------------

def test_nan_loss_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
  original = Supervised.training_loss

  def poisoned(self, data):  # from the 26th step on the loss, and so every gradient, is NaN
    loss, logits = original(self, data)
    return loss * tf.where(self.optimizer.iterations >= 25, float("nan"), 1.0), logits

  monkeypatch.setattr(Supervised, "training_loss", poisoned)
  config = config_at(tmp_path, max_iteration=40, eval_freq=10)
  with pytest.raises(guard_callbacks.NonFiniteLoss) as error:
    experiment.run(config)
  message = str(error.value)
  assert error.value.exit_code == guard_callbacks.EXIT_NON_FINITE
  assert "became nan at step 26" in message and checkpoint_prefix(config.run_dir, 20) in message
  assert_listed_and_readable(config.run_dir, [10, 20])
  assert all(np.isfinite(v).all() for v in checkpoint_tensors(checkpoint_prefix(config.run_dir, 20)).values())
  assert not glob.glob(checkpoint_prefix(config.run_dir, 30) + "*")
  history = run_files.read_json(os.path.join(config.run_dir, run_files.RESULTS_FILE))["history"]
  assert [h["step"] for h in history] == [10, 20]
  assert not os.path.exists(os.path.join(config.run_dir, run_lock.LOCK_FILE))


# ----- a collapsed network -----------------------------------------------------------------------

class _StepModel:
  def __init__(self):
    self.optimizer = type("Optimizer", (), {"iterations": tf.Variable(0, dtype=tf.int64)})()


def _collapse_watch(patience=2):
  watch = guard_callbacks.WarnOnCollapse(num_classes=10, hint="Lower --learning_rate.", patience=patience)
  watch.set_model(_StepModel())
  return watch


def _evaluate(watch, step, loss, top1):
  watch.model.optimizer.iterations.assign(step)
  watch.on_epoch_end(0, {"val_loss": loss, "val_top1": top1})


@pytest.mark.parametrize("loss, top1, expected", [
    (np.log(10), 0.1, True), (2.31, 0.098, True), (2.30, 0.119, True),  # constant prediction
    (2.30, 0.125, False), (2.20, 0.10, False), (1.2, 0.6, False), (None, 0.1, False)])
def test_at_chance_is_log_k_and_one_over_k(loss, top1, expected):
  assert guard_callbacks.at_chance(loss, top1, 10) is expected


def test_collapse_warns_once_after_patience_evaluations_at_chance(caplog):
  watch = _collapse_watch()
  with caplog.at_level("WARNING"):
    _evaluate(watch, 100, 2.3026, 0.10)
    assert not caplog.records  # one evaluation at chance is the start of any run
    _evaluate(watch, 200, 2.3030, 0.098)
    _evaluate(watch, 300, 2.3020, 0.101)
    watch.on_train_end()
  warnings = [r.getMessage() for r in caplog.records]
  assert len(warnings) == 1
  assert "collapsed" in warnings[0] and "step 200" in warnings[0] and "Lower --learning_rate." in warnings[0]


def test_collapse_warning_needs_consecutive_evaluations(caplog):
  watch = _collapse_watch()
  with caplog.at_level("WARNING"):
    for step, (loss, top1) in enumerate([(2.30, 0.1), (1.5, 0.5), (2.30, 0.1), (0.9, 0.7)]):
      _evaluate(watch, 100 * (step + 1), loss, top1)
    watch.on_train_end()
  assert not caplog.records


def test_a_run_that_ends_at_chance_warns(caplog):
  watch = _collapse_watch()
  with caplog.at_level("WARNING"):
    _evaluate(watch, 400, 2.3026, 0.1)
    watch.on_train_end()
  assert len(caplog.records) == 1 and "step 400" in caplog.records[0].getMessage()


# ----- the command line, in-process: mistakes end in one line and a status -----------------------

@pytest.fixture
def cli(capsys, monkeypatch):
  """Runs ieg.main's parse + main in this process; returns (exit status, stderr)."""
  monkeypatch.setattr(ieg_main.logging.getLogger(), "level", ieg_main.logging.getLogger().level)

  def run(*args):
    absl_flags.FLAGS.unparse_flags()
    capsys.readouterr()
    try:
      ieg_main.main(ieg_main.parse_flags(["ieg.main", *args]))
      code = 0
    except SystemExit as e:
      code = e.code
    finally:
      absl_flags.FLAGS.unparse_flags()
    return code, capsys.readouterr().err

  return run


def assert_one_error_line(status, stderr, *words, code=2):
  assert status == code, stderr
  assert "Traceback" not in stderr
  last = stderr.strip().splitlines()[-1]
  assert last.startswith("error: "), stderr
  for word in words:
    assert word in last, (word, last)


def save_npz(path, **arrays):
  np.savez(path, **arrays)
  return str(path)


def custom_arrays(num_train=60, classes=3, shape=(8, 8), seed=0):
  rng = np.random.default_rng(seed)
  return dict(x_train=rng.integers(0, 255, (num_train, *shape), dtype=np.uint8),
              y_train=np.arange(num_train) % classes,
              x_test=rng.integers(0, 255, (12, *shape), dtype=np.uint8), y_test=np.arange(12) % classes)


@pytest.mark.parametrize("change, words", [
    ({"y_train": -(np.arange(60) % 3)}, ["y_train", "negative labels"]),
    ({"y_train": np.where(np.arange(60) == 5, 2**40, np.arange(60) % 3)}, ["y_train", "1099511627776", "[0, 99999]"]),
    ({"y_test": np.where(np.arange(12) == 5, 1e300, np.arange(12) % 3)}, ["y_test", "1e+300", "out of range"]),
    ({"y_train": np.arange(60) % 3 + 0.5}, ["y_train", "non-integer values"]),
    ({"y_train": (np.arange(60) % 3).astype(str)}, ["y_train", "integer class indices"]),
    ({"y_train": np.full(60, np.nan)}, ["y_train", "integer class indices"]),
    ({"class_names": np.array(["a", "b"])}, ["2 class_names", "3 classes"]),
    ({"x_test": np.zeros((12, 9, 8), np.uint8)}, ["x_test", "(9, 8, 1)", "(8, 8, 1)"]),
    ({"x_train": np.zeros((0, 8, 8), np.uint8), "y_train": np.zeros(0, np.int64)}, ["x_train", "empty"]),
    ({"y_train": np.zeros(60, np.int64)}, ["only one class"]),
    ({"y_train": np.arange(60) % 3 + 1, "y_test": np.arange(12) % 3 + 1}, ["class 0 of 0..3", "labels start at 1"]),
])
def test_bad_custom_files(tmp_path, cli, change, words):
  path = save_npz(tmp_path / "data.npz", **{**custom_arrays(), **change})
  status, stderr = cli(*command_line(tmp_path / "runs"), "--dataset=custom_uniform_0.2", f"--dataset_file={path}")
  assert_one_error_line(status, stderr, path, *words)
  assert not os.path.exists(tmp_path / "runs")  # a run that fails on its data leaves nothing behind


def test_probe_ratio_that_leaves_a_class_without_probe_examples(tmp_path, cli):
  arrays = custom_arrays(num_train=60)
  arrays["y_train"] = np.array([0] * 28 + [1] * 28 + [2] * 4)
  path = save_npz(tmp_path / "data.npz", **arrays)
  status, stderr = cli(*command_line(tmp_path / "runs"), "--dataset=custom_uniform_0.2", f"--dataset_file={path}",
                       "--probe_dataset_hold_ratio=0.3")  # 18 probe examples: 6 per class, class 2 has 4
  assert_one_error_line(status, stderr, "--probe_dataset_hold_ratio=0.3", "class 2 has only 4")
  status, stderr = cli(*command_line(tmp_path / "runs"), "--probe_dataset_hold_ratio=0.001")
  assert_one_error_line(status, stderr, "--probe_dataset_hold_ratio=0.001", "fewer than one per class")


def test_data_file_with_a_wrong_checksum(tmp_path, cli, monkeypatch):
  from datasets.sources import archives, standard  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(standard, "is_online", lambda *a, **k: False)
  folder = tmp_path / "data" / "mnist"
  folder.mkdir(parents=True)
  for name in archives.MNIST_IDX_FILES:
    (folder / name).write_bytes(b"not the official file")
  status, stderr = cli(*command_line(tmp_path / "runs"), "--dataset=mnist_uniform_0.4",
                       f"--data_dir={tmp_path / 'data'}")
  assert_one_error_line(status, stderr, str(folder / archives.MNIST_IDX_FILES[0]), "checksum mismatch",
                        "download it again")


def test_truncated_archive(tmp_path, cli, monkeypatch):
  """A truncated file whose checksum was (wrongly) accepted still fails on reading, by name."""
  import gzip  # pylint: disable=g-import-not-at-top
  from datasets.sources import archives  # pylint: disable=g-import-not-at-top
  folder = tmp_path / "data" / "mnist"
  folder.mkdir(parents=True)
  checksums = {}
  for name, dims in zip(archives.MNIST_IDX_FILES, [(20, 28, 28), (20,), (10, 28, 28), (10,)]):
    body = bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + bytes(int(np.prod(dims)))
    data = gzip.compress(body)
    if name.startswith("train-images"):
      data = data[:len(data) // 2]  # cut in the middle of the stream
    (folder / name).write_bytes(data)
    checksums[name] = ("md5", archives.file_digest(folder / name, "md5"))
  monkeypatch.setitem(archives.CHECKSUMS, "mnist", checksums)
  status, stderr = cli(*command_line(tmp_path / "runs"), "--dataset=mnist_uniform_0.4",
                       f"--data_dir={tmp_path / 'data'}")
  assert_one_error_line(status, stderr, "train-images-idx3-ubyte.gz", "truncated or corrupt")


def test_offline_without_local_data(tmp_path, cli, monkeypatch):
  from datasets.sources import standard  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(standard, "is_online", lambda *a, **k: False)
  (tmp_path / "empty").mkdir()
  status, stderr = cli(*command_line(tmp_path / "runs"), "--dataset=fashion_mnist_symmetric_0.2",
                       f"--data_dir={tmp_path / 'empty'}")
  assert_one_error_line(status, stderr, "no data found for 'fashion_mnist'", "offline")


def test_unwritable_checkpoint_path(tmp_path, cli):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a folder")
  status, stderr = cli(*command_line(blocker / "runs"))
  assert_one_error_line(status, stderr, "cannot create the run directory", "--checkpoint_path")
  assert blocker.read_text() == "not a folder"


# ----- evaluation of a directory that holds another run ------------------------------------------

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
  config = config_at(tmp_path_factory.mktemp("trained"), max_iteration=10, eval_freq=10)
  experiment.run(config)
  return config


def copy_run(config: RunConfig, **other) -> RunConfig:
  """The run directory of `config` copied to where a run with the `other` settings would live."""
  target = RunConfig(**{**config.to_json(), **other})
  shutil.copytree(config.run_dir, target.run_dir)
  return target


def test_evaluation_of_another_network_or_dataset_is_refused(trained_run, tmp_path, cli):
  for other, words in [({"network_name": "resnet32"}, ["--network_name=mnist_cnn (now resnet32)"]),
                       ({"dataset": "digits_symmetric_0.2"}, ["--dataset=digits_uniform_0.4", "digits_symmetric_0.2"])]:
    target = copy_run(trained_run, checkpoint_path=str(tmp_path / next(iter(other))), **other)
    status, stderr = cli(*command_line(target.checkpoint_path, **other), "--mode=evaluation")
    assert_one_error_line(status, stderr, target.run_dir, *words)


def test_checkpoint_that_does_not_fit_names_the_differing_settings(trained_run, tmp_path, cli):
  target = copy_run(trained_run, checkpoint_path=str(tmp_path / "noema"))
  status, stderr = cli(*command_line(target.checkpoint_path), "--mode=evaluation", "--use_ema=false")
  assert_one_error_line(status, stderr, "does not fit this model", "--use_ema=True (now False)")
  os.remove(os.path.join(target.run_dir, run_files.FLAGS_FILE))  # without flags.json: the general hint
  status, stderr = cli(*command_line(target.checkpoint_path, network_name="resnet32"), "--mode=evaluation")
  assert status == 1 and "no checkpoint found" in stderr  # another network lives in another folder
  shutil.copytree(target.run_dir, config_at(target.checkpoint_path, network_name="resnet32").run_dir)
  status, stderr = cli(*command_line(target.checkpoint_path, network_name="resnet32"), "--mode=evaluation")
  assert_one_error_line(status, stderr, "does not fit this model", "another --network_name")


def test_full_disk_during_training_stops_with_the_intact_checkpoint_named(trained_run, tmp_path, cli):
  """Resumes a copy of the 10-step run to 20 while no file may grow past 100 kB: the checkpoint write fails."""
  target = copy_run(trained_run, checkpoint_path=str(tmp_path / "full"))
  before = checkpoint_tensors(checkpoint_prefix(target.run_dir, 10))
  soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
  previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failing write instead of a killed process
  resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))  # results, logs, events fit; a checkpoint does not
  try:
    status, stderr = cli(*command_line(target.checkpoint_path, max_iteration=20, eval_freq=10))
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, previous_handler)
  assert_one_error_line(status, stderr, "could not write checkpoint", checkpoint_prefix(target.run_dir, 20),
                        checkpoint_prefix(target.run_dir, 10) + ", which is intact")
  assert_listed_and_readable(target.run_dir, [10])
  after = checkpoint_tensors(checkpoint_prefix(target.run_dir, 10))
  assert all(np.array_equal(before[name], after[name]) for name in before)
  assert not glob.glob(checkpoint_prefix(target.run_dir, 20) + "*")
  assert not os.path.exists(os.path.join(target.run_dir, run_lock.LOCK_FILE))
