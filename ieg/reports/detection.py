"""How well per-example scores find the mislabelled training examples (numpy only).

A score comes with its suspicious end ("high": a large cross-entropy marks a likely wrong label;
"low": a small weight or softmax does). Scores are turned into a *suspicion* (higher = more likely
mislabelled) and compared with the known corruption mask of synthetic noise:

- AUROC: the probability that a random corrupted example is more suspicious than a random clean
  one (ties count one half), from the Mann-Whitney rank sum.
- Average precision: the area under the precision-recall curve as a step function (precision at
  each distinct threshold weighted by the recall gained there).
- Precision / recall / F1 of the flagged examples. A score with at most two values is a decision
  (selected or not) and flags its suspicious value; any other score flags its `flag_count` most
  suspicious examples (ties broken towards the lower row, so the count is exact).
"""
import numpy as np

from core.errors import UserError

SUSPICIOUS_ENDS = ("high", "low")


def suspicion(scores: np.ndarray, suspicious_end: str) -> np.ndarray:
  """The scores oriented so that higher means more likely mislabelled."""
  if suspicious_end not in SUSPICIOUS_ENDS:
    raise UserError(f"suspicious end {suspicious_end!r} is not known: choose one of {', '.join(SUSPICIOUS_ENDS)}")
  values = np.asarray(scores, np.float64)
  return values if suspicious_end == "high" else -values


def _check(values: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  values = np.asarray(values, np.float64).reshape(-1)
  positive = np.asarray(positive).reshape(-1)
  if values.shape != positive.shape:
    raise UserError(f"{len(values)} scores but {len(positive)} corruption flags: they must describe the same examples")
  if not np.all(np.isfinite(values)):
    raise UserError("some scores are NaN or infinite: the model that produced them diverged; check its training")
  return values, positive.astype(bool)


def average_ranks(values: np.ndarray) -> np.ndarray:
  """1-based ranks in increasing order; tied values share the mean of their ranks."""
  order = np.argsort(values, kind="stable")
  sorted_values = values[order]
  first = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
  group = np.cumsum(first) - 1
  starts = np.flatnonzero(first)
  ends = np.r_[starts[1:], len(values)]  # exclusive
  mean_rank = (starts + 1 + ends) / 2.0  # mean of starts+1 .. ends
  ranks = np.empty(len(values))
  ranks[order] = mean_rank[group]
  return ranks


def auroc(values, positive) -> float:
  """Area under the ROC curve of `values` (higher = positive); NaN when a class is empty."""
  values, positive = _check(values, positive)
  num_pos, num_neg = int(positive.sum()), int((~positive).sum())
  if num_pos == 0 or num_neg == 0:
    return float("nan")
  rank_sum = average_ranks(values)[positive].sum()
  return float((rank_sum - num_pos * (num_pos + 1) / 2.0) / (num_pos * num_neg))


def average_precision(values, positive) -> float:
  """Sum over distinct thresholds (high to low) of precision x recall gained; NaN without positives."""
  values, positive = _check(values, positive)
  num_pos = int(positive.sum())
  if num_pos == 0:
    return float("nan")
  order = np.argsort(-values, kind="stable")
  sorted_values, hits = values[order], positive[order]
  last_of_group = np.r_[sorted_values[1:] != sorted_values[:-1], True]
  true_pos = np.cumsum(hits)[last_of_group]
  flagged = (np.arange(len(values)) + 1)[last_of_group]
  recall_gain = np.diff(np.r_[0, true_pos]) / num_pos
  return float(np.sum(recall_gain * true_pos / flagged))


def flag(values, flag_count: int) -> np.ndarray:
  """The flagged examples: the suspicious value of a two-valued score, else the `flag_count` most suspicious."""
  values = np.asarray(values, np.float64).reshape(-1)
  distinct = np.unique(values)
  if len(distinct) == 2:
    return values == distinct[-1]
  flag_count = int(np.clip(flag_count, 0, len(values)))
  flagged = np.zeros(len(values), bool)
  flagged[np.argsort(-values, kind="stable")[:flag_count]] = True
  return flagged


def precision_recall_f1(flagged, positive) -> tuple[float, float, float]:
  flagged, positive = np.asarray(flagged, bool), np.asarray(positive, bool)
  hits = int(np.sum(flagged & positive))
  precision = hits / flagged.sum() if flagged.any() else float("nan")
  recall = hits / positive.sum() if positive.any() else float("nan")
  f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
  return float(precision), float(recall), float(f1)


def detection_metrics(scores, suspicious_end: str, corrupted, flag_count: int) -> dict:
  """Every metric of one score against the corruption mask, as plain floats and ints."""
  values = suspicion(scores, suspicious_end)
  values, corrupted = _check(values, corrupted)
  flagged = flag(values, flag_count)
  precision, recall, f1 = precision_recall_f1(flagged, corrupted)
  return {"suspicious_end": suspicious_end, "auroc": auroc(values, corrupted),
          "average_precision": average_precision(values, corrupted), "precision": precision, "recall": recall,
          "f1": f1, "num_flagged": int(flagged.sum()), "num_corrupted": int(corrupted.sum()),
          "num_examples": int(len(values)), "decision": bool(len(np.unique(values)) == 2)}
