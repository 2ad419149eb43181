r"""Test accuracy and speed of one training protocol under each --precision, side by side.

  python scripts/compare_precisions.py --data_dir=../shared/data
  python scripts/compare_precisions.py --data_dir=../shared/data --epochs=5 --precisions=float32,mixed_float16

Each precision trains `python -m ieg.main` on the seed's MNIST protocol (mnist_symmetric_0.2,
mnist_cnn, batch 256, Adam 1e-3, clip 5, no augmentation, seed 1), one run after the other, with one
evaluation per pass over the training set. The table gives the test top-1 after each epoch, the
standard error of the last one (10,000 test images) and the median training images/s of the run's
log (first period dropped).
"""
import argparse
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS_PER_EPOCH = 60000 // 256
PROTOCOL = ["--dataset=mnist_symmetric_0.2", "--method=supervised", "--network_name=mnist_cnn",
            "--optimizer=adam", "--learning_rate=0.001", "--lr_schedule=constant", "--batch_size=256",
            f"--eval_freq={STEPS_PER_EPOCH}", "--use_ema=false", "--weight_decay=0", "--grad_clip_norm=5",
            "--probe_dataset_hold_ratio=0", "--aug_type=none", "--seed=1"]


def train(data_dir: str, precision: str, epochs: int, root: str) -> list[dict]:
  run_root = os.path.join(root, precision)
  command = [sys.executable, "-m", "ieg.main", *PROTOCOL, f"--data_dir={data_dir}", f"--precision={precision}",
             f"--max_epoch={epochs}", f"--checkpoint_path={run_root}"]
  done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
  if done.returncode:
    raise SystemExit(f"--precision={precision} failed: {done.stderr.strip().splitlines()[-1]}")
  log, = pathlib.Path(run_root).rglob("log.jsonl")
  return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data_dir", required=True, help="folder with mnist/ (the shared data)")
  parser.add_argument("--precisions", default="float32,mixed_bfloat16")
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--output", help="also write the markdown table here")
  args = parser.parse_args()
  data_dir = os.path.abspath(args.data_dir)
  lines = ["| precision | " + " | ".join(f"top-1 after epoch {e + 1}" for e in range(args.epochs))
           + " | standard error (last) | training images/s |",
           "|---|" + "---|" * (args.epochs + 2)]
  with tempfile.TemporaryDirectory() as root:
    for precision in args.precisions.split(","):
      log = train(data_dir, precision, args.epochs, root)
      top1 = [100 * r["top1"] for r in log]
      error = 100 * math.sqrt(log[-1]["top1"] * (1 - log[-1]["top1"]) / 10000)
      rates = [r["train_images_per_second"] for r in log[1:]] or [log[0]["train_images_per_second"]]
      lines.append(f"| {precision} | " + " | ".join(f"{t:.2f}" for t in top1)
                   + f" | {error:.2f} | {statistics.median(rates):.0f} |")
      print(lines[-1], file=sys.stderr, flush=True)
  table = "\n".join(lines)
  print(table)
  if args.output:
    pathlib.Path(args.output).write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
  main()
