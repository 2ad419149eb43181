"""Shared fixtures: the real-data folder and a quiet, CPU-only TensorFlow."""
import os
import pathlib

# Two logical CPU devices are configured by the replica tests; keep TF quiet and on the CPU.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def shared_data_dir() -> pathlib.Path:
  """The folder with the real datasets: $IEG_SHARED_DATA, else ../shared/data."""
  return pathlib.Path(os.environ.get("IEG_SHARED_DATA", DEFAULT_SHARED_DATA))


@pytest.fixture(scope="session")
def real_data_dir() -> pathlib.Path:
  """Real MNIST / Fashion-MNIST / TREC / CIFAR-10 subset; skips the test when absent."""
  root = shared_data_dir()
  if not (root / "mnist" / "train-images-idx3-ubyte.gz").exists():
    pytest.skip(f"real data not found in {root} (set IEG_SHARED_DATA to the shared/data folder)")
  return root


def _two_logical_cpus() -> None:
  """Replica tests need 2 devices; this must happen before TensorFlow initialises its devices."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  cpu = tf.config.list_physical_devices("CPU")[0]
  try:
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  except RuntimeError:
    pass  # already initialised by an earlier import; replica tests then skip


_two_logical_cpus()


@pytest.fixture(scope="session")
def two_cpus():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  devices = [d.name for d in tf.config.list_logical_devices("CPU")]
  if len(devices) < 2:
    pytest.skip("two logical CPU devices could not be configured")
  return devices[:2]


def _fresh_collective_keys_per_strategy() -> None:
  """Gives every MirroredStrategy of the test session collective keys of its own.

  Each strategy of a process starts at the same group and instance keys, and the runtime remembers
  a collective's shape and type by those keys: a later strategy whose step all-reduces other tensors
  in the same slots fails with "Shape mismatch in the collective instance". TensorFlow's own test
  combinations avoid this the same way.
  """
  import itertools  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  original_init = tf.distribute.MirroredStrategy.__init__
  bases = itertools.count(start=1_000_000, step=10_000)

  def init_with_own_keys(self, *args, **kwargs):
    self._collective_key_base = next(bases)  # pylint: disable=protected-access
    original_init(self, *args, **kwargs)

  tf.distribute.MirroredStrategy.__init__ = init_with_own_keys


_fresh_collective_keys_per_strategy()
