"""Imports TensorFlow without its start-up banner, keeping any other message it prints.

TensorFlow's C++ layer writes a few informational lines to stderr on import (no CUDA driver on
a CPU machine, CPU instruction sets) that no environment variable silences. They would bury the
one-line error a user gets for a bad flag, so we hold stderr while importing and pass on every
line that is not one of those banners (CUDA library problems on a GPU machine stay visible).
"""
import os
import sys
import tempfile

_BANNERS = (
    "All log messages before absl::InitializeLog() is called",
    "Could not find cuda drivers on your machine",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
)
_NO_GPU = "failed call to cuInit"  # noise on a machine without a GPU; a real problem where GPUs exist


def import_tensorflow() -> None:
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.stderr.flush()
  saved = os.dup(2)
  gpus = []
  with tempfile.TemporaryFile() as held:
    os.dup2(held.fileno(), 2)
    try:
      import keras  # pylint: disable=g-import-not-at-top,unused-import
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      gpus = tf.config.list_physical_devices("GPU")  # device start-up prints here, too
    finally:
      os.dup2(saved, 2)
      os.close(saved)
      held.seek(0)
      for line in held.read().decode("utf-8", "replace").splitlines():
        noise = any(banner in line for banner in _BANNERS) or (not gpus and _NO_GPU in line)
        if line.strip() and not noise:
          print(line, file=sys.stderr)
