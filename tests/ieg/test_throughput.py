"""The throughput meter (training time only, evaluation excluded) and the benchmark script whose
numbers the README quotes."""
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from ieg.run.callbacks import TrainingThroughput

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS, BATCH, STEP_SECONDS, EVAL_SECONDS = 4, 8, 0.1, 3.0


class Clock(keras.callbacks.Callback):
  """A clock that only moves when a training step or an evaluation batch ends, by a known amount."""

  def __init__(self):
    super().__init__()
    self.now = 0.0

  def __call__(self) -> float:
    return self.now

  def on_train_batch_end(self, batch, logs=None):
    self.now += STEP_SECONDS

  def on_test_batch_end(self, batch, logs=None):
    self.now += EVAL_SECONDS


def test_meter_counts_training_steps_and_not_the_evaluation():
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  x, y = np.zeros((STEPS * BATCH, 3), "float32"), np.zeros(STEPS * BATCH, "int32")
  clock = Clock()
  history = model.fit(x, y, batch_size=BATCH, epochs=2, validation_data=(x[:BATCH], y[:BATCH]), verbose=0,
                      callbacks=[TrainingThroughput(BATCH, clock=clock), clock])
  # Every period: its images over its training time alone (with the evaluation it would be
  # 32 / 3.4 = 9.4 images/s).
  assert history.history["images_per_second"] == pytest.approx([STEPS * BATCH / (STEPS * STEP_SECONDS)] * 2)


@pytest.mark.slow
def test_benchmark_script_prints_the_table_with_ratios(real_data_dir, tmp_path):
  output = tmp_path / "throughput.md"
  done = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "benchmark_throughput.py"),
                         f"--data_dir={real_data_dir}", "--periods=2", "--period_steps=3", "--repeats=1",
                         "--precisions=float32", f"--output={output}"],
                        capture_output=True, text=True, cwd=REPO, check=False, timeout=600)
  assert done.returncode == 0, done.stderr[-2000:]
  table = output.read_text(encoding="utf-8")
  rows = {m.group(1): m for m in re.finditer(r"^\| (plain `keras.Model.fit`|`--method=supervised`) \| float32 \| no "
                                             r"\| (\d+) \| ([\d.]+) \| (\d+) \|$", table, re.M)}
  assert set(rows) == {"plain `keras.Model.fit`", "`--method=supervised`"}, table
  plain, supervised = rows["plain `keras.Model.fit`"], rows["`--method=supervised`"]
  assert float(plain.group(3)) == 1
  assert float(supervised.group(3)) == pytest.approx(int(supervised.group(2)) / int(plain.group(2)), abs=0.01)
  assert int(plain.group(4)) > 100 and int(supervised.group(2)) > 0
