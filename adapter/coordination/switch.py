"""The per-destination sync switch: ``LocalSwitch`` (in memory) and ``ZkSwitch`` (shared by every node).

canal-adapter's SyncSwitch: with ZooKeeper the persistent node ``/canal-adapter/sync-switch/<dest>``
holds ``on`` or ``off`` (a missing node means on) and every adapter watching it pauses and resumes
together; without ZooKeeper it is one in-memory flag per destination. The switch is per destination,
so turning it off pauses every group of that instance.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError

from adapter.coordination import paths
from adapter.errors import CoordinationLost

log = logging.getLogger(__name__)

ON, OFF = b"on", b"off"
_SLICE_S = 0.25  # how often a waiter re-checks its stop event (no busy loop; Events cannot be OR-ed)


class Switch(Protocol):
    def is_on(self, destination: str) -> bool: ...

    def set(self, destination: str, on: bool) -> None: ...

    def wait_on(self, destination: str, stop_event: threading.Event, timeout: float | None) -> bool:
        """Block until the switch is on (True), or ``stop_event`` is set / ``timeout`` passes (False)."""
        ...


class LocalSwitch:
    """canal's LOCAL mode: one flag per destination, on until turned off."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._off: set[str] = set()

    def is_on(self, destination: str) -> bool:
        with self._cond:
            return destination not in self._off

    def set(self, destination: str, on: bool) -> None:
        with self._cond:
            if on:
                self._off.discard(destination)
            else:
                self._off.add(destination)
            self._cond.notify_all()

    def wait_on(self, destination: str, stop_event: threading.Event, timeout: float | None) -> bool:
        return _wait(self._cond, lambda: destination not in self._off, stop_event, timeout)


class ZkSwitch:
    """The switch in ZooKeeper, cached from a DataWatch per destination (set up on first use)."""

    def __init__(self, zk: Any) -> None:
        self._zk = getattr(zk, "client", zk)
        self._cond = threading.Condition()
        self._state: dict[str, bool] = {}
        self._watched: set[str] = set()

    def is_on(self, destination: str) -> bool:
        self._watch(destination)
        with self._cond:
            return self._state.get(destination, True)

    def set(self, destination: str, on: bool) -> None:
        """Write ``on``/``off`` (creating the node); every node's watch, ours included, picks it up."""
        path = paths.sync_switch(destination)
        value = ON if on else OFF
        try:
            try:
                self._zk.set(path, value)
            except NoNodeError:
                try:
                    self._zk.create(path, value, makepath=True)
                except NodeExistsError:
                    self._zk.set(path, value)
        except KazooException as e:
            raise CoordinationLost(f"cannot write sync switch {path}: {e}") from e
        self._update(destination, on)  # our own reads see it at once, not only after the watch fires
        self._watch(destination)

    def wait_on(self, destination: str, stop_event: threading.Event, timeout: float | None) -> bool:
        self._watch(destination)
        return _wait(self._cond, lambda: self._state.get(destination, True), stop_event, timeout)

    def _update(self, destination: str, on: bool) -> None:
        with self._cond:
            if self._state.get(destination) != on:
                log.info("sync switch", extra={"destination": destination, "status": "on" if on else "off"})
            self._state[destination] = on
            self._cond.notify_all()

    def _watch(self, destination: str) -> None:
        """Register once; not while disconnected (kazoo's DataWatch would block until reconnected)."""
        with self._cond:
            if destination in self._watched or not self._zk.connected:
                return
            self._watched.add(destination)

        def on_change(data: bytes | None, stat: Any, event: Any = None) -> None:
            # canal: anything but "off" counts as on (a missing node included).
            self._update(destination, (data or ON).strip().lower() != OFF)

        try:
            self._zk.DataWatch(paths.sync_switch(destination), on_change)
        except KazooException as e:
            with self._cond:
                self._watched.discard(destination)
            log.warning("cannot watch sync switch yet", extra={"destination": destination, "error": repr(e)})


def _wait(
    cond: threading.Condition, is_on: Callable[[], bool], stop_event: threading.Event, timeout: float | None
) -> bool:
    deadline = None if timeout is None else time.monotonic() + timeout
    with cond:
        while True:
            if is_on():
                return True
            if stop_event.is_set():
                return False
            left = _SLICE_S if deadline is None else min(_SLICE_S, deadline - time.monotonic())
            if left <= 0:
                return False
            cond.wait(left)
