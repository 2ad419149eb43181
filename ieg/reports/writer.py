"""What a run directory shows a person: PNG plots, the same plots in TensorBoard, and the detection report.

`<run>/plots/`: accuracy.png, loss.png, learning_rate.png (from results.json), train_metrics.png (the
method's own training metrics), transition.png (the true noise transition and the realised
confusion of clean vs noisy labels) and score_histograms.png (per-example scores of clean vs
corrupted examples). TensorBoard shows them under IMAGES in `<run>/report`.

`<run>/detection/`: scores.csv and scores.npz (one row per training example, by its row index),
metrics.json and report.md: AUROC, average precision, precision and recall of each score against
the corruption mask of `noise.npz`, when the noise is synthetic (the mask is known).

Plots use matplotlib's object API with the Agg canvas (no display, no pyplot state) and are cheap:
curves at most once per `min_interval_seconds` during training, everything at the end.
"""
import csv
import io
import logging
import os
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from core.errors import UserError
from datasets import noisy as noisy_lib
from datasets.pipelines import images as pipeline
from ieg.reports import detection
from ieg.reports import issue_files
from ieg.run import files as run_files

PLOTS_DIR = "plots"
DETECTION_DIR = issue_files.DETECTION_DIR
TENSORBOARD_DIR = "report"
SCORES_CSV = "scores.csv"
SCORES_NPZ = "scores.npz"
METRICS_JSON = "metrics.json"
REPORT_MD = "report.md"
MAX_ANNOTATED_CLASSES = 10  # larger transition matrices are drawn without numbers in the cells
MAX_METRIC_PANELS = 12  # the method's own training metrics, four per row


# ----- figures -----------------------------------------------------------------------------------
def _figure(columns: int = 1, width: float = 5.5, height: float = 4.0, rows: int = 1):
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top  (2 s to import: only when plotting)
  figure = Figure(figsize=(width * columns, height * rows), dpi=80)
  # Margins in inches (tick labels need ~0.75 in on the left); no layout engine: it would draw twice.
  total_width, total_height = width * columns, height * rows
  figure.subplots_adjust(left=0.75 / total_width, right=1 - 0.25 / total_width, bottom=0.5 / total_height,
                         top=1 - 0.4 / total_height, wspace=0.4, hspace=0.45)
  return figure, [figure.add_subplot(rows, columns, i + 1) for i in range(rows * columns)]


def _png(figure) -> bytes:
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png")
  return buffer.getvalue()


def _series(history: list[dict], key: str) -> tuple[list[float], list[float]]:
  points = [(h["step"], h[key]) for h in history if h.get(key) is not None]
  return [p[0] for p in points], [p[1] for p in points]


