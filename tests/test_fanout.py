"""scripts/fanout.sh: real tiny runs on the CPU, and its queue against a stand-in interpreter."""
import json
import os
import signal
import statistics
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FANOUT = os.path.join(REPO, "scripts", "fanout.sh")
TINY = ["--network_name=mnist_cnn", "--batch_size=32", "--max_iteration=20", "--eval_freq=10",
        "--probe_dataset_hold_ratio=0", "--lr_schedule=constant", "--learning_rate=0.05",
        "--distribution_strategy=one_device"]

# Stands in for `python -m ieg.main`: records when it ran and on which device, writes the run files a
# real run writes (flags.json, results.json with top1 = seed / 10), honours --sleep / --exit, and
# exits 75 on SIGTERM as an interrupted training does.
STUB = r"""#!/usr/bin/env bash
shift 2
seed=0; dataset=d; method=m; pause=0.3; code=0
for a in "$@"; do
  case "$a" in
    --checkpoint_path=*) ckpt="${a#*=}" ;; --seed=*) seed="${a#*=}" ;; --dataset=*) dataset="${a#*=}" ;;
    --method=*) method="${a#*=}" ;; --sleep=*) pause="${a#*=}" ;; --exit=*) code="${a#*=}" ;;
  esac
done
trap 'echo "term $seed" >> "$EVENTS"; exit 75' TERM
echo "start $seed $(date +%s.%N) [${CUDA_VISIBLE_DEVICES-unset}]" >> "$EVENTS"
sleep "$pause" & wait $!
run="$ckpt/${dataset}_p0.0/net/$method"
mkdir -p "$run"
echo "{\"dataset\": \"$dataset\", \"method\": \"$method\", \"network_name\": \"net\", \"seed\": $seed}" > "$run/flags.json"
echo "{\"step\": 10, \"top1\": 0.$seed, \"top5\": 0.9, \"history\": [{\"step\": 10, \"top1\": 0.$seed}]}" > "$run/results.json"
echo "end $seed $(date +%s.%N) [${CUDA_VISIBLE_DEVICES-unset}]" >> "$EVENTS"
if [ "$code" != 0 ]; then echo "error: exit $code on purpose"; fi
exit "$code"
"""


