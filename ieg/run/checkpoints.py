"""Checkpoints of the model, optimizer and method state, with a fallback past a corrupt latest file.

A checkpoint is the explicit, ordered list of a method's variables (`Method.checkpoint_variables`):
Keras 3 objects are not reliably reachable through TensorFlow's object graph (EMA shadows and other
plain attributes would be silently left out), and a strict match on restore tells a checkpoint of
another network apart from a readable one.

`tf.train.CheckpointManager` writes the data files first (into a `_temp` folder, then renamed) and
the list of checkpoints (the `checkpoint` file, replaced atomically) last, so a run killed while
saving leaves the previous checkpoints intact and listed; an unlisted half-written checkpoint is
ignored and later overwritten. A failed write (full disk) removes its partial files and stops the
run with the name of the checkpoint it will resume from. An unreadable list is rebuilt from the
checkpoint files in the folder instead of silently starting afresh.
"""
import glob
import logging
import os
import re
import shutil
import time

import tensorflow as tf

from core.errors import UserError
from ieg.run import fault_points

KEEP = 4
PREFIX = "ckpt"
STATE_FILE = "checkpoint"  # tf.train.CheckpointManager's list of checkpoints


class CheckpointStore:
  """Saves every evaluation step (keeps the last KEEP) and restores the newest readable one."""

  def __init__(self, directory: str, variables: dict[str, list]):
    self.directory = directory
    self.checkpoint = tf.train.Checkpoint(**{name: [_tf_variable(v) for v in group] for name, group in variables.items()})
    _rebuild_unreadable_state(directory)
    self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=KEEP, checkpoint_name=PREFIX)

  def save(self, step: int) -> str:
    """Writes checkpoint `step`; on failure removes its partial files and raises a UserError."""
    prefix = os.path.join(self.directory, f"{PREFIX}-{step}")
    pause = tf.train.CheckpointOptions(
        experimental_write_callbacks=[lambda path: fault_points.pause_if_requested("checkpoint", step)])
    try:
      return self.manager.save(checkpoint_number=step, options=pause)
    except (tf.errors.OpError, OSError) as e:
      self._remove_unlisted(prefix)
      previous = self.latest_path()
      resume = (f"rerunning the same command resumes from {previous}, which is intact" if previous
                else "no earlier checkpoint exists")
      raise UserError(f"could not write checkpoint {prefix} ({_first_line(e)}): the disk is probably full or the "
                      f"folder not writable; free space on it and {resume}") from e

  def latest_path(self) -> str | None:
    """The newest checkpoint listed on disk (what a rerun would try first), or None."""
    listed = _listed_paths(self.directory)
    return listed[-1] if listed else None

  def remove_unfinished(self) -> None:
    """Deletes what killed writes left: `_temp` folders and checkpoint files that were never listed."""
    listed = {os.path.basename(p) for p in _listed_paths(self.directory)}
    for temp in glob.glob(os.path.join(glob.escape(self.directory), f"{PREFIX}-*_temp")):
      shutil.rmtree(temp, ignore_errors=True)
    for index in glob.glob(os.path.join(glob.escape(self.directory), f"{PREFIX}-*.index")):
      prefix = index[:-len(".index")]
      if os.path.basename(prefix) not in listed:
        self._remove_unlisted(prefix)

  def _remove_unlisted(self, prefix: str) -> None:
    shutil.rmtree(prefix + "_temp", ignore_errors=True)
    if os.path.basename(prefix) in {os.path.basename(p) for p in _listed_paths(self.directory)}:
      return
    for path in glob.glob(glob.escape(prefix) + ".index") + glob.glob(glob.escape(prefix) + ".data-*"):
      try:
        os.remove(path)
      except OSError:
        pass

  def available_steps(self) -> list[int]:
    return [_step_of(p) for p in self.manager.checkpoints]

  def restore(self, step: int = 0, require: bool = False, mismatch_hint: str = "") -> int | None:
    """Restores checkpoint `step` (0: the newest readable one). Returns its step, or None if none exists.

    `mismatch_hint` is added to the error for a checkpoint that does not fit the model (e.g. the
    settings that differ from the run that wrote it).
    """
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
      status = None
      try:
        status = self.checkpoint.restore(path)
        status.assert_consumed()
      except (ValueError, AssertionError, tf.errors.OpError) as e:  # missing/extra variables, shapes, dtypes
        if status is not None:
          status.expect_partial()  # else TensorFlow lists every unused value on stderr at exit
        hint = mismatch_hint or "it was written with another --network_name, --method or dataset"
        raise UserError(f"checkpoint {path} does not fit this model ({_first_line(e)}): {hint}; use a fresh "
                        "--checkpoint_path or the settings of that run") from e
      return _step_of(path)
    raise UserError(f"every checkpoint in {self.directory} is unreadable: delete the directory to start afresh",
                    exit_code=1)


def _listed_paths(directory: str) -> list[str]:
  """Checkpoint prefixes listed in the state file, oldest first ([] when absent or unreadable)."""
  try:
    state = tf.train.get_checkpoint_state(directory)
  except Exception:  # pylint: disable=broad-except  (a damaged state file fails in several ways)
    return []
  return list(state.all_model_checkpoint_paths) if state else []


def _rebuild_unreadable_state(directory: str) -> None:
  """Replaces a damaged state file by one listing the newest KEEP checkpoint files in `directory`.

  Without this, TensorFlow reads a damaged list as "no checkpoint" and the run would silently
  start again from step 0 (and later delete the good files).
  """
  state_path = os.path.join(directory, STATE_FILE)
  if not os.path.isfile(state_path) or _listed_paths(directory):
    return
  pattern = re.compile(rf"^{PREFIX}-(\d+)\.index$")
  steps = sorted(int(m.group(1)) for m in map(pattern.match, os.listdir(directory)) if m)
  names = [f"{PREFIX}-{s}" for s in steps[-KEEP:]]
  logging.warning("the checkpoint list %s is unreadable (kept as %s.bad); %s", state_path, state_path,
                  f"rebuilt it from the files {', '.join(names)}" if names else "there are no checkpoint files")
  os.replace(state_path, state_path + ".bad")
  if not names:
    return
  # CheckpointManager only manages entries younger than last_preserved_timestamp, hence the times.
  now = time.time()
  lines = [f'model_checkpoint_path: "{names[-1]}"']
  lines += [f'all_model_checkpoint_paths: "{n}"' for n in names]
  lines += [f"all_model_checkpoint_timestamps: {now - len(names) + i:.3f}" for i in range(len(names))]
  lines.append(f"last_preserved_timestamp: {now - len(names) - 1:.3f}")
  temp = state_path + ".tmp"
  with open(temp, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  os.replace(temp, state_path)


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
  """The first line of an error, without TensorFlow's `{{function_node ...}}` prefix."""
  text = re.sub(r"\{\{[^}]*\}\}\s*", "", str(error)).strip()
  return text.splitlines()[0] if text else type(error).__name__
