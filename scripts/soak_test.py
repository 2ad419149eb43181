r"""Soak test (not part of CI): many short trainings, each interrupted at random, resumed to the end.

Every training runs `python -m ieg.main` on the offline digits data with --deterministic and is
interrupted one to three times: SIGKILL or SIGTERM, either after a random delay or at an exact
point (a step, the middle of a checkpoint write, an evaluation; see ieg/run/fault_points.py). The same
command is then rerun until it finishes. A training counts as resumed correctly when

  * no finished checkpoint was lost: after each interruption the newest listed checkpoint is at
    least the one listed before, every listed checkpoint is readable, and the rerun says it
    resumed from the newest one;
  * a SIGTERM ended the process with status 75 (or it had already finished);
  * the final checkpoint equals, variable by variable, that of an uninterrupted run of the same
    seed, and results.json holds exactly the evaluations an uninterrupted run makes.

  python scripts/soak_test.py --trainings=15 --workdir=/tmp/ieg_soak
"""
import argparse
import dataclasses
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # this process only reads checkpoints

EXIT_INTERRUPTED = 75
POINTS = ("step", "checkpoint", "evaluation")


@dataclasses.dataclass
class Outcome:
  seed: int
  interruptions: list = dataclasses.field(default_factory=list)
  problems: list[str] = dataclasses.field(default_factory=list)
  seconds: float = 0.0


def command(root: str, seed: int, args) -> list[str]:
  return [sys.executable, "-m", "ieg.main", "--dataset=digits_uniform_0.4", "--method=supervised",
          "--network_name=mnist_cnn", "--batch_size=32", f"--max_iteration={args.max_iteration}",
          f"--eval_freq={args.eval_freq}", "--lr_schedule=constant", "--learning_rate=0.05",
          "--probe_dataset_hold_ratio=0", "--distribution_strategy=one_device", "--deterministic",
          f"--seed={seed}", f"--checkpoint_path={root}"]


def run_dir(root: str) -> str:
  return os.path.join(root, "digits_uniform_0.4_p0.0", "mnist_cnn", "supervised")


