"""Which given labels look wrong, what they should be, and how noisy the labels are: confident learning.

From predicted class probabilities P [N, K] and the given labels y (Northcutt et al., "Confident
Learning", JAIR 2021; cleanlab's defaults):
  threshold t_j      = mean of P[i, j] over the examples labelled j (the class's self-confidence),
  confident class    = argmax_j P[i, j] over the classes with P[i, j] >= t_j (none: not counted),
  confident joint C  = counts of (given label, confident class), each row rescaled to the number of
                       examples with that label, then normalised to the joint Q of (given, true),
  noise rate         = 1 - trace(Q).
The number of labels flagged is round(noise rate x N), not the nominal ratio; the flagged ones are
those with the lowest self-confidence P[i, y_i] (cleanlab's `self_confidence` ranking), and the
suggested label is argmax_j P[i, j]. numpy only.
"""
from __future__ import annotations

import csv
import dataclasses
import os

import numpy as np

ISSUES_FILE = "label_issues.csv"
ESTIMATE_FILE = "noise_estimate.json"
PROBS_FILE = "pred_probs.npy"


@dataclasses.dataclass
class NoiseEstimate:
  joint: np.ndarray        # [K, K] Q[given, true], sums to 1
  noise_rate: float        # 1 - trace(Q)
  thresholds: np.ndarray   # [K] per-class self-confidence thresholds

  @property
  def transition(self) -> np.ndarray:
    """[K, K] P(given | true): the joint's columns normalised (a true class no one has is all zero)."""
    totals = self.joint.sum(axis=0, keepdims=True)
    return np.divide(self.joint, totals, out=np.zeros_like(self.joint), where=totals > 0).T


def _check(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  labels, probs = np.asarray(labels, np.int64), np.asarray(probs, np.float64)
  if probs.ndim != 2 or len(labels) != len(probs):
    raise ValueError(f"probabilities must be [N, K] for N={len(labels)} labels, got {probs.shape}")
  if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[1]):
    raise ValueError(f"labels must lie in [0, {probs.shape[1]})")
  return labels, probs


def estimate_noise(labels, probs) -> NoiseEstimate:
  """The calibrated confident joint and the noise rate it implies."""
  labels, probs = _check(labels, probs)
  k = probs.shape[1]
  counts = np.bincount(labels, minlength=k).astype(np.float64)
  thresholds = np.array([probs[labels == j, j].mean() if counts[j] else 1.0 for j in range(k)])
  above = probs >= thresholds[None, :]
  confident = np.where(above.any(axis=1), np.argmax(np.where(above, probs, -1.0), axis=1), -1)
  joint = np.zeros((k, k))
  counted = confident >= 0
  np.add.at(joint, (labels[counted], confident[counted]), 1.0)
  row_sums = joint.sum(axis=1, keepdims=True)
  joint = np.divide(joint, row_sums, out=np.zeros_like(joint), where=row_sums > 0) * counts[:, None]
  total = joint.sum()
  joint = joint / total if total > 0 else joint
  return NoiseEstimate(joint=joint, noise_rate=float(1.0 - np.trace(joint)), thresholds=thresholds)


@dataclasses.dataclass
class LabelIssues:
  order: np.ndarray             # row indices, most suspicious first
  self_confidence: np.ndarray   # [N] P[i, y_i]
  suggested: np.ndarray         # [N] argmax_j P[i, j]
  is_issue: np.ndarray          # [N] bool: among the round(noise rate x N) least self-confident
  estimate: NoiseEstimate


def find_label_issues(labels, probs) -> LabelIssues:
  labels, probs = _check(labels, probs)
  estimate = estimate_noise(labels, probs)
  self_confidence = probs[np.arange(len(labels)), labels]
  order = np.argsort(self_confidence, kind="stable")
  flagged = int(round(max(estimate.noise_rate, 0.0) * len(labels)))
  is_issue = np.zeros(len(labels), bool)
  is_issue[order[:flagged]] = True
  return LabelIssues(order=order, self_confidence=self_confidence, suggested=np.argmax(probs, axis=1),
                     is_issue=is_issue, estimate=estimate)


def write_issues_csv(path: str, issues: LabelIssues, labels, *, ids=None, class_names=None,
                     scored: str = "in_sample", paths=None) -> None:
  """One row per training example, most suspicious first: index, given and suggested label, flag, score.

  `paths` (the image file of every source row, indexed like `ids`) adds a `path` column.
  """
  labels = np.asarray(labels)
  name = (lambda c: class_names[int(c)]) if class_names else int
  tmp = path + ".tmp"
  with open(tmp, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["index", "given_label", "suggested_label", "is_label_issue", "score", "scored"]
                    + (["path"] if paths is not None else []))
    for row in issues.order:
      index = int(ids[row]) if ids is not None else int(row)
      writer.writerow([index, name(labels[row]), name(issues.suggested[row]), bool(issues.is_issue[row]),
                       f"{1.0 - issues.self_confidence[row]:.6f}", scored]
                      + ([paths[index]] if paths is not None else []))
  os.replace(tmp, path)
