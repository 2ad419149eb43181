"""What a run writes about its suspect labels, from class probabilities over its training set.

detection/label_issues.csv   every training example, most suspicious first (`label_issues.write_issues_csv`)
detection/pred_probs.npy     the probabilities [N, K] in training-row order, as cleanlab takes them
detection/noise_estimate.json the estimated noise rate, joint and transition; precision/recall/AUROC of
                             the flags when the corruption is known (synthetic noise)
detection/label_issues.png   the most suspicious images with their given and suggested labels

`scored` says where the probabilities come from: `in_sample` (the run's own model, which trained on
these labels and so trusts them more than it should) or `out_of_sample` (cross-validation folds).
"""
from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

from ieg.reports import detection
from ieg.reports import label_issues
from ieg.run import files as run_files

DETECTION_DIR = "detection"
GRID_FILE = "label_issues.png"
GRID_SIZE = 5   # a 5 x 5 grid of the most suspicious examples


def write_label_issues(run_dir: str, probs: np.ndarray, data, noise: dict, step: int,
                       scored: str = "in_sample") -> dict[str, Any]:
  """Writes the four files above into <run_dir>/detection and returns the noise estimate's document."""
  directory = os.path.join(run_dir, DETECTION_DIR)
  os.makedirs(directory, exist_ok=True)
  given = np.asarray(data.y_train)
  class_names = getattr(data, "class_names", None)
  issues = label_issues.find_label_issues(given, probs)
  label_issues.write_issues_csv(os.path.join(directory, label_issues.ISSUES_FILE), issues, given,
                                ids=getattr(data, "train_ids", None), class_names=class_names,
                                paths=getattr(data, "source_paths", None), scored=scored)
  tmp = os.path.join(directory, "." + label_issues.PROBS_FILE)
  with open(tmp, "wb") as f:
    np.save(f, probs.astype(np.float32))
  os.replace(tmp, os.path.join(directory, label_issues.PROBS_FILE))
  estimate = {"step": step, "scored": scored, "num_examples": int(len(given)),
              "estimated_noise_rate": issues.estimate.noise_rate, "num_flagged": int(issues.is_issue.sum()),
              "joint": issues.estimate.joint.tolist(), "transition_given_by_true": issues.estimate.transition.tolist()}
  corrupted = noise.get("corrupted")
  if corrupted is not None and len(corrupted) == len(given):  # synthetic noise: how good the flags are
    corrupted = np.asarray(corrupted, bool)
    precision, recall, f1 = detection.precision_recall_f1(issues.is_issue, corrupted)
    estimate.update({"true_noise_rate": float(corrupted.mean()), "precision": precision, "recall": recall, "f1": f1,
                     "auroc": detection.auroc(1.0 - issues.self_confidence, corrupted)})
  run_files.write_json_atomic(os.path.join(directory, label_issues.ESTIMATE_FILE), estimate)
  if getattr(data, "kind", "images") == "images" and len(given):
    png = suspicious_grid(data.x_train, given, issues, class_names)
    with open(os.path.join(directory, "." + GRID_FILE), "wb") as f:
      f.write(png)
    os.replace(os.path.join(directory, "." + GRID_FILE), os.path.join(directory, GRID_FILE))
  return estimate


def suspicious_grid(images: np.ndarray, given: np.ndarray, issues: label_issues.LabelIssues,
                    class_names: list[str] | None, size: int = GRID_SIZE) -> bytes:
  """PNG of the size x size most suspicious images, each titled 'given -> suggested'."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top  (slow to import: only here)
  name = (lambda c: class_names[int(c)]) if class_names else (lambda c: str(int(c)))  # noqa: E731
  shown = issues.order[:size * size]
  rows = max(1, int(np.ceil(len(shown) / size)))
  figure = Figure(figsize=(2.0 * size, 2.2 * rows), dpi=80)
  for i, row in enumerate(shown):
    axis = figure.add_subplot(rows, size, i + 1)
    image = images[row]
    axis.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None,
                vmin=0, vmax=255)
    axis.set_title(f"{name(given[row])} -> {name(issues.suggested[row])}", fontsize=8,
                   color="tab:red" if issues.is_issue[row] else "black")
    axis.set_xticks([])
    axis.set_yticks([])
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png")
  return buffer.getvalue()


def read_noise_estimate(path: str, num_classes: int) -> tuple[float, np.ndarray]:
  """(estimated noise rate, transition [K, K] T[true, given]) from a noise_estimate.json of --mode=find_issues."""
  from core.errors import UserError  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(path):
    raise UserError(f"no noise estimate at {path}: run --mode=find_issues with the same --dataset, --network_name, "
                    "--method and --checkpoint_path first, or give the number instead of 'estimate'")
  try:
    document = run_files.read_json(path)
    rate = float(document["estimated_noise_rate"])
    transition = np.asarray(document["transition_given_by_true"], np.float64)
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise UserError(f"{path} is not a readable noise estimate ({type(e).__name__}): rerun --mode=find_issues") from e
  if transition.shape != (num_classes, num_classes) or not 0.0 <= rate < 1.0:
    raise UserError(f"{path} holds an estimate for other data ({transition.shape[0]} classes, rate {rate:g}): "
                    "rerun --mode=find_issues with these settings")
  return rate, transition
