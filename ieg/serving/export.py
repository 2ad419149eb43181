"""A SavedModel of a run's evaluation model: raw inputs in (uint8 images, or int32 token ids for text),
float32 class probabilities out, with the evaluation pipeline's normalisation inside.

The weights are a snapshot of what evaluation uses (the EMA shadows with --use_ema, the network's
own BatchNorm statistics), copied into plain variables of a small tf.Module: loading needs only
TensorFlow, not this project. The folder is written as `<dir>.tmp` and renamed, with
model_info.json last, so an interrupted export never looks complete.
"""
import json
import logging
import os
import shutil

import keras
import numpy as np
import tensorflow as tf

from core.errors import UserError
from datasets.augment import strong_view
from datasets.pipelines import images as pipeline
from ieg.run import compat as run_compat
from ieg.serving import paths

# Data kind -> (input dtype, the evaluation pipeline's map from raw input to network input).
INPUTS = {
    "images": (tf.uint8, pipeline.to_unit_range),
    "text": (tf.int32, lambda tokens: tokens),
    "image_files": (tf.uint8, lambda images: tf.map_fn(
        lambda image: strong_view.imagenet_eval_view(image, images.shape[1]), images,
        fn_output_signature=tf.float32)),
}


def evaluation_weights(model) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """(trainable, non-trainable) values `model.evaluation_logits` computes with, as numpy arrays."""
  network = model.network
  trainable = model.ema_weights if model.ema_weights else network.trainable_variables
  as_numpy = lambda variables: [np.asarray(keras.ops.convert_to_numpy(v)) for v in variables]
  return as_numpy(trainable), as_numpy(network.non_trainable_variables)


class ServingModule(tf.Module):
  """`serve(inputs)` -> probabilities [N, K] with frozen copies of the evaluation weights."""

  def __init__(self, network: keras.Model, trainable: list[np.ndarray], non_trainable: list[np.ndarray],
               input_shape: tuple[int, ...], kind: str):
    super().__init__(name="serving")
    dtype, normalise = INPUTS[kind]
    self.trainable_weights = [tf.Variable(v, trainable=False, name=f"w_{i}") for i, v in enumerate(trainable)]
    self.state_weights = [tf.Variable(v, trainable=False, name=f"s_{i}") for i, v in enumerate(non_trainable)]
    spec = tf.TensorSpec([None, *input_shape], dtype, name="inputs")

    # The network is reached through this closure only, so the SavedModel holds the copies above and
    # not the training model's own variables.
    def probabilities(inputs):
      logits, _ = network.stateless_call([tf.convert_to_tensor(v) for v in self.trainable_weights],
                                         [tf.convert_to_tensor(v) for v in self.state_weights],
                                         normalise(inputs), training=False)
      return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)

    self.serve = tf.function(probabilities, input_signature=[spec])
    self.serving_default = tf.function(lambda inputs: {"probabilities": probabilities(inputs)},
                                       input_signature=[spec])


def serving_module(run) -> ServingModule:
  trainable, non_trainable = evaluation_weights(run.model)
  return ServingModule(run.model.network, trainable, non_trainable, tuple(run.data.image_shape), run.data.kind)


def class_names(data) -> list[str]:
  names = getattr(data, "class_names", None)
  return [str(n) for n in names] if names else [str(c) for c in range(data.num_classes)]


def model_info(run, step: int) -> dict:
  config, data = run.config, run.data
  dtype, _ = INPUTS[data.kind]
  shape = list(map(int, data.image_shape))
  return {"input_shape": [None, *shape], "input_dtype": dtype.name, "input_kind": data.kind,
          **({"sequence_length": shape[0]} if data.kind == "text" else {"image_shape": shape}),
          "num_classes": int(data.num_classes),
          "dataset": config.dataset, "method": config.method, "network_name": config.network_name,
          "step": int(step), "use_ema": bool(run.model.ema_weights), "output": "float32 probabilities [N, num_classes]",
          "signature": "serve(inputs) or signatures['serving_default'](inputs=...)['probabilities']"}


def write_export(run, export_dir: str, step: int) -> str:
  """Writes the SavedModel, class_names.json and model_info.json into `export_dir`; returns it."""
  paths.check_export_dir(export_dir)
  target = os.path.normpath(os.path.abspath(export_dir))
  temp, old = target + ".tmp", target + ".old"
  try:
    shutil.rmtree(temp, ignore_errors=True)
    module = serving_module(run)
    tf.saved_model.save(module, temp, signatures={"serving_default": module.serving_default})
    _write_json(os.path.join(temp, paths.CLASS_NAMES_FILE), class_names(run.data))
    _write_json(os.path.join(temp, paths.MODEL_INFO_FILE), model_info(run, step))
    if os.path.isdir(target):
      if os.listdir(target):   # a previous export (checked above): moved aside, removed after the swap
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
      else:
        os.rmdir(target)
    os.replace(temp, target)
    shutil.rmtree(old, ignore_errors=True)
  except OSError as e:
    shutil.rmtree(temp, ignore_errors=True)
    raise UserError(f"cannot write --export_dir={export_dir} ({e.strerror or e}): choose a folder you can "
                    "write to") from e
  return target


def _write_json(path: str, payload) -> None:
  with open(path, "w", encoding="utf-8") as f:
    json.dump(payload, f, indent=2)
    f.write("\n")


def export_from_checkpoint(run) -> dict:
  """`--mode=export`: restores the newest (or --restore_step) checkpoint and exports it."""
  current = {**run.config.to_json(), "num_classes": run.data.num_classes}
  run_compat.check_evaluation_target(run.config.run_dir, current)
  hint = run_compat.mismatch_hint(run_compat.read_saved_flags(run.config.run_dir), current)
  step = run.store.restore(run.config.restore_step, require=True, mismatch_hint=hint)
  target = write_export(run, run.config.export_dir, step)
  print(f"[Export] step {step}: {target}")
  return {"step": step, "export_dir": target}


def export_after_training(run, is_chief: bool) -> None:
  """The end of a training run with --export_dir: the chief exports the final weights."""
  if not run.config.export_dir or not is_chief:
    return
  step = int(run.model.optimizer.iterations.numpy())
  target = write_export(run, run.config.export_dir, step)
  logging.info("exported step %d to %s", step, target)
  print(f"[Export] step {step}: {target}")