def curve_plots(history: list[dict]) -> dict[str, bytes]:
  """accuracy / loss / learning-rate PNGs (and the method's other training metrics) from results.json's history."""
  plots = {}
  panels = {"accuracy": (("train_accuracy", "train (noisy labels)"), ("top1", "test top-1"), ("top5", "test top-5")),
            "loss": (("train_loss", "train (incl. L2)"), ("eval_loss", "test")),
            "learning_rate": (("learning_rate", "learning rate"),)}
  for name, lines in panels.items():
    drawn = [(label, _series(history, key)) for key, label in lines if _series(history, key)[0]]
    if not drawn:
      continue
    figure, (axes,) = _figure()
    for label, (steps, values) in drawn:
      axes.plot(steps, values, marker="o" if len(steps) < 30 else None, label=label)
    axes.set_xlabel("step")
    axes.set_ylabel(name.replace("_", " "))
    axes.grid(alpha=0.3)
    axes.legend()
    plots[name] = _png(figure)
  shown = {"train_accuracy", "train_loss"}
  extra = sorted({k for h in history for k in h if k.startswith("train_") and k not in shown
                  and isinstance(h[k], (int, float))})
  if extra:
    extra = extra[:MAX_METRIC_PANELS]
    columns = min(len(extra), 4)
    figure, panes = _figure(columns=columns, width=4.0, height=3.2, rows=-(-len(extra) // columns))
    for axes in panes[len(extra):]:
      axes.set_visible(False)
    for axes, key in zip(panes, extra):
      axes.plot(*_series(history, key))
      axes.set_title(key[len("train_"):])
      axes.set_xlabel("step")
      axes.grid(alpha=0.3)
    plots["train_metrics"] = _png(figure)
  return plots


def transition_plot(transition: np.ndarray | None, clean_labels: np.ndarray | None, noisy_labels: np.ndarray,
                    num_classes: int) -> bytes | None:
  """The true transition T[clean, noisy] and the realised row-normalised confusion, side by side."""
  matrices = []
  if transition is not None and np.size(transition):
    matrices.append(("noise transition T (true -> noisy)", np.asarray(transition, np.float64)))
  if clean_labels is not None:
    counts = noisy_lib.confusion_matrix(clean_labels, noisy_labels, num_classes).astype(np.float64)
    matrices.append(("realised: clean label -> noisy label", counts / np.maximum(counts.sum(1, keepdims=True), 1)))
  if not matrices:
    return None
  figure, panes = _figure(columns=len(matrices), width=5.0, height=4.5)
  for axes, (title, matrix) in zip(panes, matrices):
    image = axes.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("noisy label")
    axes.set_ylabel("clean label")
    if num_classes <= MAX_ANNOTATED_CLASSES:
      for (i, j), value in np.ndenumerate(matrix):
        axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                  color="white" if value < 0.6 else "black")
      axes.set_xticks(range(num_classes))
      axes.set_yticks(range(num_classes))
    figure.colorbar(image, ax=axes, fraction=0.046)
  return _png(figure)


def score_histograms(scores: dict[str, np.ndarray], corrupted: np.ndarray | None) -> bytes | None:
  """One panel per score: its distribution over clean and corrupted examples (or all, when unknown)."""
  if not scores:
    return None
  names = sorted(scores)
  figure, panes = _figure(columns=len(names), width=4.5, height=3.5)
  for axes, name in zip(panes, names):
    values = np.asarray(scores[name], np.float64)
    bins = np.histogram_bin_edges(values, bins=40)
    if corrupted is None:
      axes.hist(values, bins=bins, color="tab:gray", label="all examples")
    else:
      axes.hist(values[~corrupted], bins=bins, alpha=0.6, density=True, label=f"clean ({np.sum(~corrupted)})")
      axes.hist(values[corrupted], bins=bins, alpha=0.6, density=True, label=f"corrupted ({np.sum(corrupted)})")
    axes.set_title(name)
    axes.set_xlabel("score")
    axes.set_ylabel("examples" if corrupted is None else "density")
    axes.legend(fontsize=8)
  return _png(figure)


def save_plots(run_dir: str, plots: dict[str, bytes | None], step: int) -> list[str]:
  """Writes `<run>/plots/<name>.png` (atomically) and the same images to TensorBoard; returns the paths."""
  plots = {name: png for name, png in plots.items() if png}
  if not plots:
    return []
  directory = os.path.join(run_dir, PLOTS_DIR)
  os.makedirs(directory, exist_ok=True)
  paths = []
  for name, png in plots.items():
    path = os.path.join(directory, f"{name}.png")
    with open(path + ".tmp", "wb") as f:
      f.write(png)
    os.replace(path + ".tmp", path)
    paths.append(path)
  writer = tf.summary.create_file_writer(os.path.join(run_dir, TENSORBOARD_DIR))
  with writer.as_default(step=step):
    for name, png in plots.items():
      tf.summary.image(f"plots/{name}", tf.image.decode_png(png, channels=4)[None])
  writer.close()
  return paths


# ----- per-example scores ------------------------------------------------------------------------
def _ordered_images(data, batch_size: int) -> tf.data.Dataset:
  dataset = pipeline.ordered_batches(
      data.x_train, {"label": data.y_train.astype(np.int32), "index": np.arange(data.num_train, dtype=np.int64)},
      batch_size=batch_size)
  return dataset.map(lambda b: {**b, "image": pipeline.to_unit_range(b["image"])},
                                       num_parallel_calls=pipeline.AUTOTUNE)


def _ordered_tokens(data, batch_size: int) -> tf.data.Dataset:
  return tf.data.Dataset.from_tensor_slices(
      {"image": data.x_train.astype(np.int32), "label": data.y_train.astype(np.int32),
       "index": np.arange(data.num_train, dtype=np.int64)}).batch(batch_size)


# Data kind -> the training set in row order, as the network sees it at evaluation (no augmentation).
# Streamed image files (WebVision, Clothing1M) are not scored: a pass over them is a job of its own.
ORDERED_TRAINING_SETS = {"images": _ordered_images, "text": _ordered_tokens}


def _with_probe_batches(dataset: tf.data.Dataset, data, probe_batch_size: int, kind: str) -> tf.data.Dataset:
  """Gives batch k the probe rows k*P' .. (k+1)*P'-1 of the fixed probe order (cycled), unaugmented."""
  probe_inputs = tf.constant(np.asarray(data.x_probe) if kind == "images" else data.x_probe.astype(np.int32))
  probe_labels = tf.constant(data.y_probe.astype(np.int32))
  num_probe = len(data.y_probe)

  def attach(k, batch):
    rows = (k * probe_batch_size + tf.range(probe_batch_size, dtype=tf.int64)) % num_probe
    inputs = tf.gather(probe_inputs, rows)
    return {**batch, "probe_image": pipeline.to_unit_range(inputs) if kind == "images" else inputs,
            "probe_label": tf.gather(probe_labels, rows)}
  return dataset.enumerate().map(attach)


def training_scores(model, data, batch_size: int) -> dict[str, np.ndarray] | None:
  """`model.example_scores` over the training set in row order; None for data kinds that are not scored.

  A method that needs the clean probe set (IEG, L2R) gets a probe batch with every batch, so it can
  score the examples with its own look-ahead.
  """
  kind = getattr(data, "kind", "images")
  if kind not in ORDERED_TRAINING_SETS:
    logging.info("per-example scores are not computed for %s data", kind)
    return None
  dataset = ORDERED_TRAINING_SETS[kind](data, batch_size)
  if getattr(model, "needs_probe", False) and data.num_probe > 0:
    dataset = _with_probe_batches(dataset, data, batch_size, kind)
  dataset = dataset.prefetch(pipeline.AUTOTUNE)
  score_batch = tf.function(model.example_scores)
  parts: dict[str, list[np.ndarray]] = {}
  for batch in dataset:
    for name, value in score_batch(batch).items():
      parts.setdefault(name, []).append(np.asarray(keras.ops.convert_to_numpy(value)).reshape(-1))
  scores = {name: np.concatenate(values) for name, values in parts.items()}
  for name, values in scores.items():
    if len(values) != data.num_train:
      raise ValueError(f"example_scores returned {len(values)} values of {name!r} for {data.num_train} examples")
  return scores


def training_probabilities(model, data, batch_size: int) -> np.ndarray | None:
  """Softmax of the evaluation logits [N, K] over the training set in row order (None: not scored)."""
  kind = getattr(data, "kind", "images")
  if kind not in ORDERED_TRAINING_SETS:
    return None
  dataset = ORDERED_TRAINING_SETS[kind](data, batch_size).prefetch(pipeline.AUTOTUNE)
  predict = tf.function(lambda images: tf.nn.softmax(tf.cast(model.evaluation_logits(images), tf.float32), axis=-1))
  return np.concatenate([predict(batch["image"]).numpy() for batch in dataset]).astype(np.float32)


def suspicious_ends(model, names) -> dict[str, str]:
  known = getattr(model, "SCORE_SUSPICIOUS_END", {})
  missing = [n for n in names if n not in known]
  if missing:
    logging.warning("scores %s name no suspicious end in SCORE_SUSPICIOUS_END; taking high values as suspicious",
                    ", ".join(missing))
  return {name: known.get(name, "high") for name in names}


def write_detection_report(run_dir: str, scores: dict[str, np.ndarray], ends: dict[str, str], noise: dict,
                           step: int) -> dict[str, Any]:
  """scores.csv/.npz, metrics.json and report.md in `<run>/detection`; returns the metrics document."""
  directory = os.path.join(run_dir, DETECTION_DIR)
  os.makedirs(directory, exist_ok=True)
  noisy = np.asarray(noise["noisy_labels"])
  clean = noise.get("clean_labels")
  corrupted = noise.get("corrupted")
  num = len(noisy)
  train_ids = noise.get("train_ids")
  columns = {"index": np.arange(num), "source_index": train_ids if train_ids is not None else np.arange(num),
             "noisy_label": noisy}
  if clean is not None:
    columns.update(clean_label=clean, corrupted=np.asarray(corrupted).astype(np.int64))
  columns.update(scores)
  names = list(columns)
  temp = os.path.join(directory, SCORES_CSV + ".tmp")
  with open(temp, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(names)
    for row in zip(*(columns[n] for n in names)):
      writer.writerow([f"{v:.6g}" if isinstance(v, (float, np.floating)) else int(v) for v in row])
  os.replace(temp, os.path.join(directory, SCORES_CSV))
  with open(os.path.join(directory, SCORES_NPZ + ".tmp"), "wb") as f:
    np.savez(f, **{n: np.asarray(v) for n, v in columns.items()})
  os.replace(os.path.join(directory, SCORES_NPZ + ".tmp"), os.path.join(directory, SCORES_NPZ))

  spec = noise.get("spec")
  ratio = float(getattr(spec, "ratio", 0.0) or 0.0)
  flag_count = int(round(ratio * num))
  document = {"step": step, "num_examples": num, "noise": str(spec) if spec is not None else None,
              "flag_fraction": ratio, "flag_count": flag_count, "mask_known": corrupted is not None,
              "realised_noise_rate": float(np.mean(corrupted)) if corrupted is not None else None, "scores": {}}
  for name, values in scores.items():
    if corrupted is None:
      document["scores"][name] = {"suspicious_end": ends[name]}
    else:
      document["scores"][name] = detection.detection_metrics(values, ends[name], corrupted, flag_count)
  run_files.write_json_atomic(os.path.join(directory, METRICS_JSON), document)
  with open(os.path.join(directory, REPORT_MD), "w", encoding="utf-8") as f:
    f.write(_markdown(document))
  return document


def _markdown(document: dict) -> str:
  lines = [f"# Noisy-label detection at step {document['step']}", "",
           f"{document['num_examples']} training examples, noise `{document['noise']}`."]
  if not document["mask_known"]:
    lines += ["", "The clean labels are unknown (real or custom data): scores are exported, no metrics.", ""]
    return "\n".join(lines)
  lines += [f"Realised corruption rate {document['realised_noise_rate']:.4f}. Continuous scores flag their "
            f"{document['flag_count']} most suspicious examples (the nominal noise ratio "
            f"{document['flag_fraction']:g}); two-valued scores flag their suspicious value.", "",
            "| score | suspicious end | AUROC | average precision | precision | recall | F1 | flagged |",
            "|---|---|---|---|---|---|---|---|"]
  for name, m in sorted(document["scores"].items()):
    lines.append(f"| {name} | {m['suspicious_end']} | {m['auroc']:.4f} | {m['average_precision']:.4f} | "
                 f"{m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['num_flagged']} |")
  return "\n".join(lines) + "\n"


# ----- what a run writes -------------------------------------------------------------------------
def read_history(run_dir: str) -> list[dict]:
  path = os.path.join(run_dir, run_files.RESULTS_FILE)
  try:
    return run_files.read_json(path).get("history", []) if os.path.exists(path) else []
  except (OSError, ValueError):
    return []


def read_noise(run_dir: str, data) -> dict:
  """The run's noise.npz (the labels the run trained on); the in-memory dataset when it is absent."""
  path = os.path.join(run_dir, run_files.NOISE_FILE)
  if os.path.exists(path):
    return noisy_lib.load_noise_file(path)
  return {"noisy_labels": data.y_train, "clean_labels": getattr(data, "y_train_clean", None),
          "corrupted": getattr(data, "corrupted", None), "train_ids": getattr(data, "train_ids", None),
          "transition": getattr(data, "transition", None), "spec": data.spec, "num_classes": data.num_classes}


def write_full_report(run_dir: str, model, data, batch_size: int, step: int, score: bool = True) -> dict[str, Any]:
  """Every plot, and (with `score`) the per-example scores and the detection report of the model as it is now."""
  noise = read_noise(run_dir, data)
  if not np.array_equal(np.asarray(noise["noisy_labels"]), data.y_train):
    raise UserError(f"{run_dir}/{run_files.NOISE_FILE} holds other noisy labels than this --dataset/--seed give: "
                    "use the settings the run was trained with")
  scores = training_scores(model, data, batch_size) if score else None
  document = {"step": step, "scores": {}}
  if scores is not None:
    document = write_detection_report(run_dir, scores, suspicious_ends(model, scores), noise, step)
    probs = training_probabilities(model, data, batch_size)
    if probs is not None:
      document["label_issues"] = issue_files.write_label_issues(run_dir, probs, data, noise, step)
  corrupted = None if noise.get("corrupted") is None else np.asarray(noise["corrupted"], bool)
  plots = {**curve_plots(read_history(run_dir)),
           "transition": transition_plot(noise.get("transition"), noise.get("clean_labels"), noise["noisy_labels"],
                                         data.num_classes),
           "score_histograms": score_histograms(scores or {}, corrupted)}
  document["plots"] = save_plots(run_dir, plots, step)
  return document


def detection_due(step: int, examples_per_step: int, num_train: int) -> bool:
  """The end-of-run detection report is written once a run has seen as many examples as it scores."""
  return step * examples_per_step >= num_train


class WriteReports(keras.callbacks.Callback):
  """Curves after evaluations (at most once per `min_interval_seconds`); everything once training is done.

  The per-example scores at the end take one inference pass over the training set, so they are
  computed only for runs that trained on at least as many examples (`examples_per_step` x steps):
  shorter runs are smoke tests, and `--mode=report` scores any checkpoint on demand.
  Place the callback after the one that records results.json. Only the process that writes the run
  directory (the chief) should get one; it uses no collective operation.
  """

  def __init__(self, run_dir: str, data, max_iteration: int, batch_size: int, examples_per_step: int,
               min_interval_seconds: float = 60.0):
    super().__init__()
    self.run_dir = run_dir
    self.data = data
    self.max_iteration = max_iteration
    self.batch_size = batch_size
    self.examples_per_step = examples_per_step
    self.min_interval_seconds = min_interval_seconds
    self.last_plotted = time.monotonic()  # the first curves come one interval in, or at the end

  def _step(self) -> int:
    return int(self.model.optimizer.iterations.numpy())

  def on_epoch_end(self, epoch, logs=None):
    if time.monotonic() - self.last_plotted < self.min_interval_seconds or self._step() >= self.max_iteration:
      return
    save_plots(self.run_dir, curve_plots(read_history(self.run_dir)), self._step())
    self.last_plotted = time.monotonic()

  def on_train_end(self, logs=None):
    step = self._step()
    if step < self.max_iteration:
      return  # stopped early (signal, non-finite loss): a rerun resumes and reports at the end
    started = time.monotonic()
    score = detection_due(step, self.examples_per_step, self.data.num_train)
    document = write_full_report(self.run_dir, self.model, self.data, self.batch_size, step, score=score)
    if not score:
      logging.info("no detection report: the run trained on fewer examples than the training set holds "
                   "(--mode=report scores any checkpoint)")
    logging.info("report written to %s in %.1f s%s", self.run_dir, time.monotonic() - started, summary_line(document))


def summary_line(document: dict) -> str:
  scored = [(n, m) for n, m in document.get("scores", {}).items() if "auroc" in m]
  return "".join(f"; {n} AUROC {m['auroc']:.3f}" for n, m in sorted(scored))


def report_from_checkpoint(run) -> dict[str, Any]:
  """`--mode=report`: restores the newest (or --restore_step) checkpoint and writes every plot and the detection report."""
  step = run.store.restore(run.config.restore_step, require=True)
  try:
    document = write_full_report(run.config.run_dir, run.model, run.data, run.config.val_batch_size, step)
  except OSError as e:
    raise UserError(f"cannot write the report into {run.config.run_dir} ({e.strerror or e}): make the run directory "
                    "writable or copy it somewhere writable") from e
  print(f"[Report] step {step}: {os.path.join(run.config.run_dir, DETECTION_DIR, REPORT_MD)}{summary_line(document)}")
  return document
