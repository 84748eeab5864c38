"""ServerLocator: which canal server to talk to for a destination (canal's ClusterNodeAccessStrategy).

Watches ``/otter/canal/destinations/{dest}/running`` (the active server's ServerRunningData) and the
children of ``.../{dest}/cluster`` (every server that can run it). ``current()`` is the running
server if there is one, else the first registered server (connecting there makes a lazy destination
start), else None.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

from adapter.coordination import paths
from adapter.coordination.session import ZkSession

log = logging.getLogger(__name__)


class ServerLocator:
    def __init__(self, session: ZkSession, destination: str, *, rng: random.Random | None = None) -> None:
        self._session = session
        self.destination = destination
        self._rng = rng or random.Random()
        self._cond = threading.Condition()
        self._running: str | None = None
        self._cluster: list[str] = []
        self._version = 0
        self._stopped = False
        self._seen_running = threading.Event()
        self._seen_cluster = threading.Event()
        self._started = False

    def start(self, wait_s: float = 10.0) -> None:
        """Register the watches and wait (bounded) for their first answers."""
        if self._started:
            return
        self._started = True
        client = self._session.client
        running = paths.server_running(self.destination)
        cluster = paths.destination_cluster(self.destination)
        self._session.spawn_watch(lambda: client.DataWatch(running, self._on_running), running)

        def watch_cluster() -> None:
            client.ensure_path(cluster)  # ChildrenWatch needs the parent; servers create it anyway
            client.ChildrenWatch(cluster, self._on_cluster)

        self._session.spawn_watch(watch_cluster, cluster)
        self._seen_running.wait(wait_s)
        self._seen_cluster.wait(max(0.0, wait_s))

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def current(self) -> str | None:
        with self._cond:
            if self._running:
                return self._running
            return self._cluster[0] if self._cluster else None

    @property
    def running(self) -> str | None:
        with self._cond:
            return self._running

    @property
    def version(self) -> int:
        """Changes whenever what the locator knows changes."""
        with self._cond:
            return self._version

    def wait_change(self, since: int, timeout_s: float) -> bool:
        """Wait until ``version`` differs from ``since``; False on timeout or stop."""
        with self._cond:
            return self._cond.wait_for(lambda: self._version != since or self._stopped, timeout_s) and not self._stopped

    # kazoo callback thread: only update state
    def _on_running(self, data: bytes | None, stat: Any, event: Any = None) -> bool | None:
        address = None
        if data:
            try:
                srd = paths.ServerRunningData.from_json(data)
                address = srd.address if srd.active and srd.address else None
            except ValueError as e:
                log.warning("unreadable running node", extra={"destination": self.destination, "error": repr(e)})
        with self._cond:
            if self._stopped:
                return False
            if address != self._running:
                log.info("canal server for destination", extra={"destination": self.destination, "running": address})
            self._running = address
            self._version += 1
            self._cond.notify_all()
        self._seen_running.set()
        return None

    def _on_cluster(self, children: list[str]) -> bool | None:
        shuffled = list(children)
        self._rng.shuffle(shuffled)  # as canal: spread lazy starts over the servers
        with self._cond:
            if self._stopped:
                return False
            self._cluster = shuffled
            self._version += 1
            self._cond.notify_all()
        self._seen_cluster.set()
        return None
