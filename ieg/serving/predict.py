"""`--mode=predict`: a trained run's class probabilities for your own images, as a CSV in the run directory.

The probabilities come from the same serving module the export writes, so a CSV row and the
exported SavedModel agree on the same image.
"""
import csv
import os

import numpy as np

from core.errors import UserError
from ieg.run import compat as run_compat
from ieg.serving import export as export_lib
from ieg.serving import inputs as inputs_lib

PREDICTIONS_DIR = "predictions"
BATCH = 256


def probabilities(module, images: np.ndarray, batch_size: int = BATCH) -> np.ndarray:
  """serve() over `images` in batches: float32 [N, K]."""
  parts = [module.serve(images[start:start + batch_size]).numpy() for start in range(0, len(images), batch_size)]
  return np.concatenate(parts).astype(np.float32)


def output_path(run_dir: str, predict_input: str) -> str:
  """`<run_dir>/predictions/<input name>.csv`: the folder's or file's name without its suffix."""
  name = os.path.splitext(os.path.basename(os.path.normpath(os.path.abspath(predict_input))))[0] or "input"
  return os.path.join(run_dir, PREDICTIONS_DIR, name + ".csv")


def write_predictions(path: str, key_name: str, keys: list[str], probs: np.ndarray, names: list[str]) -> None:
  """One row per image: key, predicted_label (the class name), confidence, prob_<name> of every class."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  predicted = np.argmax(probs, axis=1)
  temp = path + ".tmp"
  with open(temp, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow([key_name, "predicted_label", "confidence", *(f"prob_{n}" for n in names)])
    for key, row, label in zip(keys, probs, predicted):
      writer.writerow([key, names[label], f"{row[label]:.6g}", *(f"{p:.6g}" for p in row)])
  os.replace(temp, path)


def predict_from_checkpoint(run) -> dict:
  """Restores the newest (or --restore_step) checkpoint and writes the predictions CSV of --predict_input."""
  config, data = run.config, run.data
  if data.kind == "text":
    raise UserError(f"--mode=predict reads images, but --dataset={config.dataset} is text: export the model "
                    "(--mode=export) and feed it int32 token ids")
  current = {**config.to_json(), "num_classes": data.num_classes}
  run_compat.check_evaluation_target(config.run_dir, current)
  hint = run_compat.mismatch_hint(run_compat.read_saved_flags(config.run_dir), current)
  step = run.store.restore(config.restore_step, require=True, mismatch_hint=hint)
  key_name, keys, images = inputs_lib.read_inputs(config.predict_input, tuple(data.image_shape))
  probs = probabilities(export_lib.serving_module(run), images)
  path = output_path(config.run_dir, config.predict_input)
  try:
    write_predictions(path, key_name, keys, probs, export_lib.class_names(data))
  except OSError as e:
    raise UserError(f"cannot write {path} ({e.strerror or e}): make the run directory writable") from e
  print(f"[Predict] step {step}, {len(keys)} images: {path}")
  return {"step": step, "predictions": path, "num_images": len(keys)}
