"""The coordination work thread: ZooKeeper actions and callbacks run here, in order, never on kazoo's threads.

kazoo forbids blocking calls in its state listeners (the connection thread) and runs every watch
callback on one shared thread; running our ZooKeeper calls and the user's on_active/on_inactive
here keeps both of kazoo's threads free. ``Scheduler`` is the seam: tests pass a manual one.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)


class Handle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """Runs callables one at a time, in submission order (delayed ones when due)."""

    def call_soon(self, fn: Callable[[], None]) -> None: ...

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> Handle: ...

    def in_thread(self) -> bool:
        """True when called from the thread that runs the callables (so waiting would deadlock)."""
        ...


def run_and_wait(scheduler: Scheduler, fn: Callable[[], None], timeout_s: float) -> bool:
    """Run ``fn`` on the scheduler and wait for it (inline when already there). False on timeout."""
    if scheduler.in_thread():
        fn()
        return True
    done = threading.Event()

    def run() -> None:
        try:
            fn()
        finally:
            done.set()

    scheduler.call_soon(run)
    return done.wait(timeout_s)


class _Timer:
    __slots__ = ("cancelled", "fn")

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ThreadScheduler:
    """One daemon thread executing submitted callables; exceptions are logged, never kill the thread."""

    def __init__(self, name: str = "coordination", clock: Callable[[], float] = time.monotonic) -> None:
        self._name = name
        self._clock = clock
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def start(self) -> ThreadScheduler:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        return self

    def call_soon(self, fn: Callable[[], None]) -> None:
        self.call_later(0.0, fn)

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> Handle:
        timer = _Timer(fn)
        with self._cond:
            if self._thread is None:
                self.start()
            heapq.heappush(self._heap, (self._clock() + max(delay_s, 0.0), next(self._seq), timer))
            self._cond.notify()
        return timer

    def in_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def stop(self, timeout_s: float = 10.0) -> None:
        """Run what is already due, then end the thread (callables submitted later are dropped)."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    now = self._clock()
                    if self._heap and self._heap[0][0] <= now:
                        _, _, timer = heapq.heappop(self._heap)
                        break
                    if self._stopped:
                        return
                    wait = self._heap[0][0] - now if self._heap else None
                    self._cond.wait(wait)
            if timer.cancelled:
                continue
            try:
                timer.fn()
            except Exception:
                log.exception("coordination task failed", extra={"scheduler": self._name})
