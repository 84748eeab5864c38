"""Where tasks run: all on this node (no ZooKeeper), or spread over the nodes by ZooKeeper leases.

A task is one (instance, group). With ZooKeeper, its lease is canal's client running node
``/otter/canal/destinations/<dest>/<clientId>/running`` (so a Java canal client with the same id is
excluded too), held through coordination's ``LeaseBalancer`` (about ceil(M/N) tasks per node). A
worker runs only while its lease is held: ``on_release`` stops it before the lease is given up.
The lease data is canal's ClientRunningData whose ``address`` is this node's REST ``host:port``,
which is how other nodes find the holder of a task (REST forwarding).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from adapter.node.configload import TaskSpec

log = logging.getLogger(__name__)

TaskCallback = Callable[[TaskSpec], None]


class Placement(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...

    def holds(self, task_id: str) -> bool: ...

    def holder(self, task_id: str) -> str | None: ...

    def held(self) -> list[str]: ...


class LocalPlacement:
    """No ZooKeeper: every task runs here."""

    def __init__(self, tasks: Sequence[TaskSpec], on_acquire: TaskCallback, on_release: TaskCallback) -> None:
        self.tasks = list(tasks)
        self.on_acquire, self.on_release = on_acquire, on_release
        self._held: set[str] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        for t in self.tasks:
            self.on_acquire(t)
            with self._lock:
                self._held.add(t.task_id)

    def stop(self) -> None:
        for t in reversed(self.tasks):
            with self._lock:
                if t.task_id not in self._held:
                    continue
                self._held.discard(t.task_id)
            self.on_release(t)

    def holds(self, task_id: str) -> bool:
        with self._lock:
            return task_id in self._held

    def holder(self, task_id: str) -> str | None:
        return None

    def held(self) -> list[str]:
        with self._lock:
            return sorted(self._held)


class LeasePlacement:
    """ZooKeeper leases through coordination's LeaseBalancer (one lease per task)."""

    def __init__(self, session: Any, node_id: str, rest_address: str, tasks: Sequence[TaskSpec],
                 on_acquire: TaskCallback, on_release: TaskCallback, **balancer_options: Any) -> None:
        from adapter.coordination import lease, paths  # type: ignore[attr-defined,unused-ignore]

        self.tasks = {t.task_id: t for t in tasks}
        self._session = session
        self._zk = getattr(session, "client", session)
        self._paths = paths
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self.on_acquire, self.on_release = on_acquire, on_release
        specs = [lease.Lease(task_id=t.task_id, path=paths.client_running(t.destination, t.client_id),
                             data=paths.ClientRunningData(rest_address, t.client_id).to_json())
                 for t in tasks]
        self._balancer = lease.LeaseBalancer(session, node_id, specs, on_acquire=self._acquired,
                                             on_release=self._released, **balancer_options)

    def _acquired(self, task_id: str) -> None:
        task = self.tasks[task_id]
        log.info("lease acquired; starting task", extra={"task": task_id})
        self.on_acquire(task)
        with self._lock:
            self._held.add(task_id)

    def _released(self, task_id: str) -> None:
        with self._lock:
            self._held.discard(task_id)
        log.info("lease released; stopping task", extra={"task": task_id})
        self.on_release(self.tasks[task_id])

    def start(self) -> None:
        self._balancer.start()

    def stop(self) -> None:
        self._balancer.stop()

    def holds(self, task_id: str) -> bool:
        with self._lock:
            return task_id in self._held

    def holder(self, task_id: str) -> str | None:
        task = self.tasks.get(task_id)
        if task is None:
            return None
        try:
            data, _ = self._zk.get(self._paths.client_running(task.destination, task.client_id))
        except Exception:  # no holder right now (or ZooKeeper unreachable)
            return None
        address, active = self._paths.running_owner(data)
        return address or None if active else None

    def held(self) -> list[str]:
        with self._lock:
            return sorted(self._held)
