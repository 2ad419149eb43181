"""The MNIST accuracy table script reads each run's results.json and says what it shows."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "mnist_methods_table.py")


def write_run(root, noise, method, accuracies):
  run = os.path.join(root, noise, method, "mnist_symmetric_0.5_p0.0", "mnist_cnn", method)
  os.makedirs(run)
  history = [{"step": 234 * (i + 1), "epoch": float(i + 1), "top1": a} for i, a in enumerate(accuracies)]
  with open(os.path.join(run, "results.json"), "w", encoding="utf-8") as f:
    json.dump({**history[-1], "history": history}, f)


def table(root, *args, methods="supervised,sigua"):
  return subprocess.run([sys.executable, SCRIPT, f"--root={root}", "--noises=sym50,sym20", f"--methods={methods}",
                         *args], capture_output=True, text=True, check=True).stdout


def test_final_and_per_epoch_tables(tmp_path):
  write_run(tmp_path, "sym50", "supervised", [0.97, 0.98, 0.95])
  write_run(tmp_path, "sym50", "sigua", [0.96, 0.985, 0.982])
  out = table(tmp_path, "--epochs=3")
  assert "| sym50 | 95.00 | 98.20 | 94.30 / 98.38 |" in out
  assert "| sym20 | — | — | 98.30 / 98.86 |" in out
  assert "| 2 | 98.00 | 98.50 |" in out
  # Epoch 1: supervised ahead; epochs 2 and 3: behind.
  assert "supervised is behind sigua in 2 of 3 epochs." in out
  assert "sigua after epoch 3: 98.20%, which meets the target of 98.1%." in out


def test_the_baseline_is_compared_with_every_method(tmp_path):
  write_run(tmp_path, "sym50", "supervised", [0.97, 0.98, 0.95])
  write_run(tmp_path, "sym50", "sln", [0.50, 0.90, 0.96])
  write_run(tmp_path, "sym50", "absgd", [0.975, 0.979])  # stopped after two epochs
  out = table(tmp_path, "--epochs=3", methods="supervised,sigua,sln,absgd")
  assert "| sym50 | 95.00 | — | 96.00 | 97.90 (epoch 2 of 3) | 94.30 / 98.38 |" in out
  assert "| 1 | 97.00 | — | 50.00 | 97.50 |" in out
  assert "supervised is behind sln in 1 of 3 epochs." in out
  assert "supervised is behind absgd in 1 of 2 epochs." in out
  assert "behind sigua" not in out and "target" not in out  # no SIGUA run: no SIGUA verdict


def test_an_unfinished_run_is_marked(tmp_path):
  write_run(tmp_path, "sym50", "sigua", [0.96, 0.97])
  out = table(tmp_path, "--epochs=30")
  assert "| sym50 | — | 97.00 (epoch 2 of 30) |" in out
  assert "which misses the target of 98.1%" in out


def test_the_benchmark_script_uses_each_method_preset(tmp_path):
  env = {**os.environ, "DRY_RUN": "1", "OUT": str(tmp_path), "NOISES": "pair45",
         "METHODS": "supervised sigua sln absgd prl"}
  out = subprocess.run(["bash", os.path.join(REPO, "scripts", "benchmark_mnist_methods.sh")], env=env,
                       capture_output=True, text=True, check=True).stdout
  for method in ("sigua", "sln", "absgd", "prl"):
    assert f"== pair45 {method}: --preset={method}_mnist_pair45" in out
  assert "== pair45 supervised: --network_name=mnist_cnn --optimizer=adam" in out
  assert "--dataset=mnist_pairflip_0.45 --max_epoch=30" in out
