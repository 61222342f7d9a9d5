"""One writer per run directory: an exclusive lock held while a run or a resume is alive.

The lock is ``fcntl.flock`` on ``RUN_DIR/.lock``, which also records the holder's PID for the
message another writer gets. The operating system drops a flock when its process ends, however
it ends, so the lock of a run killed with kill -9 is simply free: the next run or resume takes
it over, with no stale-lock guessing.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from evofool.errors import EvofoolError

LOCK_NAME = ".lock"


class RunDirLock:
    """Context manager: ``with RunDirLock(run_dir): ...`` or a one-line EvofoolError naming
    the process that holds the directory."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> "RunDirLock":
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise EvofoolError(f"cannot lock '{self.path.parent}': {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise EvofoolError(f"'{self.path.parent}' is in use by another evofool run (PID "
                               f"{holder}); wait for it to end or stop it, then "
                               f"'evofool run --resume {self.path.parent}'") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
