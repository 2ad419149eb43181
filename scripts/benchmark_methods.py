r"""Training-step cost of every method on one network and batch: a markdown table.

  python scripts/benchmark_methods.py --network_name=resnet29 --batch_size=64 \
      --dataset=cifar10_subset_uniform_0.4 --data_dir=/work/shared/data --output=benchmark.md

For each method (and variant) it measures, in a fresh process per method and device: the time of a
training step (median over repeats of `--steps` steps, after `--warmup` steps that compile it),
training images per second (the batch only; IEG and L2R also read a probe batch of the same size),
the step time relative to supervised training, and peak memory (GPU: TensorFlow's peak allocation;
CPU: the growth of the process's peak resident memory during the steps, plus its total). CPU rows
also give the process CPU time per step, which other jobs on a shared machine disturb much less
than wall time. Every method trains on the same fixed batch made by the training pipeline (strong
views and probe batches included), so the input pipeline is not part of the time. GPU columns
appear when TensorFlow sees a GPU. Methods that are not registered yet are listed as pending.
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
# The methods of the project, with the variants whose cost differs (name: flags).
DEFAULT_METHODS = ("supervised", "ieg", "l2r", "sigua", "sigua:sigua_variant=bc", "sln", "absgd", "prl",
                   "prl:prl_variant=co_prl_l")


# ----- one measurement (runs in its own process) ---------------------------------------------------
def _rss_mb() -> float:
  with open("/proc/self/status", encoding="utf-8") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024.0
  return float("nan")


def _peak_rss_mb() -> float:
  import resource  # pylint: disable=g-import-not-at-top
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(args, method: str, options: dict) -> dict:
  """Builds the run as training does, then times `train_step` on one fixed batch."""
  sys.path.insert(0, str(REPO))
  from ieg import quiet_import  # pylint: disable=g-import-not-at-top
  quiet_import.import_tensorflow()
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from ieg import experiment  # pylint: disable=g-import-not-at-top
  from ieg.config import RunConfig  # pylint: disable=g-import-not-at-top

  config = RunConfig(dataset=args.dataset, method=method, network_name=args.network_name, batch_size=args.batch_size,
                     data_dir=args.data_dir, probe_dataset_hold_ratio=args.probe_dataset_hold_ratio,
                     aug_type=args.aug_type, checkpoint_path="/nonexistent/benchmark", seed=1, max_iteration=10**6,
                     distribution_strategy="one_device", use_ema=args.use_ema, method_options=options)
  run = experiment.build(config)
  batch = next(iter(experiment.train_dataset(run, start_step=0)))
  device = "/gpu:0" if tf.config.list_logical_devices("GPU") else "/cpu:0"
  with tf.device(device):
    batch = {k: tf.identity(v) for k, v in batch.items()}
  strategy = run.strategy

  @tf.function
  def step(data):
    return strategy.run(run.model.train_step, args=(data,))

  def run_steps(count):
    for _ in range(count):
      logs = step(batch)
    return float(tf.nest.flatten(logs)[0].numpy())  # waits for the device

  run_steps(args.warmup)
  gpu = device.startswith("/gpu")
  if gpu:
    tf.config.experimental.reset_memory_stats("GPU:0")
  rss_before = _rss_mb()
  wall, cpu = [], []
  for _ in range(args.repeats):
    started, started_cpu = time.perf_counter(), time.process_time()
    run_steps(args.steps)
    wall.append((time.perf_counter() - started) / args.steps)
    cpu.append((time.process_time() - started_cpu) / args.steps)
  result = {"device": "gpu" if gpu else "cpu", "step_seconds": statistics.median(wall),
            "cpu_seconds_per_step": statistics.median(cpu), "batch": run.global_batch}
  if gpu:
    result["peak_mb"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
  else:
    result["peak_mb"] = _peak_rss_mb()
    result["growth_mb"] = max(_peak_rss_mb() - rss_before, 0.0)
  return result


# ----- the table -----------------------------------------------------------------------------------
def parse_method(spec: str) -> tuple[str, dict]:
  """'prl:prl_variant=co_prl_l,forget_rate=0.3' -> ('prl', {...}) with typed values."""
  name, _, rest = spec.partition(":")
  options = {}
  for item in filter(None, rest.split(",")):
    key, _, value = item.partition("=")
    for cast in (int, float):
      try:
        value = cast(value)
        break
      except ValueError:
        continue
    if value in ("true", "false"):
      value = value == "true"
    options[key] = value
  return name, options


def run_one(args, spec: str, device: str) -> dict:
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  if device == "cpu":
    env["CUDA_VISIBLE_DEVICES"] = ""
  command = [sys.executable, __file__, f"--measure={spec}", *sys.argv[1:]]
  try:
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=args.timeout)
  except subprocess.TimeoutExpired:
    return {"error": f"no result within {args.timeout} s"}
  for line in reversed(done.stdout.splitlines()):
    if line.startswith("RESULT "):
      return json.loads(line[len("RESULT "):])
  lines = [l for l in (done.stderr or done.stdout).strip().splitlines() if l.strip()]
  return {"error": lines[-1][:200] if lines else f"exit status {done.returncode}"}


def registered_methods() -> list[str]:
  sys.path.insert(0, str(REPO))
  import methods  # pylint: disable=g-import-not-at-top
  return methods.method_names()


COLUMNS = {  # device -> column titles; CPU rows compare CPU time, which a busy machine disturbs less than wall time
    "cpu": ("CPU step wall (ms)", "CPU step CPU-time (ms)", "CPU images/s", "CPU x supervised (CPU-time)",
            "CPU peak RSS MB (growth)"),
    "gpu": ("GPU step (ms)", "GPU images/s", "GPU x supervised", "GPU peak MB"),
}


def _cells(result: dict, base: dict, device: str) -> list[str]:
  if "error" in result:
    return [result["error"]] + [""] * (len(COLUMNS[device]) - 1)
  images_per_second = f"{result['batch'] / result['step_seconds']:.0f}"
  if device == "gpu":
    ratio = result["step_seconds"] / base["step_seconds"] if "step_seconds" in base else float("nan")
    return [f"{1000 * result['step_seconds']:.1f}", images_per_second, f"{ratio:.2f}", f"{result['peak_mb']:.0f}"]
  ratio = (result["cpu_seconds_per_step"] / base["cpu_seconds_per_step"] if "cpu_seconds_per_step" in base
           else float("nan"))
  return [f"{1000 * result['step_seconds']:.0f}", f"{1000 * result['cpu_seconds_per_step']:.0f}", images_per_second,
          f"{ratio:.2f}", f"{result['peak_mb']:.0f} ({result['growth_mb']:.0f})"]


def table(args, rows: dict, devices: list[str]) -> str:
  titles = [t for d in devices for t in COLUMNS[d]]
  lines = [f"Network {args.network_name}, batch {args.batch_size}, data {args.dataset}; median of {args.repeats} x "
           f"{args.steps} steps after {args.warmup} warm-up steps; one fixed batch (input pipeline not timed).", "",
           "| method | " + " | ".join(titles) + " |", "|---|" + "---|" * len(titles)]
  for spec, by_device in rows.items():
    cells = [spec]
    for device in devices:
      result = by_device.get(device, {"error": "pending: method not registered yet"})
      cells += _cells(result, rows.get("supervised", {}).get(device, {}), device)
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--methods", default=";".join(DEFAULT_METHODS),
                      help="';'-separated method specs, e.g. 'supervised;prl:prl_variant=co_prl_l'")
  parser.add_argument("--network_name", default="resnet29")
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--dataset", default="cifar10_subset_uniform_0.4")
  parser.add_argument("--data_dir", default=str(REPO.parent / "shared" / "data"))
  parser.add_argument("--probe_dataset_hold_ratio", type=float, default=0.02)
  parser.add_argument("--aug_type", default="autoaug")
  parser.add_argument("--use_ema", type=lambda s: s.lower() in ("1", "true", "yes"), default=True)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--timeout", type=int, default=1800)
  parser.add_argument("--devices", default="auto", help="cpu, gpu, cpu,gpu or auto (cpu, and gpu when present)")
  parser.add_argument("--output", help="also write the table to this markdown file")
  parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one measurement in this process
  args = parser.parse_args()

  if args.measure:
    name, options = parse_method(args.measure)
    print("RESULT " + json.dumps(measure(args, name, options)), flush=True)
    return 0

  devices = args.devices.split(",") if args.devices != "auto" else ["cpu"]
  if args.devices == "auto":
    probe = subprocess.run([sys.executable, "-c", "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))"],
                           capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if probe.stdout.strip().splitlines() and probe.stdout.strip().splitlines()[-1] not in ("", "0"):
      devices.append("gpu")
  known = set(registered_methods())
  rows: dict[str, dict] = {}
  for spec in filter(None, args.methods.split(";")):
    name, _ = parse_method(spec)
    rows[spec] = {}
    if name not in known:
      continue  # shown as pending
    for device in devices:
      started = time.time()
      rows[spec][device] = run_one(args, spec, device)
      print(f"{spec} on {device}: {rows[spec][device]} ({time.time() - started:.0f} s)", file=sys.stderr, flush=True)
  text = table(args, rows, devices)
  print(text)
  if args.output:
    with open(args.output, "w", encoding="utf-8") as f:
      f.write(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
