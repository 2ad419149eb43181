"""Step time of L2R and IEG relative to a supervised step on the same network and batch.

Times the compiled `train_step` alone (a fixed batch held on the device, no input pipeline) for
supervised, and for L2R and IEG with each meta-gradient implementation. Configurations are run
round-robin, `--repeats` times, and the median of each is reported, so a machine shared with other
work biases every configuration alike. Prints a markdown table with the command line used.

  python scripts/benchmark_meta_step.py --network_name=wrn28-2 --batch_size=32 --repeats=5
"""
import argparse
import os
import platform
import shlex
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import methods  # noqa: E402
import networks  # noqa: E402
from ieg import optimizers  # noqa: E402
from methods.base import TrainingContext  # noqa: E402

# The reference code's cost, from ieg.md section 6.7 / 7, and this project's target with --meta_grad=jvp.
REFERENCE_COST = {"l2r": "~3x", "ieg": "3-4x or more"}
TARGET = {"l2r": 2.5, "ieg": 4.0}


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--network_name", default="wrn28-2")
  parser.add_argument("--batch_size", type=int, default=32, help="examples per step (and probe examples)")
  parser.add_argument("--image_size", type=int, default=32)
  parser.add_argument("--channels", type=int, default=3)
  parser.add_argument("--num_classes", type=int, default=10)
  parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
  parser.add_argument("--repeats", type=int, default=5, help="measurements per configuration (median reported)")
  parser.add_argument("--meta_grads", default="reverse,jvp")
  parser.add_argument("--device", default=None, help="e.g. /gpu:0; default: the first GPU, else the CPU")
  parser.add_argument("--jit_compile", action="store_true", help="compile every step with XLA")
  return parser.parse_args(argv)


def fixed_batch(args) -> dict:
  rng = np.random.default_rng(0)
  shape = (args.batch_size, args.image_size, args.image_size, args.channels)
  image = lambda: tf.constant(rng.uniform(-1, 1, shape).astype(np.float32))  # noqa: E731
  labels = lambda: tf.constant(rng.integers(0, args.num_classes, args.batch_size).astype(np.int32))  # noqa: E731
  return {"image": image(), "image_strong": image(), "label": labels(),
          "index": tf.range(args.batch_size, dtype=tf.int64), "probe_image": image(), "probe_label": labels()}


def build_step(args, method_name: str, meta_grad: str | None):
  """A compiled train step of a fresh model; the first call (tracing) is excluded from the timings."""
  cls = methods.method_class(method_name)
  network = networks.build_network(args.network_name, args.num_classes,
                                   (args.image_size, args.image_size, args.channels))
  context = TrainingContext(num_classes=args.num_classes, steps_per_epoch=1000, num_train_examples=50000,
                            weight_decay=networks.default_weight_decay(args.network_name), use_ema=True)
  config = cls.Config(meta_grad=meta_grad) if meta_grad else cls.Config()
  model = cls(network, context, config)
  model.compile(optimizer=optimizers.TF1Momentum(0.01, 0.9))
  model.optimizer.build(model.network.trainable_variables)
  return tf.function(model.train_step, jit_compile=args.jit_compile)


def time_steps(step, batch, steps: int) -> tuple[float, float]:
  """(wall seconds, process CPU seconds) per step over `steps` calls, synchronised on the last result.

  On a shared CPU the process CPU time is the steadier measure of the work a step does; on a GPU
  only the wall time means anything.
  """
  wall, cpu = time.perf_counter(), time.process_time()
  for _ in range(steps):
    logs = step(batch)
  float(logs["loss"])  # wait for the device
  return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def main(argv=None):
  args = parse_args(argv)
  gpus = tf.config.list_logical_devices("GPU")
  device = args.device or (gpus[0].name if gpus else "/cpu:0")
  configs = [("supervised", None)] + [(m, k) for m in ("l2r", "ieg") for k in args.meta_grads.split(",")]
  timings = {c: [] for c in configs}
  with tf.device(device):
    batch = fixed_batch(args)
    steps = {}
    for config in configs:
      steps[config] = build_step(args, *config)
      time_steps(steps[config], batch, 1)  # trace and warm up
    for _ in range(args.repeats):
      for config in configs:  # round-robin: load changes hit every configuration alike
        timings[config].append(time_steps(steps[config], batch, args.steps))
  medians = {c: [statistics.median(t[i] for t in v) for i in range(2)] for c, v in timings.items()}
  base_wall, base_cpu = medians[configs[0]]
  print(f"Command: `python {' '.join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])}`\n")
  print(f"Device: {device} ({platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs), "
        f"TF {tf.__version__}{', XLA' if args.jit_compile else ''}; median of {args.repeats} runs x {args.steps} steps each, configurations round-robin; "
        f"wall ms shows the median (min-max).\n")
  print("| method | meta_grad | wall ms/step | x supervised (wall) | CPU ms/step | x supervised (CPU) | "
        "reference code | target (jvp) |")
  print("|---|---|---:|---:|---:|---:|---|---|")
  for (method, kind), (wall, cpu) in medians.items():
    walls = [t[0] for t in timings[(method, kind)]]
    target = f"<= {TARGET[method]}x" if method in TARGET else ""
    print(f"| {method} | {kind or '-'} | {1000 * wall:.1f} ({1000 * min(walls):.0f}-{1000 * max(walls):.0f}) | "
          f"{wall / base_wall:.2f} | {1000 * cpu:.1f} | {cpu / base_cpu:.2f} | {REFERENCE_COST.get(method, '1x')} | "
          f"{target} |")


if __name__ == "__main__":
  main()
