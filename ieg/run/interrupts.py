"""Preemption: SIGTERM (or Ctrl-C) during training saves a checkpoint at the current step and stops.

Schedulers send SIGTERM some seconds before they kill a job. The handler only records the signal;
the training loop acts on it at the next step boundary (or right after an evaluation in progress),
saves a checkpoint and exits with status `EXIT_INTERRUPTED`, the sysexits code for "temporary
failure, try again": rerunning the same command resumes exactly where the run stopped. A second
Ctrl-C stops at once, as Python's default does.
"""
import contextlib
import logging
import signal
import threading

# sysexits.h EX_TEMPFAIL: the run did not finish but can be resumed by running it again.
EXIT_INTERRUPTED = 75
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(Exception):
  """Training stopped on a signal after saving a checkpoint; main() exits with `exit_code`."""

  def __init__(self, signal_name: str, step: int, checkpoint: str | None):
    saved = f"checkpoint {checkpoint} saved" if checkpoint else "no checkpoint could be saved"
    super().__init__(f"stopped by {signal_name} at step {step}; {saved}: run the same command again to resume")
    self.step = step
    self.exit_code = EXIT_INTERRUPTED


class SignalWatch:
  """Records the first SIGTERM/SIGINT while active; `received` names it (None before)."""

  def __init__(self):
    self.received: str | None = None

  def _handle(self, signum, frame):
    del frame
    name = signal.Signals(signum).name
    if self.received and signum == signal.SIGINT:
      raise KeyboardInterrupt  # a second Ctrl-C: the user does not want to wait for the checkpoint
    if not self.received:
      logging.warning("received %s: saving a checkpoint at the end of this step, then stopping", name)
    self.received = name


@contextlib.contextmanager
def watch_signals(enabled: bool = True):
  """Installs the handlers for the duration of the block (main thread only) and restores the old ones.

  Disabled, the signals keep their default effect; multi-worker runs need that, as one worker
  cannot write a checkpoint that all workers must write together.
  """
  watch = SignalWatch()
  if not enabled or threading.current_thread() is not threading.main_thread():
    yield watch  # signal handlers can only be set from the main thread; keep the defaults
    return
  previous = {s: signal.signal(s, watch._handle) for s in SIGNALS}  # pylint: disable=protected-access
  try:
    yield watch
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
