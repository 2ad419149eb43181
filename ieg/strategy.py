"""The tf.distribute strategy named by --distribution_strategy, and what differs between workers.

Multi-worker training (`multi_worker`) reads the cluster from the standard `TF_CONFIG` variable.
Every worker builds the same global batches (they depend on (seed, step) only) and keeps its
replicas' slices of them, so a step on W workers sees exactly the examples of a one-process run
with the same global batch. Only the chief writes the run directory; every other worker runs on a
temporary copy of it (saving stays collective, so each worker must write somewhere), which is
deleted at the end, as TensorFlow's multi-worker checkpointing guide does.
"""
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
from typing import Callable, Iterator

import tensorflow as tf

from core.errors import UserError
from datasets.pipelines import images as pipeline
from ieg.run import files as run_files

TF_CONFIG = "TF_CONFIG"
MULTI_WORKER = "multi_worker"
# What a non-chief worker copies from the chief's run directory (a shared filesystem) to resume.
_RESUME_FILES = (run_files.CHECKPOINT_DIR, run_files.FLAGS_FILE)


def _mirrored():
  # All visible GPUs (select them with CUDA_VISIBLE_DEVICES); the CPU when there is none.
  return tf.distribute.MirroredStrategy()


def _one_device():
  gpus = tf.config.list_logical_devices("GPU")
  return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def _multi_worker():
  read_tf_config()  # a clear error before TensorFlow tries to reach the other workers
  return tf.distribute.MultiWorkerMirroredStrategy()


STRATEGIES = {"mirrored": _mirrored, "one_device": _one_device, MULTI_WORKER: _multi_worker}


def make_strategy(name: str) -> tf.distribute.Strategy:
  """The strategy named `name`; TensorFlow's default one when it would hold a single local device.

  A one-device Mirrored or OneDevice strategy computes exactly what the default strategy does, but
  its distributed variables and per-replica plumbing cost about a third of a small network's step
  on CPU; a plain `fit` runs under the default strategy.
  """
  if name != MULTI_WORKER and _local_devices(name) == 1:
    return tf.distribute.get_strategy()   # not built at all: its log line would name a strategy not used
  return STRATEGIES[name]()


def _local_devices(name: str) -> int:
  """How many devices the local strategy `name` would hold: MirroredStrategy takes every visible GPU,
  else every logical CPU."""
  if name != "mirrored":
    return 1
  return len(tf.config.list_logical_devices("GPU")) or len(tf.config.list_logical_devices("CPU"))


# ----- the cluster, from TF_CONFIG -----------------------------------------------------------------
def read_tf_config(text: str | None = None) -> dict:
  """The parsed TF_CONFIG (default: the environment's); a UserError names what is wrong with it."""
  text = os.environ.get(TF_CONFIG) if text is None else text
  if not text:
    raise UserError("--distribution_strategy=multi_worker needs the TF_CONFIG environment variable on every machine, "
                    "e.g. '{\"cluster\": {\"worker\": [\"host1:12345\", \"host2:12345\"]}, "
                    "\"task\": {\"type\": \"worker\", \"index\": 0}}' (index: this machine's position in the list)")
  try:
    tf_config = json.loads(text)
    task, cluster = tf_config["task"], tf_config["cluster"]
    index = int(task["index"])
    addresses = cluster[task["type"]]
  except (ValueError, KeyError, TypeError) as e:
    raise UserError(f"TF_CONFIG={text!r} is not valid ({type(e).__name__}: {e}): it needs \"cluster\" (task type -> "
                    "list of host:port) and \"task\" ({\"type\": \"worker\", \"index\": i})") from e
  if not 0 <= index < len(addresses):
    raise UserError(f"TF_CONFIG task index {index} is outside the {len(addresses)} {task['type']} addresses of its "
                    "cluster: give each machine its position in the list, counting from 0")
  return tf_config


def is_chief_task(tf_config: dict) -> bool:
  """The task that writes the run directory: the 'chief' task, or worker 0 when there is none."""
  task_type, index = tf_config["task"]["type"], int(tf_config["task"]["index"])
  return task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in tf_config["cluster"])


def writes_run_dir(distribution_strategy: str) -> bool:
  """False only for the non-chief workers of a multi-worker run."""
  return distribution_strategy != MULTI_WORKER or is_chief_task(read_tf_config())


