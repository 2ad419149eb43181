"""Images/s of the TensorFlow strong views against the per-image Pillow reference.

Both sides see the same real CIFAR-10 images and the same policies: (a) `strong_view`
inside a tf.data pipeline (batch 100, map + prefetch, as training uses it), (b) the
Pillow/numpy reference in tests/datasets/reference_pil_augment.py, one image at a time in this
process, which is how the original runs it. Timings on a shared machine move between
runs, so the two sides alternate and every number is a median over runs. Besides
wall-clock images/s, each run reports images per CPU-second of this process (all its
threads), which other processes on the machine disturb much less.

  python scripts/benchmark_augment.py [--runs 5] [--batches 40] [--faithful_unwrap]
"""
import argparse
import os
import pathlib
import random
import statistics
import sys
import time
from typing import Callable, List, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from datasets.augment import autoaugment, randaugment, strong_view  # pylint: disable=g-import-not-at-top
from tests.datasets import reference_pil_augment  # pylint: disable=g-import-not-at-top

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "cifar10_subset" / "cifar10_subset.npz"
# What a training step consumes, for context: a supervised WRN-28-10 step at batch 100
# runs at roughly 10-20 steps/s on a current GPU; an IEG step (look-ahead, meta-gradient
# and the probe batch) is several times slower.
ASSUMED_STEPS_PER_S = {"supervised WRN-28-10, batch 100": (10, 20),
                       "IEG WRN-28-10, batch 100": (3, 5)}


Rates = Tuple[float, float]  # (images per wall-clock second, images per CPU-second)


def _timed(run: Callable[[], None], num_images: int) -> Rates:
  wall, cpu = time.perf_counter(), time.process_time()
  run()
  return (num_images / (time.perf_counter() - wall),
          num_images / max(time.process_time() - cpu, 1e-9))


def tf_images_per_s(images: np.ndarray, aug_type: str, batch_size: int, batches: int) -> Rates:
  """Throughput of a fresh tf.data pipeline that ends in the strong view."""
  seed = tf.constant(1234, tf.int64)
  dataset = tf.data.Dataset.from_tensor_slices(images).repeat().batch(
      batch_size, drop_remainder=True)
  dataset = tf.data.Dataset.zip((dataset, tf.data.Dataset.counter()))
  dataset = dataset.map(
      lambda batch, step: strong_view.strong_view(batch, tf.stack([seed, step]), aug_type),
      num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
  iterator = iter(dataset)
  for _ in range(5):  # warm-up: tracing, thread pools, autotuning
    next(iterator)

  def run():
    for _ in range(batches):
      next(iterator)
  return _timed(run, batches * batch_size)


def pil_images_per_s(images: np.ndarray, aug_type: str, batch_size: int, batches: int,
                     faithful_unwrap: bool, seed: int) -> Rates:
  """Throughput of the per-image Pillow reference (single process)."""
  py_random, np_random = random.Random(seed), np.random.RandomState(seed)

  def run():
    for index in range(batches):
      batch = images[(index * batch_size) % len(images):][:batch_size]
      if aug_type == "autoaug":
        reference_pil_augment.random_autoaug_batch(
            batch, autoaugment.CIFAR10_POLICY, py_random, np_random, faithful_unwrap)
      else:
        reference_pil_augment.random_randaug_batch(
            batch, randaugment.RANDAUGMENT_OPS, py_random, np_random, faithful_unwrap)
  return _timed(run, batches * batch_size)


def _runs(rates: List[float]) -> str:
  return ", ".join(f"{rate:.0f}" for rate in rates)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", default=str(DEFAULT_DATA), help="cifar10_subset.npz")
  parser.add_argument("--aug_types", default="autoaug,randaug")
  parser.add_argument("--batch_size", type=int, default=100)
  parser.add_argument("--batches", type=int, default=40, help="timed batches per TF run")
  parser.add_argument("--pil_batches", type=int, default=8, help="timed batches per PIL run")
  parser.add_argument("--runs", type=int, default=5)
  parser.add_argument("--faithful_unwrap", action="store_true",
                      help="unwrap with getdata() like the original (slower baseline)")
  args = parser.parse_args()

  images = np.load(args.data)["x_train"]
  print(f"{len(images)} real CIFAR-10 images, batch {args.batch_size}, {args.runs} runs, "
        f"{os.cpu_count()} CPU cores visible, load average {os.getloadavg()[0]:.1f} at start"
        f"{' (Pillow side: getdata unwrap)' if args.faithful_unwrap else ''}")
  for aug_type in args.aug_types.split(","):
    tf_rates, pil_rates = [], []
    for run in range(args.runs):  # alternating, so both sides see the same machine load
      tf_rates.append(tf_images_per_s(images, aug_type, args.batch_size, args.batches))
      pil_rates.append(pil_images_per_s(images, aug_type, args.batch_size, args.pil_batches,
                                        args.faithful_unwrap, seed=run))
    for unit, index in (("images/s", 0), ("images/CPU-s", 1)):
      ours, theirs = [r[index] for r in tf_rates], [r[index] for r in pil_rates]
      ratios = [a / b for a, b in zip(ours, theirs)]
      print(f"{aug_type:8s} {unit:12s} tf.data {statistics.median(ours):7.0f} "
            f"(runs {_runs(ours)}) | Pillow {statistics.median(theirs):6.0f} (runs {_runs(theirs)})"
            f" | ratio {statistics.median(ratios):.1f}x (median of per-run ratios)")
  for step_kind, (low, high) in ASSUMED_STEPS_PER_S.items():
    print(f"consumption (assumed): {step_kind} at {low}-{high} steps/s needs "
          f"{low * args.batch_size}-{high * args.batch_size} strong images/s")


if __name__ == "__main__":
  main()
