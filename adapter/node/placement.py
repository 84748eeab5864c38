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
    """ZooKeeper leases through coordination's ``LeaseBalancer`` (one lease per task)."""

    def __init__(self, session: Any, node_id: str, rest_address: str, tasks: Sequence[TaskSpec],
                 on_acquire: TaskCallback, on_release: TaskCallback, **balancer_options: Any) -> None:
        from adapter.coordination.balancer import LeaseBalancer, TaskKey

        self._keys = {t.task_id: TaskKey(t.destination, t.client_id) for t in tasks}
        self._tasks = {self._keys[t.task_id]: t for t in tasks}
        self.on_acquire, self.on_release = on_acquire, on_release
        self._balancer = LeaseBalancer(session, node_id, list(self._keys.values()), self._acquired,
                                       self._released, address=rest_address, **balancer_options)

    def _acquired(self, key: Any) -> None:
        task = self._tasks[key]
        log.info("lease acquired; starting task", extra={"task": task.task_id, "client_id": task.client_id})
        self.on_acquire(task)

    def _released(self, key: Any) -> None:
        task = self._tasks[key]
        log.info("lease lost or released; stopping task", extra={"task": task.task_id})
        self.on_release(task)  # returns once the worker stopped; only then is the lease given up

    def start(self) -> None:
        self._balancer.start()

    def stop(self) -> None:
        self._balancer.stop()

    def holds(self, task_id: str) -> bool:
        key = self._keys.get(task_id)
        return key is not None and self._balancer.holds(key)

    def holder(self, task_id: str) -> str | None:
        key = self._keys.get(task_id)
        return None if key is None else self._balancer.holder(key)

    def held(self) -> list[str]:
        return sorted(self._tasks[k].task_id for k in self._balancer.held())
