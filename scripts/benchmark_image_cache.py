r"""A folder of images trained from memory and from its decoded file on disk, side by side.

Builds <out>/folder/train/<class>/*.png from the first --train_images shipped Fashion-MNIST training
images (and test/ from --test_images test images), then runs, in fresh processes, one after the other,

  python -m ieg.main --dataset=folder_symmetric_0.2 --dataset_dir=<out>/folder --image_size=N \
      --image_cache=memory|disk --method=supervised --network_name=mnist_cnn ...

the disk run twice: the first decodes into <out>/runs_disk/image_cache, the second reads the file it
left. Reported per run: wall time of the command, training images/s (median of the run's log.jsonl
periods after the first), the final test accuracy and the process's peak resident memory.

  python scripts/benchmark_image_cache.py --out=/tmp/image_cache_bench
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "fashion_mnist")
# Runs a command and prints its peak resident memory (MB) on the last line.
PEAK = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024); sys.exit(code)")


def build_folder(out: str, train_images: int, test_images: int) -> str:
  sys.path.insert(0, ROOT)
  from ieg import quiet_import  # pylint: disable=g-import-not-at-top
  quiet_import.import_tensorflow()
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from datasets.sources import archives  # pylint: disable=g-import-not-at-top
  folder = os.path.join(out, "folder")
  if os.path.isdir(folder):
    return folder
  x, y, x_test, y_test = archives.read_mnist_idx(DATA, "fashion_mnist")
  for split, images, labels, count in (("train", x, y, train_images), ("test", x_test, y_test, test_images)):
    for row in range(count):
      path = os.path.join(folder + ".partial", split, f"class_{int(labels[row])}", f"{row}.png")
      os.makedirs(os.path.dirname(path), exist_ok=True)
      tf.io.write_file(path, tf.io.encode_png(images[row][..., None]))
  os.replace(folder + ".partial", folder)
  return folder


def run(out: str, folder: str, cache: str, runs: str, args) -> dict:
  command = [sys.executable, "-m", "ieg.main", "--dataset=folder_symmetric_0.2", f"--dataset_dir={folder}",
             f"--image_size={args.image_size}", f"--image_cache={cache}", "--method=supervised",
             "--network_name=mnist_cnn", "--optimizer=adam", "--learning_rate=0.001", "--lr_schedule=constant",
             "--batch_size=256", "--grad_clip_norm=5", "--use_ema=false", "--weight_decay=0", "--aug_type=none",
             "--probe_dataset_hold_ratio=0", f"--max_iteration={args.periods * args.period_steps}",
             f"--eval_freq={args.period_steps}", "--seed=1", f"--checkpoint_path={os.path.join(out, runs)}"]
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  started = time.time()
  done = subprocess.run([sys.executable, "-c", PEAK, *command], cwd=ROOT, env=env, check=True,
                        capture_output=True, text=True)
  wall = time.time() - started
  logs = [os.path.join(d, "log.jsonl") for d, _, files in os.walk(os.path.join(out, runs)) if "log.jsonl" in files]
  with open(logs[0], encoding="utf-8") as f:
    periods = [json.loads(line) for line in f]
  return {"wall_s": wall, "images_per_s": statistics.median(p["train_images_per_second"] for p in periods[1:]),
          "top1": periods[-1]["top1"],
          "peak_mb": float(done.stdout.strip().splitlines()[-1])}


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", default="/tmp/image_cache_bench")
  parser.add_argument("--train_images", type=int, default=20000)
  parser.add_argument("--test_images", type=int, default=2000)
  parser.add_argument("--image_size", type=int, default=64)
  parser.add_argument("--periods", type=int, default=3)
  parser.add_argument("--period_steps", type=int, default=40)
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  folder = build_folder(args.out, args.train_images, args.test_images)
  for runs in ("runs_memory", "runs_disk", "runs_disk_again"):
    shutil.rmtree(os.path.join(args.out, runs), ignore_errors=True)
  results = [("memory", run(args.out, folder, "memory", "runs_memory", args))]
  results.append(("disk, decoded in this run", run(args.out, folder, "disk", "runs_disk", args)))
  # The second disk run reads the file the first left (the cache folder is shared through the flag).
  shutil.copytree(os.path.join(args.out, "runs_disk", "image_cache"), os.path.join(args.out, "runs_disk_again", "image_cache"))
  results.append(("disk, file from an earlier run", run(args.out, folder, "disk", "runs_disk_again", args)))
  decoded = (args.train_images + args.test_images) * args.image_size ** 2
  print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {args.train_images} + "
        f"{args.test_images} Fashion-MNIST PNGs at {args.image_size}x{args.image_size}x1 "
        f"({decoded / 2**20:.0f} MiB decoded); supervised mnist_cnn, batch 256, "
        f"{args.periods} x {args.period_steps} steps\n")
  rows = ["| --image_cache | wall time of the run (s) | training images/s | x memory | top-1 | peak MB |",
          "|---|---|---|---|---|---|"]
  base = results[0][1]["images_per_s"]
  for name, r in results:
    rows.append(f"| {name} | {r['wall_s']:.0f} | {r['images_per_s']:.0f} | {r['images_per_s'] / base:.2f} | "
                f"{r['top1']:.4f} | {r['peak_mb']:.0f} |")
  print("\n".join(rows))


if __name__ == "__main__":
  main()
