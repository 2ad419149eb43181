"""The tf.data input of a run, by data kind: in-memory images, token ids or streamed image files.

Each kind brings its own pipeline module; this table picks one, so the experiment never asks which
kind of data it trains on.
"""
from typing import Callable

import tensorflow as tf

from datasets.pipelines import files as pipeline_files
from datasets.pipelines import images as pipeline
from datasets.pipelines import text as pipeline_text


def _image_train(data, *, batch_size: int, seed: int, start_step: int, with_probe: bool,
                 strong_aug_type: str | None) -> tf.data.Dataset:
  augmentation = pipeline.augmentation_for(data.spec.name, data.image_shape)
  probe = {}
  if with_probe:
    probe = {"probe_images": data.x_probe, "probe_labels": data.y_probe, "probe_batch_size": batch_size}
  return pipeline.train_dataset(data.x_train, data.y_train, batch_size=batch_size, seed=seed, start_step=start_step,
                                strong_aug_type=strong_aug_type, **augmentation, **probe)


def _text_train(data, *, batch_size: int, seed: int, start_step: int, with_probe: bool,
                strong_aug_type: str | None) -> tf.data.Dataset:
  del strong_aug_type  # text has no strong view (refused before training)
  probe = {}
  if with_probe:
    probe = {"probe_tokens": data.x_probe, "probe_labels": data.y_probe, "probe_batch_size": batch_size}
  return pipeline_text.train_dataset(data.x_train, data.y_train, batch_size=batch_size, seed=seed,
                                     start_step=start_step, **probe)


def _file_train(data, *, batch_size: int, seed: int, start_step: int, with_probe: bool,
                strong_aug_type: str | None) -> tf.data.Dataset:
  return pipeline_files.train_dataset(
      data.train, data.y_train, batch_size=batch_size, seed=seed, start_step=start_step,
      image_size=data.image_shape[0], view=data.train_view, strong=strong_aug_type is not None,
      probe=data.probe if with_probe else None, probe_batch_size=batch_size,
      examples_per_class_per_epoch=data.examples_per_class_per_epoch)


TRAIN_INPUTS: dict[str, Callable[..., tf.data.Dataset]] = {
    "images": _image_train, "text": _text_train, "image_files": _file_train}
EVAL_INPUTS: dict[str, Callable[..., tf.data.Dataset]] = {
    "images": lambda data, batch_size: pipeline.eval_dataset(data.x_test, data.y_test, batch_size=batch_size),
    "text": lambda data, batch_size: pipeline_text.eval_dataset(data.x_test, data.y_test, batch_size=batch_size),
    "image_files": lambda data, batch_size: pipeline_files.eval_dataset(data.test, batch_size=batch_size,
                                                                        image_size=data.image_shape[0]),
}


def train_dataset(data, *, batch_size: int, seed: int, start_step: int, with_probe: bool = False,
                  strong_aug_type: str | None = None) -> tf.data.Dataset:
  """Global batches from `start_step` on (a stateless function of (seed, step)), with probe batches
  when `with_probe` and a strong view of type `strong_aug_type` when given."""
  return TRAIN_INPUTS[data.kind](data, batch_size=batch_size, seed=seed, start_step=start_step,
                                 with_probe=with_probe, strong_aug_type=strong_aug_type)


def eval_dataset(data, batch_size: int) -> tf.data.Dataset:
  """The test set in order, in batches of `batch_size`."""
  return EVAL_INPUTS[data.kind](data, batch_size)
