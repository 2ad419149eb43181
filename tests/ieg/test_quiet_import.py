"""TensorFlow's machine-dependent info lines never reach the user's stderr; every other line does."""
import logging
import os
import subprocess
import sys

import pytest

from ieg import quiet_import

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ONEDNN = ("I0000 00:00:1796526655.794617    9172 port.cc:153] oneDNN custom operations are on. You may see "
          "slightly different numerical results due to floating-point round-off errors from different computation "
          "orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.")
CPU_FLAGS = ("I0000 00:00:1.0 1 cpu_feature_guard.cc:210] This TensorFlow binary is optimized to use available CPU "
             "instructions in performance-critical operations.")
CUINIT = "E0000 00:00:1.0 1 cuda_executor.cc:1228] failed call to cuInit: INTERNAL: CUDA error"


@pytest.mark.parametrize("line, has_gpu, expected", [
    (ONEDNN, False, True), (CPU_FLAGS, False, True), (CUINIT, False, True),
    (CUINIT, True, False),  # on a GPU machine a failing driver is a real problem
    ("error: --seed=-1 is out of range", False, False),
    ("W0000 cuda_dnn.cc:1] Could not load cudnn: libcudnn.so.9 not found", True, False),
])
def test_is_banner_drops_only_the_known_info_lines(line, has_gpu, expected):
  assert quiet_import.is_banner(line, has_gpu) is expected


def test_native_stderr_filter_drops_banners_and_keeps_real_lines_in_order():
  program = f"""
import os, sys
from ieg import quiet_import
quiet_import.filter_native_stderr(has_gpu=False)
os.write(2, {ONEDNN!r}.encode() + b"\\n")
os.write(2, b"native line one\\n")
os.write(2, {CPU_FLAGS!r}.encode() + b"\\n" + {CUINIT!r}.encode() + b"\\n")
os.write(2, b"native line two\\n")
subprocess_line = "import os; os.write(2, {ONEDNN!r}.encode() + b'\\\\nchild line\\\\n')"
import subprocess; subprocess.run([sys.executable, "-c", subprocess_line], check=True)
print("python line", file=sys.stderr)
os._exit(3)  # no atexit, no flushing: the filter must still pass everything written before
"""
  result = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=60)
  assert result.returncode == 3
  lines = result.stderr.splitlines()
  assert sorted(lines) == sorted(["native line one", "native line two", "child line", "python line"]), lines
  assert lines.index("native line one") < lines.index("native line two") < lines.index("child line")


def test_a_bad_flag_prints_exactly_the_projects_line():
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell has it
  result = subprocess.run([sys.executable, "-m", "ieg.main", "--method=bogus"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 2
  assert result.stderr.splitlines() == [
      "error: --method=bogus is not known: choose one of absgd, ieg, l2r, prl, sigua, sln, supervised"]


def test_info_lines_of_other_packages_are_dropped_and_the_projects_kept():
  keep = quiet_import._ProjectInfoOnly()  # pylint: disable=protected-access

  def record(level, path):
    return logging.LogRecord("absl", level, path, 1, "message", None, None)

  foreign = "/usr/lib/python3/site-packages/tensorflow/python/checkpoint/functional_saver.py"
  own = os.path.join(REPO, "ieg", "run", "callbacks.py")
  assert not keep.filter(record(logging.INFO, foreign))
  assert keep.filter(record(logging.WARNING, foreign)) and keep.filter(record(logging.ERROR, foreign))
  assert keep.filter(record(logging.INFO, own))
