r"""Training throughput of the project's runs against a plain `keras.Model.fit` of the same network.

  python scripts/benchmark_throughput.py --data_dir=../shared/data
  python scripts/benchmark_throughput.py --data_dir=../shared/data --methods=supervised,ieg,l2r,sigua,sln,absgd,prl \
      --precisions=float32,mixed_bfloat16,mixed_float16 --jit --repeats=3

The protocol is the MNIST one of SIGUA's code: mnist_cnn, batch 256, Adam 1e-3, gradient clipping
at 5, no augmentation, on mnist_symmetric_0.2 (IEG and L2R also hold out 10 probe images per class).
Each cell trains in a fresh process:
- project: `ieg.experiment.run` as `python -m ieg.main` runs it (every callback, guard, evaluation and
  checkpoint), `--periods` evaluation periods of `--period_steps` steps; the images/s of each period
  come from the run's own log.jsonl (`train_images_per_second`, evaluation excluded);
- plain fit: `build_network("mnist_cnn", 10, (28, 28, 1))` compiled with the same optimizer and
  clipping, a sparse cross-entropy and an accuracy metric, fitted on a cached, shuffled, prefetched
  tf.data pipeline of the same images, under the same precision, timed by the same meter.
The first period (tracing, warm-up) is dropped; a cell's figure is the median over the other periods
and the repeats. Cells of a repeat run one after the other, so the ratio to the plain fit of the same
repeat holds on a shared, noisy machine where absolute numbers drift. Peak memory is the process's
peak resident set.
"""
import argparse
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
DATASET = "mnist_symmetric_0.2"
BATCH = 256
PROTOCOL = dict(network_name="mnist_cnn", batch_size=BATCH, optimizer="adam", learning_rate=1e-3,
                lr_schedule="constant", grad_clip_norm=5.0, aug_type="none", use_ema=False, weight_decay=0.0,
                probe_dataset_hold_ratio=0.0)
PROBE_RATIO = 10 / 60000 * 10  # 10 clean images per class of MNIST's 60,000
PLAIN = "plain_fit"


def _peak_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cell_project(args, method: str, precision: str, jit: bool) -> list[float]:
  from ieg import experiment  # pylint: disable=g-import-not-at-top
  from ieg.config import RunConfig  # pylint: disable=g-import-not-at-top
  import methods  # pylint: disable=g-import-not-at-top
  protocol = dict(PROTOCOL)
  if methods.method_class(method).needs_probe:
    protocol["probe_dataset_hold_ratio"] = PROBE_RATIO
  with tempfile.TemporaryDirectory() as root:
    config = RunConfig(dataset=DATASET, method=method, data_dir=args.data_dir, checkpoint_path=root, seed=1,
                       max_iteration=args.periods * args.period_steps, eval_freq=args.period_steps,
                       precision=precision, jit_compile=jit, **protocol)
    experiment.run(config)
    with open(os.path.join(config.run_dir, "log.jsonl"), encoding="utf-8") as f:
      return [json.loads(line)["train_images_per_second"] for line in f]


def cell_plain_fit(args, precision: str, jit: bool) -> list[float]:
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import networks  # pylint: disable=g-import-not-at-top
  from datasets import noisy  # pylint: disable=g-import-not-at-top
  from datasets import spec  # pylint: disable=g-import-not-at-top
  from datasets.pipelines.images import to_unit_range  # pylint: disable=g-import-not-at-top
  from ieg import precision as precision_lib  # pylint: disable=g-import-not-at-top
  from ieg.run.callbacks import TrainingThroughput  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(1)
  precision_lib.apply_policy(precision)
  data = noisy.build_noisy_dataset(spec.parse_dataset_spec(DATASET), data_dir=args.data_dir, probe_ratio=0.0, seed=1)
  images = to_unit_range(tf.constant(data.x_train)).numpy()
  dataset = (tf.data.Dataset.from_tensor_slices((images, data.y_train.astype("int32"))).cache()
             .shuffle(len(images), seed=1).repeat().batch(BATCH, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
  model = networks.build_network("mnist_cnn", data.num_classes, data.image_shape)
  model.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-8, global_clipnorm=5.0),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
                jit_compile=jit)
  history = model.fit(dataset, epochs=args.periods, steps_per_epoch=args.period_steps, verbose=0,
                      callbacks=[TrainingThroughput(BATCH)])
  return history.history["images_per_second"]


