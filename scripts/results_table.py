r"""Markdown tables of finished runs, read from each run's results.json and flags.json.

  python scripts/results_table.py --manifest=fanout/manifest.tsv --output=fanout/results.md
  python scripts/results_table.py --runs=/data/sweep/runs          # every run directory below

The first table has one row per run (final test top-1; the test top-1 at the step chosen on the
held-out validation set when the run had `--validation_fraction`; the best test top-1 over the
evaluations, which picks the epoch on the test set and so flatters; top-5, step, exit status); the
second averages the final top-1 over the seeds of each (dataset, method, network) setting.
`--manifest` is the file scripts/fanout.sh writes: name, exit code, seconds, device, checkpoint
path and flags of every run, tab-separated.
"""
import argparse
import glob
import json
import math
import os
import statistics
import sys

RESULTS, FLAGS = "results.json", "flags.json"


def _read_json(path: str) -> dict | None:
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _flag_values(flags_text: str) -> dict[str, str]:
  values = {}
  for token in flags_text.split():
    if token.startswith("--") and "=" in token:
      name, value = token[2:].split("=", 1)
      values[name] = value
  return values


def run_directories(checkpoint_path: str, wanted: dict[str, str] | None = None) -> list[str]:
  """Run directories (holding flags.json) under a checkpoint path, matching the flags given on the command line."""
  found = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(glob.escape(checkpoint_path), "**", FLAGS),
                                                      recursive=True))
  if wanted:
    def matches(directory):
      flags = _read_json(os.path.join(directory, FLAGS)) or {}
      return all(str(flags.get(k)) == v for k, v in wanted.items() if k in ("dataset", "method", "network_name"))
    found = [d for d in found if matches(d)]
  return found


def describe(directory: str, name: str = "", status: str = "") -> dict:
  """One row: the run's settings (flags.json) and its latest and best evaluation (results.json)."""
  flags = _read_json(os.path.join(directory, FLAGS)) or {}
  results = _read_json(os.path.join(directory, RESULTS)) or {}
  history = [h for h in results.get("history", []) if h.get("top1") is not None]
  return {"name": name or os.path.relpath(directory), "dataset": flags.get("dataset", "?"),
          "method": flags.get("method", "?"), "network": flags.get("network_name", "?"), "seed": flags.get("seed", "?"),
          "step": results.get("step"), "top1": results.get("top1"), "top5": results.get("top5"),
          "best_top1": max((h["top1"] for h in history), default=None),
          "selected_top1": (results.get("selected") or {}).get("top1"), "status": status, "directory": directory}


def rows_from_manifest(path: str) -> list[dict]:
  rows = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      parts = line.rstrip("\n").split("\t")
      if len(parts) < 6:
        continue
      name, code, seconds, _, checkpoint_path, flags_text = parts[:6]
      status = "ok" if code == "0" else "interrupted" if code == "75" else f"failed ({code})"
      directories = run_directories(checkpoint_path, _flag_values(flags_text))
      if not directories:
        values = _flag_values(flags_text)
        rows.append({"name": name, "dataset": values.get("dataset", values.get("preset", "?")),
                     "method": values.get("method", "?"), "network": values.get("network_name", "?"),
                     "seed": values.get("seed", "?"), "step": None, "top1": None, "top5": None, "best_top1": None,
                     "selected_top1": None,
                     "status": status, "directory": checkpoint_path})
      for directory in directories:
        rows.append({**describe(directory, name, status), "seconds": seconds})
  return sorted(rows, key=lambda r: r["name"])


def _percent(value) -> str:
  return "-" if value is None else f"{100 * value:.2f}"


def per_run_table(rows: list[dict]) -> str:
  lines = ["| run | dataset | method | network | seed | step | top-1 % | top-1 % at validation's choice | "
           "best top-1 % (chosen on test) | top-5 % | status |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['name']} | {r['dataset']} | {r['method']} | {r['network']} | {r['seed']} | "
                 f"{r['step'] if r['step'] is not None else '-'} | {_percent(r['top1'])} | "
                 f"{_percent(r.get('selected_top1'))} | {_percent(r['best_top1'])} | "
                 f"{_percent(r['top5'])} | {r['status']} |")
  return "\n".join(lines)


def summary_table(rows: list[dict]) -> str:
  """Final top-1 mean ± sample standard deviation over the seeds of each setting."""
  groups: dict[tuple, list[float]] = {}
  for r in rows:
    if r["top1"] is not None:
      groups.setdefault((r["dataset"], r["method"], r["network"]), []).append(100 * r["top1"])
  lines = ["| dataset | method | network | runs | top-1 % (mean ± std) |", "|---|---|---|---|---|"]
  for (dataset, method, network), values in sorted(groups.items()):
    spread = statistics.stdev(values) if len(values) > 1 else math.nan
    shown = f"{statistics.mean(values):.2f}" + (f" ± {spread:.2f}" if len(values) > 1 else "")
    lines.append(f"| {dataset} | {method} | {network} | {len(values)} | {shown} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--manifest", help="manifest.tsv written by scripts/fanout.sh")
  source.add_argument("--runs", help="a folder: every run directory below it")
  parser.add_argument("--output", help="also write the tables to this markdown file")
  args = parser.parse_args(argv)
  if args.manifest:
    if not os.path.isfile(args.manifest):
      print(f"error: --manifest={args.manifest} does not exist", file=sys.stderr)
      return 2
    rows = rows_from_manifest(args.manifest)
  else:
    rows = [describe(d) for d in run_directories(args.runs)]
  text = f"## Runs\n\n{per_run_table(rows)}\n\n## Final test top-1 over seeds\n\n{summary_table(rows)}\n"
  print(text)
  if args.output:
    with open(args.output, "w", encoding="utf-8") as f:
      f.write(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
