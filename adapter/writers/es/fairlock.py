"""``FairLock``: a FIFO mutex, so an ETL page is not starved by a stream that re-takes the lock at once.

``threading.Lock`` is not fair: a thread that releases and immediately re-acquires (the stream's
batch loop) usually wins over a waiting thread (the ETL), which could then wait indefinitely.
"""

from __future__ import annotations

import threading
from types import TracebackType


class FairLock:
    """Non-reentrant mutex granted in arrival order (ticket lock)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._serving = 0

    def acquire(self) -> None:
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            while self._serving != ticket:
                self._cond.wait()

    def release(self) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()

    def __enter__(self) -> FairLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
