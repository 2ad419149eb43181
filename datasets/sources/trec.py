"""TREC question classification (Li and Roth, 2002): six coarse classes, questions as token ids.

The two official files go into `<data_dir>/trec/` and are checked against their published sha256:
`train_5500.label` (5452 questions) and `TREC_10.label` (500). Each line is
`COARSE:fine question words`, Latin-1 encoded. As in pytorch-SIGUA (torchtext's TREC), the label
is the coarse class, the text is lower-cased and split on whitespace, the vocabulary is every
training token, and every question becomes 300 ids (padded or cut).
"""
from __future__ import annotations

import os

import numpy as np

from core.errors import UserError
from datasets import text as text_lib
from datasets.sources import archives
from datasets.sources.registry import KIND_TEXT, RawDataset, register_source

NAME = "trec"
TRAIN_FILE, TEST_FILE = "train_5500.label", "TREC_10.label"
# The sha256 published for the official CogComp files.
SHA256 = {
    TRAIN_FILE: "9e4c8bdcaffb96ed61041bd64b564183d52793a8e91d84fc3a8646885f466ec3",
    TEST_FILE: "033f22c028c2bbba9ca682f68ffe204dc1aa6e1cf35dd6207f2d4ca67f0d0e8e",
}
DOWNLOAD_FROM = "https://cogcomp.seas.upenn.edu/Data/QA/QC/"
# Coarse classes in alphabetical order (torchtext orders them by frequency; the order is only a
# naming of the class indices).
COARSE_CLASSES = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
SEQUENCE_LENGTH = text_lib.DEFAULT_SEQUENCE_LENGTH


def read_trec_file(path: str) -> tuple[np.ndarray, list[list[str]]]:
  """(coarse label ids int64 [N], token lists) of one TREC .label file."""
  labels, tokens = [], []
  index = {name: i for i, name in enumerate(COARSE_CLASSES)}
  with open(path, "rb") as f:
    for line_number, line in enumerate(f, start=1):
      # torchtext blanks byte 0xf0 before decoding; doing the same keeps its token boundaries.
      line = line.replace(b"\xf0", b" ").decode("latin-1").strip()
      if not line:
        continue
      label, _, question = line.partition(" ")
      coarse = label.split(":", 1)[0]
      if coarse not in index or ":" not in label or not question.strip():
        raise UserError(
            f"{path}:{line_number}: not a TREC line 'COARSE:fine question' ({line[:60]!r}); the "
            f"file is damaged or not the official one: download it again from {DOWNLOAD_FROM}")
      labels.append(index[coarse])
      tokens.append(text_lib.tokenize(question))
  return np.asarray(labels, np.int64), tokens


def _verify(path: str) -> None:
  name = os.path.basename(path)
  actual = archives.file_digest(path, "sha256")
  if actual != SHA256[name]:
    raise UserError(
        f"{path}: sha256 checksum mismatch (got {actual}, the published {name} has "
        f"{SHA256[name]}). The file is damaged or not the official one: delete it and download "
        f"it again from {DOWNLOAD_FROM}{name}.")


def trec_paths(data_dir: str | None) -> tuple[str, str]:
  """The train and test file paths; one UserError naming both files when any is missing."""
  folder = os.path.join(data_dir or "<data_dir>", NAME)
  paths = (os.path.join(folder, TRAIN_FILE), os.path.join(folder, TEST_FILE))
  missing = [os.path.basename(p) for p in paths if not data_dir or not os.path.isfile(p)]
  if missing:
    raise UserError(
        f"--dataset: TREC needs {TRAIN_FILE} and {TEST_FILE} in {folder}/ ({', '.join(missing)} "
        f"not found). Download both from {DOWNLOAD_FROM} into that folder"
        + ("" if data_dir else " and pass --data_dir=<data_dir>") + ".")
  return paths


@register_source(NAME, kind=KIND_TEXT)
def load_trec(data_dir: str | None, dataset_file: str | None = None) -> RawDataset:
  """Token ids int32 [N, 300] (train 5452, test 500), coarse labels, the training vocabulary."""
  del dataset_file
  train_path, test_path = trec_paths(data_dir)
  for path in (train_path, test_path):
    _verify(path)
  y_train, train_tokens = read_trec_file(train_path)
  y_test, test_tokens = read_trec_file(test_path)
  vocabulary = text_lib.build_vocabulary(train_tokens)
  return RawDataset(
      x_train=text_lib.encode_texts(train_tokens, vocabulary, SEQUENCE_LENGTH), y_train=y_train,
      x_test=text_lib.encode_texts(test_tokens, vocabulary, SEQUENCE_LENGTH), y_test=y_test,
      num_classes=len(COARSE_CLASSES), class_names=list(COARSE_CLASSES),
      vocabulary=list(vocabulary.tokens))