def run_cell(args, kind: str, precision: str, jit: bool) -> dict:
  """One cell in a fresh process (a clean dtype policy and memory peak): its images/s by period."""
  command = [sys.executable, __file__, f"--data_dir={args.data_dir}", f"--periods={args.periods}",
             f"--period_steps={args.period_steps}", f"--cell={kind}:{precision}:{int(jit)}"]
  env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
  done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
  if done.returncode != 0:
    return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
  return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_name() -> str:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def cpu_units() -> str:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      flags = set(f.read().split())
  except OSError:
    return "?"
  return ", ".join(u for u in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_fp16") if u in flags) or "none"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--data_dir", required=True, help="folder with mnist/ (the shared data)")
  parser.add_argument("--methods", default="supervised")
  parser.add_argument("--precisions", default="float32,mixed_bfloat16")
  parser.add_argument("--jit", action="store_true", help="also time supervised and the plain fit with XLA")
  parser.add_argument("--periods", type=int, default=4)
  parser.add_argument("--period_steps", type=int, default=60)
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--output", help="also write the markdown table here")
  parser.add_argument("--cell", help=argparse.SUPPRESS)
  args = parser.parse_args()
  args.data_dir = os.path.abspath(args.data_dir)

  if args.cell:  # a child process: one measurement
    sys.path.insert(0, str(REPO))
    from ieg import quiet_import  # pylint: disable=g-import-not-at-top
    quiet_import.import_tensorflow()
    kind, precision, jit = args.cell.split(":")
    jit = bool(int(jit))
    rates = (cell_plain_fit(args, precision, jit) if kind == PLAIN else cell_project(args, kind, precision, jit))
    print(json.dumps({"rates": rates[1:], "peak_mb": _peak_mb()}))
    return

  cells = [(PLAIN, p, False) for p in args.precisions.split(",")]
  cells += [(m, p, False) for p in args.precisions.split(",") for m in args.methods.split(",")]
  if args.jit:
    cells += [(PLAIN, "float32", True), ("supervised", "float32", True)]
  rates = {c: [] for c in cells}
  ratios = {c: [] for c in cells}
  peaks = {c: 0.0 for c in cells}
  errors = {}
  for repeat in range(args.repeats):
    plain_now = {}
    for cell in cells:
      result = run_cell(args, *cell)
      if "error" in result:
        errors[cell] = result["error"]
        continue
      median = statistics.median(result["rates"])
      rates[cell].extend(result["rates"])
      peaks[cell] = max(peaks[cell], result["peak_mb"])
      if cell[0] == PLAIN:
        plain_now[cell[1:]] = median
      elif cell[1:] in plain_now:
        ratios[cell].append(median / plain_now[cell[1:]])
      print(f"repeat {repeat + 1}: {cell[0]} {cell[1]}{' xla' if cell[2] else ''}: {median:.0f} images/s",
            file=sys.stderr, flush=True)

  lines = [f"CPU: {cpu_name()} ({os.cpu_count()} cores; units: {cpu_units()}); {DATASET}, mnist_cnn, batch {BATCH}, "
           f"Adam, clip 5; {args.repeats} repeats x {args.periods - 1} periods of {args.period_steps} steps", "",
           "| run | precision | XLA | training images/s | x plain fit (same precision, same repeat) | peak MB |",
           "|---|---|---|---|---|---|"]
  for cell in cells:
    name = "plain `keras.Model.fit`" if cell[0] == PLAIN else f"`--method={cell[0]}`"
    if cell in errors:
      lines.append(f"| {name} | {cell[1]} | {'yes' if cell[2] else 'no'} | failed: {errors[cell]} | | |")
      continue
    ratio = f"{statistics.median(ratios[cell]):.2f}" if ratios[cell] else ("1" if cell[0] == PLAIN else "")
    lines.append(f"| {name} | {cell[1]} | {'yes' if cell[2] else 'no'} | {statistics.median(rates[cell]):.0f} | "
                 f"{ratio} | {peaks[cell]:.0f} |")
  table = "\n".join(lines)
  print(table)
  if args.output:
    pathlib.Path(args.output).write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
  main()
