"""The files of a run directory: resolved flags, results and the JSON log, written atomically.

A reader (or a run killed mid-write) only ever sees the previous or the new complete file.
"""
import json
import os
import tempfile
from typing import Any

FLAGS_FILE = "flags.json"
RESULTS_FILE = "results.json"
LOG_FILE = "log.jsonl"
NOISE_FILE = "noise.npz"
NOISE_REPORT_FILE = "noise_report.txt"
SKIPPED_IMAGES_FILE = "skipped_images.txt"   # unreadable files left out (--skip_bad_images)
CHECKPOINT_DIR = "checkpoints"


def write_json_atomic(path: str, payload: Any) -> None:
  directory = os.path.dirname(path) or "."
  with tempfile.NamedTemporaryFile("w", dir=directory, prefix=".tmp_", suffix=".json", delete=False) as f:
    json.dump(payload, f, indent=2, sort_keys=True, default=_jsonable)
    f.flush()
    os.fsync(f.fileno())
  os.replace(f.name, path)


def read_json(path: str) -> Any:
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def append_log(run_dir: str, record: dict[str, Any]) -> None:
  with open(os.path.join(run_dir, LOG_FILE), "a", encoding="utf-8") as f:
    f.write(json.dumps(record, sort_keys=True, default=_jsonable) + "\n")


def record_result(run_dir: str, record: dict[str, Any]) -> dict[str, Any]:
  """Adds one evaluation to results.json; the top level always holds the latest step/top1/top5."""
  path = os.path.join(run_dir, RESULTS_FILE)
  history = []
  if os.path.exists(path):
    try:
      history = read_json(path).get("history", [])
    except (OSError, ValueError):
      history = []  # an unreadable results file is rebuilt from here on; checkpoints are untouched
  history = [h for h in history if h.get("step") != record["step"]] + [record]
  history.sort(key=lambda h: h["step"])
  payload = {**record, "history": history}
  selected = select_on_validation(history)
  if selected is not None:
    payload["selected"] = selected
  write_json_atomic(path, payload)
  return payload


def select_on_validation(history: list[dict[str, Any]]) -> dict[str, Any] | None:
  """The evaluation with the highest validation top-1 (the earliest on ties) and its test top-1.

  None when the run holds out no validation set: the test history alone must not choose an epoch.
  """
  scored = [h for h in history if h.get("validation_top1") is not None]
  if not scored:
    return None
  best = max(scored, key=lambda h: (h["validation_top1"], -h["step"]))
  return {"by": "validation_top1", "step": best["step"], "epoch": best.get("epoch"),
          "validation_top1": best["validation_top1"], "top1": best.get("top1"), "top5": best.get("top5")}


def _jsonable(value):
  if hasattr(value, "item"):
    return value.item()
  if hasattr(value, "tolist"):
    return value.tolist()
  return str(value)
