"""The tf.distribute strategy named by --distribution_strategy."""
import tensorflow as tf


def _mirrored():
  # All visible GPUs (select them with CUDA_VISIBLE_DEVICES); the CPU when there is none.
  return tf.distribute.MirroredStrategy()


def _one_device():
  gpus = tf.config.list_logical_devices("GPU")
  return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def _multi_worker():
  # Reads the cluster from the standard TF_CONFIG environment variable.
  return tf.distribute.MultiWorkerMirroredStrategy()


STRATEGIES = {"mirrored": _mirrored, "one_device": _one_device, "multi_worker": _multi_worker}


def make_strategy(name: str) -> tf.distribute.Strategy:
  return STRATEGIES[name]()
