"""Stopping a run on request: SIGINT (Ctrl-C) and SIGTERM become a :class:`StopRequested`
raised where the work in progress can be dropped (asking, scoring), and wait while a
generation is being committed (tell, log line, checkpoint), so that what is saved always
holds whole generations."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

from evofool.errors import EvofoolError

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(Exception):
    """A stop signal arrived; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class RunStopped(EvofoolError):
    """The run stopped because the user asked, its state saved; the process should exit
    with ``exit_code`` (128 + the signal number: 130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


class StopSignals:
    """Context manager: handles SIGINT and SIGTERM while it is open (main thread only;
    elsewhere signals keep their handlers)."""

    def __init__(self) -> None:
        self.deferring = False
        self.pending: int | None = None
        self.previous: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame) -> None:
        if self.deferring:
            self.pending = signum
        else:
            raise StopRequested(signum)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """A block that a stop signal does not cut: the stop is raised when it ends."""
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.pending is not None:
            raise StopRequested(self.pending)
