"""csv: a table of image files and labels (`--dataset=csv --dataset_file=labels.csv`).

A header row names the columns `path,label[,split]` (other columns are ignored). Paths are
relative to the CSV's folder (absolute paths are kept). Labels are class names (ids follow the
sorted names) or, when every label is an integer, class ids 0..K-1 as given. `split` is train,
test or probe (an empty cell: train); without the column, or without any test row, --test_fraction of the training rows
becomes the test set.
"""
from __future__ import annotations

import csv
import os

from core.errors import UserError
from datasets.sources.own.labelled_files import SPLITS, LabelledFiles, build_raw
from datasets.sources.registry import RawDataset, SourceOptions, first_line, register_source

FLAG = "--dataset_file"
WHERE = "--dataset=csv"
REQUIRED_COLUMNS = ("path", "label")
MAX_CLASS_ID = 100_000 - 1   # as the .npz source: a larger id is a mistake, not a class


@register_source("csv", takes_options=True, required_flag="dataset_file", labels_as_given=True)
def _load_csv(data_dir, dataset_file, options: SourceOptions) -> RawDataset:
  del data_dir
  return load_csv(dataset_file, options)


def load_csv(path: str | None, options: SourceOptions) -> RawDataset:
  if not path:
    raise UserError(f"{WHERE} needs {FLAG}=labels.csv with the columns path,label[,split]")
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise UserError(f"{FLAG}={path} does not exist: give a CSV with the columns path,label[,split]")
  rows = _read_rows(path)
  base = os.path.dirname(os.path.abspath(path))
  entries = []   # (line, file, label text, split)
  for line, row in rows:
    label = (row.get("label") or "").strip()
    image = (row.get("path") or "").strip()
    split = (row.get("split") or "train").strip().lower() if "split" in row else "train"
    if not image or not label:
      raise UserError(f"{FLAG}={path} line {line}: empty {'path' if not image else 'label'}; "
                      "every row needs a path and a label")
    if split not in SPLITS:
      raise UserError(f"{FLAG}={path} line {line}: unknown split {split!r}; use one of "
                      f"{', '.join(SPLITS)}")
    file = image if os.path.isabs(image) else os.path.join(base, image)
    if not os.path.isfile(file):
      raise UserError(f"{FLAG}={path} line {line}: image {image} does not exist ({file})")
    entries.append((line, file, label, split))
  ids, class_names = _class_ids(entries, path)
  if len(set(ids.values())) < 2 or max(ids.values()) < 1:
    raise UserError(f"{FLAG}={path}: every row has the label {entries[0][2]!r}; a classifier "
                    "needs at least 2 classes")
  splits = {s: LabelledFiles() for s in SPLITS}
  for _, file, label, split in entries:
    splits[split].add(file, ids[label])
  return build_raw(splits, num_classes=len(ids) if class_names else max(ids.values()) + 1,
                   class_names=class_names, options=options, where=f"{WHERE} {FLAG}={path}")


def _read_rows(path: str) -> list[tuple[int, dict[str, str]]]:
  """(line number, row by lower-case column name) of every non-blank row after the header."""
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      reader = csv.reader(f)
      header = next(reader, None)
      if header is None:
        raise UserError(f"{FLAG}={path} is empty: give a header row path,label[,split] and one "
                        "row per image")
      columns = [c.strip().lower() for c in header]
      missing = [c for c in REQUIRED_COLUMNS if c not in columns]
      if missing:
        raise UserError(f"{FLAG}={path} lacks the column{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(missing)} (header: {', '.join(header) or 'empty'}); the first "
                        "row must name path,label[,split]")
      rows = []
      for values in reader:
        if any(v.strip() for v in values):
          rows.append((reader.line_num, dict(zip(columns, values))))
  except (UnicodeDecodeError, csv.Error) as e:
    raise UserError(f"{FLAG}={path} is not a readable UTF-8 CSV ({type(e).__name__}: "
                    f"{first_line(e)})") from e
  if not rows:
    raise UserError(f"{FLAG}={path} has a header but no rows: add one row per image")
  return rows


def _class_ids(entries, path: str) -> tuple[dict[str, int], list[str] | None]:
  """label text -> class id, and the class names (None when the labels are integer ids)."""
  labels = {label for _, _, label, _ in entries}
  train = {label for _, _, label, split in entries if split == "train"}
  if all(_is_int(label) for label in labels):
    ids = {label: int(label) for label in labels}
    bad = [label for label in labels if not 0 <= ids[label] <= MAX_CLASS_ID]
    if bad:
      raise UserError(f"{FLAG}={path}: label {bad[0]} is not a class id in [0, {MAX_CLASS_ID}]; "
                      "number the classes 0..K-1 (or use class names)")
    have = {ids[label] for label in train}
    missing = [c for c in range(max(ids.values()) + 1) if c not in have]
    if missing:
      raise UserError(f"{FLAG}={path}: class id {missing[0]} of 0..{max(ids.values())} has no "
                      "training row; integer labels must be 0..K-1 with every class in train")
    return ids, None
  unknown = sorted(labels - train)
  if unknown:
    line = next(line for line, _, label, _ in entries if label == unknown[0])
    raise UserError(f"{FLAG}={path} line {line}: label {unknown[0]!r} has no training row "
                    "(every test/probe class must also be a train class)")
  names = sorted(train)
  return {name: i for i, name in enumerate(names)}, names


def _is_int(text: str) -> bool:
  try:
    int(text)
  except ValueError:
    return False
  return True