@contextlib.contextmanager
def worker_run_config(config) -> Iterator:
  """The config this process runs: unchanged on the chief, a temporary copy of the run elsewhere.

  A non-chief worker copies the chief's checkpoints (when its run directory is visible, e.g. on a
  shared filesystem) so that every worker resumes from the same step, and deletes its copy at the end.
  """
  if writes_run_dir(config.distribution_strategy):
    yield config
    return
  task = read_tf_config()["task"]
  scratch = tempfile.mkdtemp(prefix=f"ieg_{task['type']}{task['index']}_")
  copy = dataclasses.replace(config, checkpoint_path=scratch)
  try:
    os.makedirs(copy.run_dir)
    for name in _RESUME_FILES:
      source = os.path.join(config.run_dir, name)
      if os.path.isdir(source):
        shutil.copytree(source, os.path.join(copy.run_dir, name), ignore=shutil.ignore_patterns("*_temp"))
      elif os.path.isfile(source):
        shutil.copy2(source, os.path.join(copy.run_dir, name))
    yield copy
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


# ----- the strategy in use -------------------------------------------------------------------------
def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
  """True when the replicas span several processes (the case Keras reduces with collectives)."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return False
  return bool(strategy.extended._in_multi_worker_mode())  # pylint: disable=protected-access


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True for the process that writes the run directory (always, outside multi-worker runs)."""
  if not is_multi_worker(strategy):
    return True
  resolver = strategy.cluster_resolver
  tf_config = {"task": {"type": resolver.task_type, "index": resolver.task_id},
               "cluster": resolver.cluster_spec().as_dict()}
  return is_chief_task(tf_config)


def distribute_train_dataset(strategy: tf.distribute.Strategy, make_dataset: Callable[[], tf.data.Dataset]):
  """The training input for `model.fit`.

  One process: the global-batch dataset as is (Keras splits each batch across the local replicas).
  Several workers: a distributed dataset in which every worker slices its replicas' rows out of
  the same global batch, instead of tf.data auto-sharding handing each worker whole batches.
  """
  if not is_multi_worker(strategy):
    return make_dataset()

  def worker_dataset(context: tf.distribute.InputContext) -> tf.data.Dataset:
    local = context.num_replicas_in_sync // context.num_input_pipelines
    dataset = pipeline.replica_slices(make_dataset(), num_replicas=context.num_replicas_in_sync,
                                      first_replica=context.input_pipeline_id * local, local_replicas=local)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options).prefetch(pipeline.AUTOTUNE)

  return strategy.distribute_datasets_from_function(worker_dataset)


def prepare_model(model, strategy: tf.distribute.Strategy) -> None:
  """Lets Keras 3 `fit`/`evaluate` run a method under a multi-worker strategy (no-op otherwise).

  Two gaps of Keras 3.x with MultiWorkerMirroredStrategy (keras-team/keras issues 20329, 20585):
  its multi-worker reduction of the step results is `strategy.reduce(MEAN, v, axis=0)`, which fails
  on scalars, so each result is returned as a 1-element vector (the reduction then yields the
  scalar mean over replicas, as the one-process path does); and its first-batch build reduces the
  whole batch dict, which a collective cannot, while it only needs the shapes of one replica's slice.
  """
  if not is_multi_worker(strategy):
    return
  train_step, test_step = model.train_step, model.test_step
  model.train_step = lambda data: _as_vectors(train_step(data))
  model.test_step = lambda data: _as_vectors(test_step(data))
  symbolic_build = model._maybe_symbolic_build  # pylint: disable=protected-access

  def build_from_local_slice(iterator=None, data_batch=None):
    if iterator is not None and data_batch is None:
      for _, _, batches in iterator:
        data_batch = tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], next(batches))
        break
    return symbolic_build(data_batch=data_batch)

  model._maybe_symbolic_build = build_from_local_slice  # pylint: disable=protected-access


def _as_vectors(logs: dict) -> dict:
  return {name: tf.reshape(value, [1]) for name, value in logs.items()}


def check_workers_agree_on_step(strategy: tf.distribute.Strategy, step: int) -> None:
  """Every worker must resume from the same step, or the collectives of the first step never match."""
  if not is_multi_worker(strategy):
    return
  steps = strategy.gather(strategy.run(lambda: tf.constant([step], tf.int64)), axis=0).numpy()
  largest, smallest = int(steps.max()), int(steps.min())
  if largest != smallest:
    raise UserError(f"the workers restored different checkpoints (steps {smallest} to {largest}): put "
                    "--checkpoint_path on a filesystem every worker can read, so that all resume from the chief's "
                    "checkpoints")
  logging.info("all workers start from step %d", step)
