"""A test hook that freezes the process at a named point, so a test can kill it exactly there.

Set `IEG_TEST_PAUSE_AT=<point>:<step>`; when training reaches that point the process stops itself
with SIGSTOP. The test waits for the stop (`os.waitpid(pid, os.WUNTRACED)`), then sends SIGKILL
(a crash there) or SIGTERM followed by SIGCONT (a preemption there). Points:

  step:N        step N's update is done, nothing of it is saved yet
  checkpoint:N  checkpoint N's files are written but not yet listed as a checkpoint
  evaluation:N  the evaluation after step N has started (its first test batch is done)

Unset (always, outside tests), every call is a dictionary lookup and does nothing.
"""
import os
import signal

ENV = "IEG_TEST_PAUSE_AT"
POINTS = ("step", "checkpoint", "evaluation")


def _requested() -> tuple[str, int] | None:
  value = os.environ.get(ENV, "")
  point, _, step = value.partition(":")
  if point not in POINTS or not step.isdigit():
    return None
  return point, int(step)


def active() -> bool:
  return _requested() is not None


def pause_if_requested(point: str, step: int) -> None:
  """Stops this process (SIGSTOP) when `IEG_TEST_PAUSE_AT` names this point and step."""
  if _requested() == (point, step):
    os.kill(os.getpid(), signal.SIGSTOP)
