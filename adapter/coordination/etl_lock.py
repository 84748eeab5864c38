"""ETL mutexes: ``ZkEtlLock`` (kazoo Lock at ``/canal-adapter/sync-etl/<type>-<dest>``) and ``LocalEtlLock``.

Both are non-blocking: a second ETL of the same ``<type>-<dest or task>`` is refused, not queued
(canal's EtlLock answers "有其他进程正在导入中" the same way). Names are what canal uses:
``f"{type}-{destination or task}"``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from kazoo.exceptions import KazooException

from adapter.coordination import paths
from adapter.errors import CoordinationLost

log = logging.getLogger(__name__)

#: Curator names its mutex nodes ``_c_<uuid>-lock-<seq>``.
CURATOR_LOCK_PATTERNS = ("-lock-",)


class EtlLock(Protocol):
    def try_acquire(self, name: str) -> bool:
        """Take the lock named ``name`` (``<type>-<dest>``) if free; never waits."""
        ...

    def release(self, name: str) -> None: ...


class LocalEtlLock:
    """In-process only (canal's LOCAL mode)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: set[str] = set()

    def try_acquire(self, name: str) -> bool:
        with self._lock:
            if name in self._held:
                return False
            self._held.add(name)
            return True

    def release(self, name: str) -> None:
        with self._lock:
            self._held.discard(name)


class ZkEtlLock:
    """Cluster-wide: a kazoo Lock per name; an ETL that loses its session loses the lock with it."""

    def __init__(self, zk: Any, identifier: str = "") -> None:
        self._zk = getattr(zk, "client", zk)
        self._identifier = identifier
        self._mutex = threading.Lock()
        self._held: dict[str, Any] = {}

    def try_acquire(self, name: str) -> bool:
        with self._mutex:
            if name in self._held:
                return False  # kazoo Locks are per object; refuse a second ETL in this process too
            # "-lock-" also counts Curator's InterProcessMutex nodes (a Java canal-adapter) as contenders.
            lock = self._zk.Lock(self._path(name), self._identifier, extra_lock_patterns=CURATOR_LOCK_PATTERNS)
            self._held[name] = lock
        try:
            got = bool(lock.acquire(blocking=False))
        except KazooException as e:
            with self._mutex:
                self._held.pop(name, None)
            raise CoordinationLost(f"cannot take ETL lock {self._path(name)}: {e}") from e
        if not got:
            with self._mutex:
                self._held.pop(name, None)
        return got

    def release(self, name: str) -> None:
        with self._mutex:
            lock = self._held.pop(name, None)
        if lock is None:
            return
        try:
            lock.release()
        except KazooException as e:  # the node goes with the session at the latest
            log.warning("ETL lock release failed", extra={"lock": self._path(name), "error": repr(e)})

    @staticmethod
    def _path(name: str) -> str:
        return paths.sync_etl_lock(name)


@contextmanager
def hold(lock: EtlLock, name: str) -> Iterator[bool]:
    """``with hold(locks, "es7-example") as got:`` — ``got`` False means another ETL runs."""
    got = lock.try_acquire(name)
    try:
        yield got
    finally:
        if got:
            lock.release(name)
