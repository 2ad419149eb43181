"""One process per run directory: a lock file that names its holder and dies with it.

The holder keeps an exclusive `flock` on `<run_dir>/run.lock`, which also holds its pid, host and
start time for the message a second run gets. The kernel drops the lock when the holder exits in
any way (SIGKILL and crashes included), so a lock left by a dead run is simply taken over; no pid
guessing is needed on the same host. Where the file system has no working `flock` (some network
mounts), the lock falls back to checking the recorded pid on this host.

Workers of one `multi_worker` run share the run directory, so each takes its own lock file named
after its TF_CONFIG task.
"""
import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time

from core.errors import UserError

LOCK_FILE = "run.lock"


def lock_file_name() -> str:
  """`run.lock`, or `run.<type>-<index>.lock` for a multi-worker task named in TF_CONFIG."""
  try:
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
  except ValueError:
    task = {}
  if task.get("type") and task.get("type") != "chief":
    return f"run.{task['type']}-{task.get('index', 0)}.lock"
  return LOCK_FILE


class RunLock:
  """Exclusive use of a run directory by this process; `acquire` refuses a live other holder."""

  def __init__(self, run_dir: str, name: str = LOCK_FILE):
    self.run_dir = run_dir
    self.path = os.path.join(run_dir, name)
    self._fd: int | None = None
    self._created_dirs: list[str] = []

  def acquire(self) -> "RunLock":
    self._make_run_dir()
    for _ in range(10):  # a holder may release (unlink) between our open and flock: then retry
      fd = self._open()
      try:
        if not self._lock(fd):
          raise UserError(self._busy_message(_read_holder(fd)))
        if _same_file(fd, self.path):
          break
      except BaseException:
        os.close(fd)
        raise
      os.close(fd)
    else:
      raise UserError(f"could not lock {self.path}: it keeps being replaced; is another run starting there?")
    previous = _read_holder(fd)
    if previous and previous.get("pid") != os.getpid():
      logging.warning("taking over %s from a run that is no longer alive (pid %s on %s, started %s)", self.path,
                      previous.get("pid"), previous.get("host"), previous.get("started"))
    _write_holder(fd)
    self._fd = fd
    return self

  def release(self) -> None:
    if self._fd is None:
      return
    with contextlib.suppress(OSError):
      os.unlink(self.path)  # while still locked: a waiting process then sees a replaced file and retries
    os.close(self._fd)
    self._fd = None
    for directory in reversed(self._created_dirs):  # a run that wrote nothing leaves no empty folders
      with contextlib.suppress(OSError):
        os.rmdir(directory)

  def __enter__(self) -> "RunLock":
    return self.acquire()

  def __exit__(self, *exc_info) -> None:
    self.release()

  def _make_run_dir(self) -> None:
    missing, directory = [], os.path.abspath(self.run_dir)
    while directory and not os.path.isdir(directory) and directory != os.path.dirname(directory):
      missing.append(directory)
      directory = os.path.dirname(directory)
    try:
      os.makedirs(self.run_dir, exist_ok=True)
    except OSError as e:
      raise UserError(f"cannot create the run directory {self.run_dir} ({e.strerror}): choose a --checkpoint_path "
                      "you can write to") from e
    self._created_dirs = list(reversed(missing))

  def _open(self) -> int:
    try:
      return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise UserError(f"cannot write to the run directory {self.run_dir} ({e.strerror}): choose a "
                      "--checkpoint_path you can write to") from e

  def _lock(self, fd: int) -> bool:
    """True when this process now holds the lock; False when a live process does."""
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      return True
    except OSError as e:
      if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        return False
      logging.warning("%s: file locks unsupported here (%s); checking the recorded process instead", self.path,
                      e.strerror)
      return not _holder_alive(_read_holder(fd))

  def _busy_message(self, holder: dict) -> str:
    who = (f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')}"
           if holder else "a process that is still starting")
    return (f"another run ({who}) is using {self.run_dir}: wait for it to finish or stop it, or use another "
            f"--checkpoint_path (its lock file is {self.path})")


def _read_holder(fd: int) -> dict:
  try:
    os.lseek(fd, 0, os.SEEK_SET)
    return json.loads(os.read(fd, 4096).decode("utf-8") or "{}")
  except (OSError, ValueError):
    return {}


def _write_holder(fd: int) -> None:
  holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
  os.ftruncate(fd, 0)
  os.lseek(fd, 0, os.SEEK_SET)
  os.write(fd, json.dumps(holder).encode("utf-8"))


def _same_file(fd: int, path: str) -> bool:
  try:
    here, there = os.fstat(fd), os.stat(path)
  except OSError:
    return False
  return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _holder_alive(holder: dict) -> bool:
  """Without flock: a recorded pid on this host that still exists (another host counts as alive)."""
  if not holder or holder.get("pid") == os.getpid():
    return False
  if holder.get("host") != socket.gethostname():
    return True
  try:
    os.kill(int(holder["pid"]), 0)
  except ProcessLookupError:
    return False
  except (OSError, ValueError, KeyError):
    return True
  return True
