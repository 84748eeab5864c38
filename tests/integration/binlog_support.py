"""Test support for parser integration tests: an EventSink that records events and waits on them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from adapter.server.events import Event

WAIT = 60.0


class Collector:
    """Records every event the parser puts; ``wait`` blocks until a predicate over them holds."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.cond = threading.Condition()

    def put(self, events: Sequence[Event], stop: threading.Event) -> bool:
        with self.cond:
            self.events.extend(events)
            self.cond.notify_all()
        return True

    def wait(self, pred: Callable[[list[Event]], bool]) -> list[Event]:
        with self.cond:
            assert self.cond.wait_for(lambda: pred(self.events), WAIT), "timed out waiting for binlog events"
            return list(self.events)
