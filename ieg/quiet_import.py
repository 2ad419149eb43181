"""Keeps TensorFlow's CPU- and machine-dependent info lines off the user's stderr.

TensorFlow's C++ layer writes informational lines to stderr that no environment variable silences:
at import (no CUDA driver on a CPU machine, CPU instruction sets) and again when the first op runs
(oneDNN's "custom operations are on" on CPUs with AVX-512 VNNI/BF16). They would bury the one-line
error a user gets for a bad flag. `import_tensorflow` holds stderr while importing;
`filter_native_stderr` then routes file descriptor 2 through a small filter process for the rest
of the run. Every other line passes (CUDA library problems on a GPU machine stay visible).
TensorFlow's Python code also logs info lines of its own through absl (checkpoint sharding
timings); `quiet_foreign_info_lines` keeps only the project's info lines, and every warning.
"""
import logging
import os
import subprocess
import sys
import tempfile

BANNERS = (
    "All log messages before absl::InitializeLog() is called",
    "Could not find cuda drivers on your machine",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
    "oneDNN custom operations are on",
)
NO_GPU = "failed call to cuInit"  # noise on a machine without a GPU; a real problem where GPUs exist


def is_banner(line: str, has_gpu: bool = False) -> bool:
  """True for a machine-dependent info line of TensorFlow's start-up, never for a real message."""
  return any(banner in line for banner in BANNERS) or (not has_gpu and NO_GPU in line)


def import_tensorflow() -> bool:
  """Imports TensorFlow and Keras with the banners dropped; returns whether TensorFlow sees a GPU."""
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
      quiet_foreign_info_lines()
    finally:
      os.dup2(saved, 2)
      os.close(saved)
      held.seek(0)
      for line in held.read().decode("utf-8", "replace").splitlines():
        if line.strip() and not is_banner(line, bool(gpus)):
          print(line, file=sys.stderr)
  return bool(gpus)


PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class _ProjectInfoOnly(logging.Filter):
  """Passes every warning and error, and info lines from the project's own files only."""

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno > logging.INFO or os.path.abspath(record.pathname).startswith(PROJECT_ROOT)


def quiet_foreign_info_lines() -> None:
  """TensorFlow logs info lines of its own through absl and its `tensorflow` logger (checkpoint
  sharding timings, for one); they are not the project's, so they stay off stderr."""
  logging.getLogger("tensorflow").setLevel(logging.WARNING)
  absl_logger = logging.getLogger("absl")
  if not any(isinstance(f, _ProjectInfoOnly) for f in absl_logger.filters):
    absl_logger.addFilter(_ProjectInfoOnly())


# Runs in its own process, so that a native crash of the main process loses none of its last lines:
# copies stdin to stderr line by line without the banners, until the main process closes its end.
_FILTER = """
import signal, sys
from ieg.quiet_import import is_banner
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the main
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # process handles it, and this one ends at EOF
has_gpu = sys.argv[1] == "1"
for line in sys.stdin.buffer:
  if not is_banner(line.decode("utf-8", "replace"), has_gpu):
    sys.stderr.buffer.write(line)
    sys.stderr.buffer.flush()
"""


_FILTERS = []


def filter_native_stderr(has_gpu: bool = False) -> None:
  """From now on native writes to fd 2 pass the banner filter; Python's own stderr writes go direct.

  Child processes inherit the filtered fd 2. Call it once, in the program's entry point.
  """
  sys.stderr.flush()
  package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
  child = subprocess.Popen([sys.executable, "-c", _FILTER, "1" if has_gpu else "0"], stdin=subprocess.PIPE,
                           stdout=subprocess.DEVNULL, env=env, close_fds=True)
  original = os.dup(2)
  os.dup2(child.stdin.fileno(), 2)
  child.stdin.close()  # fd 2 now holds the pipe open; the filter ends when this process exits
  _FILTERS.append(child)  # kept referenced: it outlives every object of this process
  sys.stderr = os.fdopen(original, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")
