r"""The README's "Your own data" example, end to end: a folder of images with a quarter of its labels wrong.

Builds <out>/fashion/train/<class name>/*.png from the shipped Fashion-MNIST files (first
--per_class images of each class; a --noise share of them filed under another, random class) and
<out>/fashion/test/ from the test images, then runs, as a user would,

  python -m ieg.main --dataset=folder --dataset_dir=<out>/fashion --mode=find_issues --export_dir=<out>/model ...
  python -m ieg.main --dataset=folder --dataset_dir=<out>/fashion --mode=predict --predict_input=<out>/new ...

(<out>/new: the test images, without their class folders), and scores the flagged labels against
the truth it kept aside (<out>/truth.csv): precision, recall, the estimated against the true noise
rate, the accuracy of the predictions, and the wall time of each command.

  python scripts/own_data_example.py --out=/tmp/own_data
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "fashion_mnist")
CLASS_NAMES = ["T-shirt top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
  return np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)]))


def write_png(path: str, image: np.ndarray) -> None:
  sys.path.insert(0, ROOT)
  from ieg import quiet_import  # pylint: disable=g-import-not-at-top
  quiet_import.import_tensorflow()   # without TensorFlow's machine-dependent info lines
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tf.io.write_file(path, tf.io.encode_png(image[..., None]))


def build_folder(out: str, per_class: int, test_per_class: int, noise: float, seed: int) -> str:
  """Writes the folder and truth.csv (path, given label, true label); returns the folder."""
  folder = os.path.join(out, "fashion")
  sys.path.insert(0, ROOT)
  from datasets.sources import archives  # pylint: disable=g-import-not-at-top
  x, y, x_test, y_test = archives.read_mnist_idx(DATA, "fashion_mnist")
  rows = first_per_class(y, per_class)
  rng = np.random.default_rng(seed)
  given = y[rows].astype(np.int64)
  flip = rng.random(len(rows)) < noise
  given[flip] = (given[flip] + rng.integers(1, 10, size=int(flip.sum()))) % 10   # another class, uniformly
  with open(os.path.join(out, "truth.csv"), "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["path", "given_label", "true_label"])
    for row, label in zip(rows, given):
      relative = os.path.join("train", CLASS_NAMES[label], f"{row:05d}.png")
      write_png(os.path.join(folder, relative), x[row])
      writer.writerow([relative, CLASS_NAMES[label], CLASS_NAMES[y[row]]])
  for row in first_per_class(y_test, test_per_class):
    write_png(os.path.join(folder, "test", CLASS_NAMES[y_test[row]], f"{row:05d}.png"), x_test[row])
  with open(os.path.join(out, "new_truth.csv"), "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["path", "true_label"])
    for row in first_per_class(y_test, test_per_class)[::5]:   # "new" images: unlabelled, in one folder
      write_png(os.path.join(out, "new", f"{row:05d}.png"), x_test[row])
      writer.writerow([f"{row:05d}.png", CLASS_NAMES[y_test[row]]])
  return folder


def run(command: list[str]) -> float:
  print("$ python", " ".join(command[1:]), flush=True)
  started = time.time()
  subprocess.run(command, cwd=ROOT, check=True)
  return time.time() - started


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", default="/tmp/own_data")
  parser.add_argument("--per_class", type=int, default=400)
  parser.add_argument("--test_per_class", type=int, default=100)
  parser.add_argument("--noise", type=float, default=0.25)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--max_epoch", type=int, default=8)
  parser.add_argument("--folds", type=int, default=5)
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  folder = build_folder(args.out, args.per_class, args.test_per_class, args.noise, args.seed)
  runs = os.path.join(args.out, "runs")
  common = [sys.executable, "-m", "ieg.main", "--dataset=folder", f"--dataset_dir={folder}", "--method=supervised",
            "--network_name=mnist_cnn", f"--max_epoch={args.max_epoch}", "--batch_size=64",
            "--probe_dataset_hold_ratio=0", f"--checkpoint_path={runs}"]
  search_seconds = run(common + ["--mode=find_issues", f"--cross_val_folds={args.folds}",
                                 f"--export_dir={os.path.join(args.out, 'model')}"])
  predict_seconds = run(common + ["--mode=predict", f"--predict_input={os.path.join(args.out, 'new')}"])
  with open(os.path.join(args.out, "truth.csv"), newline="", encoding="utf-8") as f:
    truth = {row["path"]: row["given_label"] != row["true_label"] for row in csv.DictReader(f)}
  found = [os.path.join(dirpath, "label_issues.csv") for dirpath, _, names in os.walk(runs)
           if "label_issues.csv" in names and dirpath.endswith(os.path.join("find_issues", "detection"))]
  with open(found[0], newline="", encoding="utf-8") as f:
    flagged = {row["path"]: row["is_label_issue"] == "True" for row in csv.DictReader(f)}
  wrong = {os.path.relpath(p, folder) if os.path.isabs(p) else p: v for p, v in flagged.items()}
  hits = sum(wrong[p] and truth[p] for p in truth)
  precision = hits / max(sum(wrong.values()), 1)
  recall = hits / max(sum(truth.values()), 1)
  estimate = json.load(open(os.path.join(os.path.dirname(found[0]), "noise_estimate.json"), encoding="utf-8"))
  predictions = [os.path.join(d, n) for d, _, names in os.walk(runs) for n in names if n == "new.csv"]
  with open(os.path.join(args.out, "new_truth.csv"), newline="", encoding="utf-8") as f:
    new_truth = {row["path"]: row["true_label"] for row in csv.DictReader(f)}
  with open(predictions[0], newline="", encoding="utf-8") as f:
    predicted = {row["path"]: row["predicted_label"] for row in csv.DictReader(f)}
  accuracy = np.mean([predicted[p] == label for p, label in new_truth.items()])
  print(f"images {len(truth)}  wrong labels {sum(truth.values())} ({np.mean(list(truth.values())):.3f}, estimated "
        f"{estimate['estimated_noise_rate']:.3f})  flagged {sum(wrong.values())}  precision {precision:.3f}  "
        f"recall {recall:.3f}  find_issues+export {search_seconds:.0f} s ({args.folds} folds + the all-data model, "
        f"{args.max_epoch} epochs each)  predict {predict_seconds:.0f} s: {len(new_truth)} new images, "
        f"accuracy {accuracy:.3f}")


if __name__ == "__main__":
  main()
