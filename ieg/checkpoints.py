"""Checkpoints of the model, optimizer and method state, with a fallback past a corrupt latest file.

A checkpoint is the explicit, ordered list of a method's variables (`Method.checkpoint_variables`):
Keras 3 objects are not reliably reachable through TensorFlow's object graph (EMA shadows and other
plain attributes would be silently left out), and a strict match on restore tells a checkpoint of
another network apart from a readable one.

`tf.train.CheckpointManager` writes the data files first and the index of checkpoints last, so a
run killed while saving leaves the previous checkpoints intact and listed.
"""
import logging
import os

import tensorflow as tf

from ieg.errors import UserError

KEEP = 4
PREFIX = "ckpt"


class CheckpointStore:
  """Saves every evaluation step (keeps the last KEEP) and restores the newest readable one."""

  def __init__(self, directory: str, variables: dict[str, list]):
    self.directory = directory
    self.checkpoint = tf.train.Checkpoint(**{name: [_tf_variable(v) for v in group] for name, group in variables.items()})
    self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=KEEP, checkpoint_name=PREFIX)

  def save(self, step: int) -> str:
    return self.manager.save(checkpoint_number=step)

  def available_steps(self) -> list[int]:
    return [_step_of(p) for p in self.manager.checkpoints]

  def restore(self, step: int = 0, require: bool = False) -> int | None:
    """Restores checkpoint `step` (0: the newest readable one). Returns its step, or None if none exists."""
    paths = list(reversed(self.manager.checkpoints))
    if step:
      paths = [p for p in paths if _step_of(p) == step]
      if not paths:
        raise UserError(f"--restore_step={step} has no checkpoint in {self.directory}: "
                        f"saved steps are {self.available_steps() or 'none'}")
    if not paths:
      if require:
        raise UserError(f"no checkpoint found in {self.directory}: train first (--mode=train) or point "
                        "--checkpoint_path/--dataset/--network_name/--method at a trained run", exit_code=1)
      return None
    for path in paths:
      problem = _unreadable(path)
      if problem:
        logging.warning("checkpoint %s is unreadable (%s); trying the previous one", path, problem)
        continue
      try:
        self.checkpoint.restore(path).assert_consumed()
      except (ValueError, AssertionError) as e:
        raise UserError(f"checkpoint {path} does not fit this model ({_first_line(e)}): it was written with "
                        "another --network_name, --method or dataset; use a fresh --checkpoint_path") from e
      return _step_of(path)
    raise UserError(f"every checkpoint in {self.directory} is unreadable: delete the directory to start afresh",
                    exit_code=1)


def _unreadable(path: str) -> str | None:
  """Why the checkpoint at `path` cannot be read in full (truncated, corrupt, missing), or None."""
  try:
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except Exception as e:  # pylint: disable=broad-except  (the reader raises many kinds for a damaged file)
    return _first_line(e)
  return None


def _tf_variable(variable):
  """The tf.Variable behind a Keras 3 variable."""
  return getattr(variable, "value", variable) if not isinstance(variable, tf.Variable) else variable


def _step_of(path: str) -> int:
  return int(os.path.basename(path).rsplit("-", 1)[1])


def _first_line(error: Exception) -> str:
  return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
