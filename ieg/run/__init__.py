"""The run directory's mechanics: checkpoints, the lock, its files, signals and the training callbacks.

`files` (flags.json, results.json, the JSON log, written atomically), `lock` (one process per run
directory), `compat` (does a command fit the run it points at), `checkpoints` (save, restore, fall
back past a corrupt file), `interrupts` (SIGTERM saves and stops), `callbacks` and
`guard_callbacks` (the Keras callbacks of a run) and `fault_points` (the test hook that freezes a
run at a named point). Nothing here knows a method, a network or a dataset.
"""
from ieg.run.interrupts import Interrupted, watch_signals
from ieg.run.lock import RunLock

__all__ = ["Interrupted", "RunLock", "watch_signals"]
