r"""IEG and L2R against supervised on MNIST with 10 clean probe images per class, at the defaults.

  python scripts/meta_methods_table.py --data_dir=../shared/data --root=/tmp/meta_table

Runs `python -m ieg.main` for every noise rate and method with only the flags a user gives (the
network's and the framework's defaults fill in the rest), then prints a markdown table of the test
top-1 after `--max_iteration` steps and the wall time of each run. A rerun reuses finished runs.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("supervised", "l2r", "ieg")
PROBE_RATIO = 0.0016667  # 100 of MNIST's 60,000 training images: 10 per class


def run_flags(noise: float, method: str, args) -> list[str]:
  return [f"--dataset=mnist_uniform_{noise:g}", f"--method={method}", "--network_name=mnist_cnn", "--batch_size=64",
          f"--probe_dataset_hold_ratio={PROBE_RATIO}", "--aug_type=none", f"--max_iteration={args.max_iteration}",
          f"--seed={args.seed}", f"--data_dir={args.data_dir}",
          f"--checkpoint_path={os.path.join(args.root, f'seed{args.seed}')}"]


def final_top1(root: str, noise: float, method: str, seed: int) -> float | None:
  pattern = os.path.join(root, f"seed{seed}", f"mnist_uniform_{noise:g}_p*", "mnist_cnn", method, "results.json")
  paths = glob.glob(pattern)
  if not paths:
    return None
  with open(paths[0], encoding="utf-8") as f:
    return json.load(f).get("top1")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data_dir", default=os.path.join(REPO, "..", "shared", "data"))
  parser.add_argument("--root", default="/tmp/meta_table")
  parser.add_argument("--noises", default="0.8,0.4")
  parser.add_argument("--max_iteration", type=int, default=400)
  parser.add_argument("--seed", type=int, default=12345)
  args = parser.parse_args()
  noises = [float(n) for n in args.noises.split(",")]
  rows, seconds = {}, {}
  for noise in noises:
    for method in METHODS:
      start = time.time()
      result = subprocess.run([sys.executable, "-m", "ieg.main", *run_flags(noise, method, args)], cwd=REPO,
                              capture_output=True, text=True, check=False)
      seconds[noise, method] = time.time() - start
      if result.returncode != 0:
        sys.exit(f"{method} at uniform {noise:g} failed (exit {result.returncode}): {result.stderr.strip()[-500:]}")
      rows[noise, method] = final_top1(args.root, noise, method, args.seed)
      print(f"uniform {noise:g} {method}: top-1 {rows[noise, method]:.4f} ({seconds[noise, method]:.0f} s)",
            file=sys.stderr, flush=True)
  print(f"MNIST uniform noise, mnist_cnn, batch 64, 10 probe images per class, {args.max_iteration} steps, "
        f"seed {args.seed}: test top-1 (%) and wall time of the run\n")
  print("| noise | " + " | ".join(METHODS) + " |")
  print("|---|" + "---|" * len(METHODS))
  for noise in noises:
    cells = [f"{100 * rows[noise, m]:.2f} ({seconds[noise, m]:.0f} s)" for m in METHODS]
    print(f"| uniform {noise:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main()
