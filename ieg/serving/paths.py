"""Where export and predict read and write, checked before a run starts (a long training run must not
fail at its end because the export folder holds something else)."""
import json
import os

from core.errors import UserError

MODEL_INFO_FILE = "model_info.json"  # written last: its presence marks a complete export
CLASS_NAMES_FILE = "class_names.json"
SAVED_MODEL_FILE = "saved_model.pb"
PREDICT_SUFFIXES = (".csv", ".npz")


def is_export(path: str) -> bool:
  """True for a folder this project wrote with --export_dir (so it may be replaced)."""
  info = os.path.join(path, MODEL_INFO_FILE)
  if not (os.path.isfile(info) and os.path.isfile(os.path.join(path, SAVED_MODEL_FILE))):
    return False
  try:
    with open(info, encoding="utf-8") as f:
      return "num_classes" in json.load(f)
  except (OSError, ValueError):
    return False


def check_export_dir(path: str) -> None:
  """UserError for a file, or a non-empty folder that is not a previous export."""
  if os.path.isfile(path):
    raise UserError(f"--export_dir={path} is a file: give a new or empty folder, or a previous export to replace")
  if os.path.isdir(path) and os.listdir(path) and not is_export(path):
    raise UserError(f"--export_dir={path} is a non-empty folder that is not a previous export: give a new or "
                    "empty folder (an earlier export there would be replaced)")


def check_predict_input(path: str | None) -> None:
  if path is None:
    raise UserError("--mode=predict needs --predict_input=<a folder of images, a .csv with a path column, "
                    "or an .npz with x>")
  if not os.path.exists(path):
    raise UserError(f"--predict_input={path} does not exist: give a folder of images, a .csv with a path column, "
                    "or an .npz with x")
  if os.path.isfile(path) and not path.lower().endswith(PREDICT_SUFFIXES):
    raise UserError(f"--predict_input={path} is neither a folder, a .csv nor an .npz: give one of those")


def check(mode: str, export_dir: str | None, predict_input: str | None) -> None:
  """The export and predict settings of a run in `mode`."""
  if mode == "export" and not export_dir:
    raise UserError("--mode=export needs --export_dir=<folder to write the SavedModel into>")
  if export_dir and mode in ("train", "export", "find_issues"):
    check_export_dir(export_dir)
  if mode == "predict":
    check_predict_input(predict_input)
