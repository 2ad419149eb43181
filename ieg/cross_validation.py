"""--mode=find_issues: out-of-sample class probabilities by K-fold cross-validation, then the label issues.

A model scores its own training labels too kindly: it has fitted many of the wrong ones. Here K models
train with the chosen method and network, each on K-1 folds (the usual flags set each fold's budget),
and each scores only the fold it never saw. Fold k trains in <run_dir>/folds/fold_k_of_K/ as an
ordinary run, so an interrupted search resumes where it stopped and a finished fold is not retrained.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Callable

import numpy as np

from core.errors import UserError
from datasets import folds as folds_lib
from ieg.config import RunConfig
from ieg.reports import issue_files
from ieg.reports import writer as reports

FOLDS_DIR = "folds"


def fold_config(config: RunConfig, fold: int) -> RunConfig:
  """Fold `fold`'s own run: the same settings, trained (not searched) in a directory of its own."""
  root = os.path.join(config.run_dir, FOLDS_DIR, f"fold_{fold + 1}_of_{config.cross_val_folds}")
  return dataclasses.replace(config, mode="train", checkpoint_path=root, export_dir=None)


def find_issues(run, train_fold: Callable) -> dict:
  """Trains the folds through `train_fold(config, data) -> trained run`, writes <run_dir>/detection/*."""
  config, data = run.config, run.data
  if data.kind not in reports.ORDERED_TRAINING_SETS:
    raise UserError(f"--mode=find_issues does not score streamed image files (--dataset={config.dataset}) yet: "
                    "use an in-memory dataset (folder, csv, custom .npz)")
  fold_of = folds_lib.assign_folds(data.y_train, config.cross_val_folds, config.seed)
  probs = np.zeros((data.num_train, data.num_classes), np.float32)
  step = 0
  for fold in range(config.cross_val_folds):
    held_out = np.flatnonzero(fold_of == fold)
    logging.info("fold %d of %d: training on %d examples, scoring %d", fold + 1, config.cross_val_folds,
                 data.num_train - len(held_out), len(held_out))
    trained = train_fold(fold_config(config, fold), data.training_subset(np.flatnonzero(fold_of != fold)))
    step = trained.max_iteration
    probs[held_out] = reports.training_probabilities(trained.model, data.training_subset(held_out),
                                                     config.val_batch_size)
  os.makedirs(config.run_dir, exist_ok=True)
  estimate = issue_files.write_label_issues(config.run_dir, probs, data, reports.read_noise(config.run_dir, data),
                                            step=step, scored="out_of_sample")
  estimate["folds"] = config.cross_val_folds
  found = os.path.join(config.run_dir, issue_files.DETECTION_DIR)
  print(f"[find_issues] {estimate['num_flagged']} of {estimate['num_examples']} labels flagged (estimated noise "
        f"{estimate['estimated_noise_rate']:.3f}); see {found}/label_issues.csv")
  return estimate