def start(root: str, seed: int, args, log: str, pause: str | None = None) -> subprocess.Popen:
  env = {k: v for k, v in os.environ.items() if k != "IEG_TEST_PAUSE_AT"}
  env.update(TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  if pause:
    env["IEG_TEST_PAUSE_AT"] = pause
  with open(log, "w") as out:
    return subprocess.Popen(command(root, seed, args), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_stopped_or_exited(process: subprocess.Popen, timeout: float) -> bool:
  """True when the process stopped at its pause point; False when it exited (returncode then set)."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    pid, status = os.waitpid(process.pid, os.WUNTRACED | os.WNOHANG)
    if pid and os.WIFSTOPPED(status):
      return True
    if pid:
      process.returncode = os.waitstatus_to_exitcode(status)
      return False
    time.sleep(0.05)
  process.kill()
  process.wait()
  return False


def listed_steps(directory: str) -> list[int]:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  state = tf.train.get_checkpoint_state(os.path.join(directory, "checkpoints"))
  return sorted(int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths) if state else []


def tensors(prefix: str) -> dict:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  reader = tf.train.load_checkpoint(prefix)
  return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
          if not n.startswith(("save_counter", "_CHECKPOINTABLE"))}


def readable(prefix: str) -> bool:
  try:
    tensors(prefix)
    return True
  except Exception:  # pylint: disable=broad-except
    return False


def history_steps(directory: str) -> list[int]:
  import json  # pylint: disable=g-import-not-at-top
  with open(os.path.join(directory, "results.json")) as f:
    return [h["step"] for h in json.load(f)["history"]]


def reference(seed: int, args, cache: dict) -> tuple[dict, float]:
  """Final tensors and wall time of an uninterrupted run of `seed` (computed once per seed)."""
  if seed not in cache:
    root = os.path.join(args.workdir, f"reference_{seed}")
    shutil.rmtree(root, ignore_errors=True)
    began = time.time()
    process = start(root, seed, args, os.path.join(args.workdir, f"reference_{seed}.log"))
    if process.wait() != 0:
      raise SystemExit(f"the uninterrupted reference run of seed {seed} failed; see its log in {args.workdir}")
    final = os.path.join(run_dir(root), "checkpoints", f"ckpt-{args.max_iteration}")
    cache[seed] = (tensors(final), time.time() - began)
  return cache[seed]


@dataclasses.dataclass
class Interruption:
  signal_name: str
  where: str             # "step:37", "after 12.3 s", ...
  delivered: bool        # False when the run finished (or exited) first
  exit_status: int | None = None

  def __str__(self):
    done = "" if self.delivered else f" not delivered (exit {self.exit_status})"
    return f"{self.signal_name} {self.where}{done}"


def interrupt(process: subprocess.Popen, pause: str | None, rng: random.Random, duration: float) -> Interruption:
  """Delivers one SIGKILL or SIGTERM: at the pause point, else after a random delay."""
  name = rng.choice(["SIGKILL", "SIGKILL", "SIGTERM"])
  signum = signal.Signals[name]
  if pause:
    if not wait_stopped_or_exited(process, timeout=10 * duration + 60):
      return Interruption(name, f"at {pause}", False, process.returncode)
    os.kill(process.pid, signum)
    if signum == signal.SIGTERM:
      os.kill(process.pid, signal.SIGCONT)  # the pending SIGTERM is handled as the process resumes
    process.wait()
    return Interruption(name, f"at {pause}", True, process.returncode)
  delay = rng.uniform(0.2, 0.9) * duration
  try:
    process.wait(timeout=delay)
    return Interruption(name, f"after {delay:.1f} s", False, process.returncode)
  except subprocess.TimeoutExpired:
    process.send_signal(signum)
    process.wait()
    return Interruption(name, f"after {delay:.1f} s", True, process.returncode)


def random_pause(rng: random.Random, args, newest: int) -> str | None:
  """An exact point after the newest checkpoint, or None (a quarter of the time) for a timed signal."""
  periods = [m * args.eval_freq for m in range(1, args.max_iteration // args.eval_freq + 1)
             if m * args.eval_freq > newest]
  if rng.random() < 0.25 or not periods or newest + 1 >= args.max_iteration:
    return None
  point = rng.choice(POINTS)
  if point == "step":
    return f"step:{rng.randint(newest + 1, args.max_iteration - 1)}"
  return f"{point}:{rng.choice(periods)}"


def soak_one(index: int, rng: random.Random, args, cache: dict) -> Outcome:
  seed = rng.choice(args.seeds)
  outcome = Outcome(seed)
  expected, duration = reference(seed, args, cache)
  began = time.time()
  root = os.path.join(args.workdir, f"training_{index}")
  shutil.rmtree(root, ignore_errors=True)
  directory = run_dir(root)
  newest = 0
  for attempt in range(rng.randint(1, 3)):
    log = os.path.join(args.workdir, f"training_{index}_{attempt}.log")
    pause = random_pause(rng, args, newest)
    happened = interrupt(start(root, seed, args, log, pause), pause, rng, duration)
    outcome.interruptions.append(happened)
    if happened.delivered and happened.signal_name == "SIGTERM" and happened.exit_status not in (EXIT_INTERRUPTED, 0,
                                                                                                 -signal.SIGTERM):
      outcome.problems.append(f"{happened}: exit status {happened.exit_status}, expected {EXIT_INTERRUPTED}")
    listed = listed_steps(directory) if os.path.isdir(directory) else []
    if (max(listed) if listed else 0) < newest:
      outcome.problems.append(f"{happened}: the newest checkpoint went back from {newest} to {listed}")
    unreadable = [s for s in listed if not readable(os.path.join(directory, "checkpoints", f"ckpt-{s}"))]
    if unreadable:
      outcome.problems.append(f"{happened}: listed checkpoints {unreadable} are unreadable")
    with open(log) as f:
      text = f.read()
    resumed = re.findall(r"resumed from step (\d+)", text)
    if newest and (re.search(r"step \d+ of \d+", text) or resumed) and resumed[:1] != [str(newest)]:
      outcome.problems.append(f"attempt {attempt}: resumed from {resumed[:1]}, expected step {newest}")
    newest = max(listed) if listed else 0
    if happened.exit_status == 0:
      break  # the run finished before the signal: nothing left to interrupt
  final = start(root, seed, args, os.path.join(args.workdir, f"training_{index}_final.log"))
  if final.wait() != 0:
    outcome.problems.append(f"the final rerun exited with {final.returncode}")
    return outcome
  got = tensors(os.path.join(directory, "checkpoints", f"ckpt-{args.max_iteration}"))
  import numpy as np  # pylint: disable=g-import-not-at-top
  differing = [n for n in expected if n not in got or not np.array_equal(expected[n], got[n])]
  if differing or set(got) != set(expected):
    outcome.problems.append(f"final weights differ from the uninterrupted run in {len(differing)} variables")
  steps = sorted(set(range(args.eval_freq, args.max_iteration, args.eval_freq)) | {args.max_iteration})
  if history_steps(directory) != steps:
    outcome.problems.append(f"results.json history {history_steps(directory)}, expected {steps}")
  if os.path.exists(os.path.join(directory, "run.lock")):
    outcome.problems.append("run.lock left behind")
  outcome.seconds = time.time() - began
  return outcome


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--trainings", type=int, default=15)
  parser.add_argument("--workdir", default="/tmp/ieg_soak")
  parser.add_argument("--max_iteration", type=int, default=100)
  parser.add_argument("--eval_freq", type=int, default=20)
  parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
  parser.add_argument("--random_seed", type=int, default=0, help="seed of the interruption plan")
  args = parser.parse_args()
  os.makedirs(args.workdir, exist_ok=True)
  rng, cache, outcomes = random.Random(args.random_seed), {}, []
  began = time.time()
  for index in range(args.trainings):
    outcome = soak_one(index, rng, args, cache)
    outcomes.append(outcome)
    verdict = "ok" if not outcome.problems else "FAILED: " + "; ".join(outcome.problems)
    print(f"training {index + 1}/{args.trainings} seed {outcome.seed}: {', '.join(map(str, outcome.interruptions))} "
          f"-> {verdict}",
          flush=True)
  good = sum(not o.problems for o in outcomes)
  delivered = [i for o in outcomes for i in o.interruptions if i.delivered]
  count = lambda name: sum(i.signal_name == name for i in delivered)  # pylint: disable=unnecessary-lambda-assignment
  print(f"\n{good} of {len(outcomes)} trainings resumed correctly after {len(delivered)} interruptions "
        f"({count('SIGKILL')} SIGKILL, {count('SIGTERM')} SIGTERM; {sum(i.where.startswith('at ') for i in delivered)} "
        f"at exact points) in {(time.time() - began) / 60:.1f} min")
  return 0 if good == len(outcomes) else 1


if __name__ == "__main__":
  sys.exit(main())