def fanout(*args, env=None, timeout=300):
  return subprocess.run(["bash", FANOUT, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                        env={**os.environ, **(env or {})})


@pytest.fixture
def stub(tmp_path):
  path = tmp_path / "python_stub"
  path.write_text(STUB)
  path.chmod(0o755)
  events = tmp_path / "events.txt"
  return str(path), events


def read_events(events):
  """{seed: (start, end, device)} from the stub's log."""
  runs = {}
  for line in events.read_text().splitlines():
    kind, seed, *rest = line.split()
    if kind in ("start", "end"):
      start, end, device = runs.get(seed, (None, None, None))
      value = float(rest[0])
      runs[seed] = (value, end, rest[1].strip("[]")) if kind == "start" else (start, value, device)
  return runs


@pytest.mark.slow
def test_two_real_runs_on_the_cpu_one_failing(tmp_path):
  settings = tmp_path / "settings.txt"
  settings.write_text("# one good run, one with a typo in the method name\n"
                      "--dataset=digits_uniform_0.4 --method=supervised --seed=1\n\n"
                      "--dataset=digits_uniform_0.4 --method=supervisd --seed=2   # the typo\n")
  out = tmp_path / "sweep"
  result = fanout(f"--settings={settings}", f"--out={out}", "--gpus=none", f"--python={sys.executable}", "--",
                  *TINY, env={"TF_CPP_MIN_LOG_LEVEL": "3"})
  assert result.returncode == 1, result.stdout + result.stderr
  good, bad = "001_digits_uniform_0.4_supervised_1", "002_digits_uniform_0.4_supervisd_2"
  assert sorted(os.listdir(out / "logs")) == [f"{good}.log", f"{bad}.log"]
  summary = (out / "summary.txt").read_text()
  assert f"{good}" in summary and "1 run(s) failed" in summary
  failure = summary.split("1 run(s) failed:")[1]
  assert bad in failure and "--method=supervisd is not known" in failure and good not in failure
  # The table holds the good run's final accuracy, read from its results.json.
  results = json.load(open(out / "runs" / good / "digits_uniform_0.4_p0.0" / "mnist_cnn" / "supervised" /
                           "results.json"))
  assert results["step"] == 20
  table = (out / "results.md").read_text()
  row = next(line for line in table.splitlines() if line.startswith(f"| {good} "))
  assert f"| {100 * results['top1']:.2f} |" in row and "| ok |" in row
  assert any(line.startswith(f"| {bad} ") and "failed (2)" in line for line in table.splitlines())


def test_the_queue_gives_each_gpu_one_run_at_a_time(tmp_path, stub):
  python, events = stub
  out = tmp_path / "sweep"
  result = fanout("--methods=a", "--seeds=1,2,3,4,5", "--datasets=toy", f"--out={out}", "--gpus=0,1",
                  f"--python={python}", env={"EVENTS": str(events)})
  assert result.returncode == 0, result.stdout + result.stderr
  runs = read_events(events)
  assert sorted(runs) == ["1", "2", "3", "4", "5"]
  assert {device for _, _, device in runs.values()} == {"0", "1"}
  for device in ("0", "1"):  # the runs on one GPU never overlap
    spans = sorted((s, e) for s, e, d in runs.values() if d == device)
    assert all(prev_end <= start for (_, prev_end), (start, _) in zip(spans, spans[1:]))
  assert len(os.listdir(out / "logs")) == 5
  # The seed summary is the mean and sample standard deviation of the five final accuracies.
  table = (out / "results.md").read_text()
  values = [10.0 * s for s in range(1, 6)]
  assert f"| toy | a | net | 5 | {statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} |" in table


def test_gpu_groups_and_runs_without_gpus(tmp_path, stub):
  python, events = stub
  result = fanout("--seeds=1,2", f"--out={tmp_path / 'a'}", "--gpus=0,1,2,3", "--gpus_per_run=2",
                  f"--python={python}", "--", "--sleep=1", env={"EVENTS": str(events)})
  assert result.returncode == 0, result.stderr
  assert {device for _, _, device in read_events(events).values()} == {"0,1", "2,3"}
  events.unlink()
  result = fanout("--seeds=1,2", f"--out={tmp_path / 'b'}", "--gpus=none", f"--python={python}",
                  env={"EVENTS": str(events)})
  assert result.returncode == 0, result.stderr
  runs = read_events(events)
  assert {device for _, _, device in runs.values()} == {""}  # GPUs hidden: TensorFlow uses the CPU
  (s1, e1, _), (s2, e2, _) = sorted(runs.values())
  assert e1 <= s2  # one at a time


def test_each_run_gets_its_own_checkpoint_path_and_bad_arguments_fail(tmp_path):
  result = fanout("--datasets=x,y", "--methods=m", "--seeds=1,2", f"--out={tmp_path}", "--gpus=none", "--dry_run")
  assert result.returncode == 0, result.stderr
  commands = [line for line in result.stdout.splitlines() if "-m ieg.main" in line]
  assert len(commands) == 4
  paths = {c.split("--checkpoint_path=")[1] for c in commands}
  assert len(paths) == 4
  assert "--dataset=y --method=m --seed=2" in commands[-1]
  assert fanout(f"--out={tmp_path}").returncode == 2  # no runs
  bad = fanout("--seeds=1", "--gpus_per_run=0", f"--out={tmp_path}")
  assert bad.returncode == 2 and "--gpus_per_run" in bad.stderr


def test_sigterm_stops_the_running_trainings_and_keeps_the_queue(tmp_path, stub):
  python, events = stub
  out = tmp_path / "sweep"
  process = subprocess.Popen(["bash", FANOUT, "--seeds=1,2,3", f"--out={out}", "--gpus=none", f"--python={python}",
                              "--", "--sleep=60"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "EVENTS": str(events)})
  deadline = time.time() + 30
  while not (events.exists() and "start" in events.read_text()) and time.time() < deadline:
    time.sleep(0.1)
  process.send_signal(signal.SIGTERM)
  stdout, _ = process.communicate(timeout=60)
  assert process.returncode == 130
  assert "term 1" in events.read_text()
  summary = (out / "summary.txt").read_text()
  assert "001_1" in summary and "interrupted" in summary and summary.count("not started") == 2
  assert "failed" not in summary
  del stdout


RECIPES = os.path.join(REPO, "scripts", "reproduce")


def recipe_flags(path):
  """The flags a recipe passes, from its `recipe ... -- "$@"` call (continuation lines joined)."""
  text = open(path).read().replace("\\\n", " ")
  call = next(line for line in text.splitlines() if line.startswith("recipe "))
  return call[len("recipe "):].split(' -- "$@"')[0].split()


def all_recipes():
  return sorted(os.path.join(folder, name) for folder, _, names in os.walk(RECIPES) for name in names
                if name.endswith(".sh") and not name.startswith("_") and name != "list.sh")


def test_every_recipe_names_its_number_and_has_valid_flags():
  from absl import flags as absl_flags  # pylint: disable=g-import-not-at-top
  from ieg import flags as ieg_flags  # pylint: disable=g-import-not-at-top
  ieg_flags.define_flags()
  recipes = all_recipes()
  assert len(recipes) >= 50
  for path in recipes:
    text = open(path).read()
    assert 'PAPER="' in text and 'SOURCE="' in text and "SEEDS_DEFAULT=" in text, path
    absl_flags.FLAGS.unparse_flags()
    absl_flags.FLAGS(["recipe", *recipe_flags(path)])
    try:
      config = ieg_flags.read_config().validate()
    finally:
      absl_flags.FLAGS.unparse_flags()
    folder = os.path.basename(os.path.dirname(path))
    expected = {"ieg": {"ieg"}, "sigua": {"sigua", "supervised"}, "sln": {"sln", "supervised"},
                "absgd": {"absgd", "supervised"}, "prl": {"prl"}}[folder]
    assert config.method in expected, (path, config.method)


def test_a_recipe_runs_its_seeds_through_the_fanout(tmp_path):
  path = os.path.join(RECIPES, "sln", "sln_mo_cifar10_sym40.sh")
  result = subprocess.run(["bash", path, "--max_epoch=1"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DRY_RUN": "1", "SEEDS": "3,4", "OUT": str(tmp_path)})
  assert result.returncode == 0, result.stderr
  assert "the source reports 84.71 ± 0.43" in result.stdout
  commands = [line for line in result.stdout.splitlines() if "-m ieg.main" in line]
  assert len(commands) == 2 and "--seed=3 --preset=sln_cifar10_sym40 --correction=-1" in commands[0]
  assert commands[1].rstrip().endswith(f"--max_epoch=1 --checkpoint_path={tmp_path}/sln_mo_cifar10_sym40/runs/002_4")
