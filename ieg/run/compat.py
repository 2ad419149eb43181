"""Does this command fit the run directory it points at? Compares with the run's saved flags.json.

A checkpoint is plain numbers: restored into a network of the same shape but trained on another
dataset, it would evaluate without complaint and report a meaningless accuracy. The run directory's
name encodes dataset, network and method, so a mismatch means copied or hand-edited folders, or a
`custom` dataset whose file changed; either way the user gets the differing settings by name.
"""
import logging
import os
from typing import Any

from core.errors import UserError
from ieg.run import files as run_files

# What gives a checkpoint's numbers their meaning: evaluating with any of these changed is wrong.
IDENTITY_KEYS = ("dataset", "network_name", "method", "num_classes")
# Settings that change which variables exist (named when a checkpoint does not fit the model).
STRUCTURE_KEYS = IDENTITY_KEYS + ("dataset_file", "use_ema", "optimizer")


def read_saved_flags(run_dir: str) -> dict[str, Any] | None:
  """The run's flags.json, or None when absent or unreadable."""
  path = os.path.join(run_dir, run_files.FLAGS_FILE)
  try:
    return run_files.read_json(path)
  except (OSError, ValueError):
    return None


def differences(saved: dict[str, Any] | None, current: dict[str, Any], keys) -> list[str]:
  """`--key=<saved> (now <current>)` for every key in `keys` (and method option) that differs."""
  if not saved:
    return []
  out = [f"--{k}={saved[k]} (now {current.get(k)})" for k in keys if k in saved and saved[k] != current.get(k)]
  saved_options, options = saved.get("method_options") or {}, current.get("method_options") or {}
  out += [f"--{k}={v} (now {options[k]})" for k, v in saved_options.items() if k in options and options[k] != v]
  return out


def mismatch_hint(saved: dict[str, Any] | None, current: dict[str, Any]) -> str:
  """Why a checkpoint may not fit: the structural settings of the run that wrote it, where they differ."""
  changed = differences(saved, current, STRUCTURE_KEYS)
  return f"the run that wrote it used {', '.join(changed)}" if changed else ""


def check_evaluation_target(run_dir: str, current: dict[str, Any]) -> None:
  """UserError when the run in `run_dir` was trained on another dataset, network, method or class count."""
  saved = read_saved_flags(run_dir)
  changed = differences(saved, current, IDENTITY_KEYS)
  if changed:
    raise UserError(f"{run_dir} holds a run trained with {', '.join(changed)}: its checkpoints would be evaluated "
                    "as another model; pass that run's settings or point --checkpoint_path at the right run")
  if saved and saved.get("dataset_file") != current.get("dataset_file"):
    logging.warning("evaluating a run trained on --dataset_file=%s with --dataset_file=%s", saved.get("dataset_file"),
                    current.get("dataset_file"))
