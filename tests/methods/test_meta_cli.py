"""IEG and L2R as a user runs them: `python -m ieg.main` on real MNIST with the real mnist_cnn.

Only the flags of the README's meta-method table are given, so the network's and the framework's
defaults are what is tested: at IEG's CIFAR step (learning rate 0.1, momentum 0.9, no clipping)
this network collapsed to a constant prediction (top-1 0.10) under both meta methods.
"""
import glob
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = 300


def run_method(method: str, data_dir, root) -> tuple[dict, dict, str]:
  """(results.json, flags.json, stderr) of a run with the table's flags."""
  flags = ["--dataset=mnist_uniform_0.8", f"--method={method}", "--network_name=mnist_cnn", "--batch_size=64",
           "--probe_dataset_hold_ratio=0.0016667", "--aug_type=none", f"--max_iteration={STEPS}",
           f"--data_dir={data_dir}", f"--checkpoint_path={root}"]
  env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
  result = subprocess.run([sys.executable, "-m", "ieg.main", *flags], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  run_dir, = glob.glob(os.path.join(str(root), "mnist_uniform_0.8_p*", "mnist_cnn", method))
  with open(os.path.join(run_dir, "results.json"), encoding="utf-8") as f:
    results = json.load(f)
  with open(os.path.join(run_dir, "flags.json"), encoding="utf-8") as f:
    saved_flags = json.load(f)
  return results, saved_flags, result.stderr


@pytest.fixture(scope="module")
def meta_runs(real_data_dir, tmp_path_factory):
  root = tmp_path_factory.mktemp("meta_cli")
  return {method: run_method(method, real_data_dir, root) for method in ("supervised", "l2r", "ieg")}


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("method", ["l2r", "ieg"])
def test_meta_methods_learn_at_their_defaults(meta_runs, method):
  results, saved_flags, stderr = meta_runs[method]
  supervised = meta_runs["supervised"][0]["top1"]
  print(f"{method} top-1 {results['top1']:.4f}, supervised {supervised:.4f} after {STEPS} steps")
  assert results["top1"] > 0.6, results["top1"]  # chance is 0.1; the collapse sat at 0.098-0.101
  assert results["top1"] > supervised + 0.02, (results["top1"], supervised)
  assert "collapsed" not in stderr


@pytest.mark.slow
@pytest.mark.realdata
def test_network_defaults_are_resolved_once_and_saved(meta_runs):
  _, saved_flags, _ = meta_runs["ieg"]
  assert saved_flags["grad_clip_norm"] == 1.0
  assert saved_flags["method_options"]["ce_factor"] == 1.0
  assert saved_flags["defaults_from"]["grad_clip_norm"] == "network mnist_cnn"
  assert "learning_rate" not in saved_flags["defaults_from"]  # the framework's default: not the network's
