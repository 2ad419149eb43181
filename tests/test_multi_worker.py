"""Multi-worker training: two worker processes on 127.0.0.1 against a one-process run of the same global batch."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from core.errors import UserError
from datasets.pipelines import images as pipeline
from ieg import experiment
from ieg import strategy as strategy_lib
from ieg.config import RunConfig
from ieg.reports import writer as reports
from ieg.run import files as run_files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS, EVAL_FREQ, PER_REPLICA_BATCH = 6, 3, 16

# A worker: the real `experiment.run` (lock, temporary copy of the run for non-chief workers,
# report), keeping a handle on the built run to save its final weights.
WORKER = """
import os
import sys
import numpy as np
from ieg import experiment
from ieg.reports import writer as reports
from ieg.config import RunConfig
out, settings = sys.argv[1], eval(sys.argv[2])
built = []
build = experiment.build
experiment.build = lambda *args, **kwargs: built.append(build(*args, **kwargs)) or built[-1]
experiment.run(RunConfig(**settings))
np.savez(out, *[v.numpy() for v in built[0].model.network.weights])
print("RUN_DIR=" + built[0].config.run_dir)
sys.stdout.flush()
os._exit(0)  # skips TensorFlow's slow multi-worker teardown at interpreter exit (10-60 s here)
"""


def settings(checkpoint_path, strategy):
  return dict(dataset="digits_uniform_0.4", method="supervised", network_name="mnist_cnn",
              batch_size=PER_REPLICA_BATCH, val_batch_size=64, max_iteration=STEPS, eval_freq=EVAL_FREQ,
              learning_rate=0.05, lr_schedule="constant", probe_dataset_hold_ratio=0.0,
              checkpoint_path=str(checkpoint_path), seed=5, distribution_strategy=strategy)


def free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def start_workers(root, scratch):
  addresses = [f"127.0.0.1:{p}" for p in free_ports(2)]
  processes = []
  for index in range(2):
    tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3",
           "TMPDIR": str(scratch), "PYTHONPATH": REPO}
    args = [sys.executable, "-c", WORKER, str(root / f"worker{index}.npz"),
            repr(settings(root / "runs", "multi_worker"))]
    processes.append(subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
  return processes


def one_process_reference(checkpoint_path):
  """The same settings on one process: MirroredStrategy over the session's two logical CPUs."""
  run = experiment.build(RunConfig(**settings(checkpoint_path, "mirrored")))
  initial = [v.numpy() for v in run.model.network.weights]
  original = reports.WriteReports.on_train_end
  reports.WriteReports.on_train_end = lambda self, logs=None: None  # the reference needs no report
  try:
    experiment.train(run)
  finally:
    reports.WriteReports.on_train_end = original
  return run, initial, [v.numpy() for v in run.model.network.weights]


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, two_cpus):
  """Trains STEPS steps on two single-CPU workers (and meanwhile the one-process reference)."""
  del two_cpus  # MirroredStrategy() takes the session's two logical CPUs
  root = tmp_path_factory.mktemp("multi_worker")
  scratch = root / "tmp"
  scratch.mkdir()
  processes = start_workers(root, scratch)
  try:
    reference = one_process_reference(root / "reference")
    outputs = [p.communicate(timeout=300)[0] for p in processes]
  except BaseException:
    for p in processes:
      p.kill()
    raise
  for index, (process, output) in enumerate(zip(processes, outputs)):
    assert process.returncode == 0, f"worker {index} failed:\n{output[-4000:]}"
  weights = [np.load(root / f"worker{i}.npz") for i in range(2)]
  run_dirs = [output.split("RUN_DIR=")[-1].strip() for output in outputs]
  return [[w[k] for k in w.files] for w in weights], root, run_dirs, reference


@pytest.mark.slow
def test_two_workers_end_with_the_same_weights(two_workers):
  (chief, other), _, _, _ = two_workers
  assert len(chief) == len(other) == 8
  for a, b in zip(chief, other):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_two_workers_equal_one_process_with_the_same_global_batch(two_workers):
  """The workers split each global batch as a one-process MirroredStrategy over two devices does."""
  (chief, _), _, _, (run, initial, reference) = two_workers
  assert run.global_batch == 2 * PER_REPLICA_BATCH and run.strategy.num_replicas_in_sync == 2
  assert any(np.abs(a - b).max() > 1e-4 for a, b in zip(initial, reference))  # training moved the weights
  for a, b in zip(chief, reference):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_only_the_chief_writes_the_run_directory(two_workers):
  _, root, (chief_dir, other_dir), _ = two_workers
  run_dir = RunConfig(**settings(root / "runs", "multi_worker")).run_dir
  assert chief_dir == run_dir
  assert other_dir.startswith(str(root / "tmp" / "ieg_worker1_")) and not os.path.exists(other_dir)
  results = json.load(open(os.path.join(run_dir, run_files.RESULTS_FILE)))
  assert [h["step"] for h in results["history"]] == [EVAL_FREQ, STEPS]
  flags = json.load(open(os.path.join(run_dir, run_files.FLAGS_FILE)))
  assert flags["num_replicas"] == 2 and flags["global_batch"] == 2 * PER_REPLICA_BATCH
  assert os.listdir(os.path.join(run_dir, run_files.CHECKPOINT_DIR))
  assert os.path.exists(os.path.join(run_dir, reports.PLOTS_DIR, "accuracy.png"))  # the chief plots
  # 6 steps of 32 examples are less than one pass over the data: no per-example scores at the end.
  assert not os.path.exists(os.path.join(run_dir, reports.DETECTION_DIR))
  assert os.listdir(root / "runs") == [os.path.relpath(run_dir, root / "runs").split(os.sep)[0]]


def test_replica_slices_split_every_global_batch_in_replica_order():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  rows = np.arange(4 * 12).reshape(4, 12)  # 4 global batches of 12 rows
  dataset = tf.data.Dataset.from_tensor_slices({"x": rows, "y": rows * 10})
  for first, local in [(0, 1), (2, 1), (2, 2), (0, 4)]:
    sliced = list(pipeline.replica_slices(dataset, num_replicas=4, first_replica=first, local_replicas=local)
                  .as_numpy_iterator())
    expected = [batch[r * 3:(r + 1) * 3] for batch in rows for r in range(first, first + local)]
    assert [s["x"].tolist() for s in sliced] == [e.tolist() for e in expected]
    assert all((s["y"] == 10 * s["x"]).all() for s in sliced)


@pytest.mark.parametrize("tf_config, message", [
    (None, "TF_CONFIG"),
    ("{not json", "not valid"),
    ('{"cluster": {"worker": ["a:1"]}}', "not valid"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "index 2"),
])
def test_bad_tf_config_is_a_user_error(monkeypatch, tf_config, message):
  if tf_config is None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
  else:
    monkeypatch.setenv("TF_CONFIG", tf_config)
  with pytest.raises(UserError, match=message):
    strategy_lib.writes_run_dir("multi_worker")


@pytest.mark.parametrize("cluster, task, chief", [
    ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 0}, True),
    ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 1}, False),
    ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "worker", "index": 0}, False),
    ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "chief", "index": 0}, True),
])
def test_the_chief_is_the_chief_task_or_else_worker_zero(cluster, task, chief):
  assert strategy_lib.is_chief_task({"cluster": cluster, "task": task}) is chief
