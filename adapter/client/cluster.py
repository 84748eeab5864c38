"""ClusterCanalClient: a canal client that follows the running server through ZooKeeper (canal's
ClusterCanalConnector + ClusterNodeAccessStrategy).

It connects to the server named by ``/otter/canal/destinations/{dest}/running`` (or, when none runs
it, the first server registered under ``.../cluster``, which starts a lazy destination), and on a
failover reconnects to the new runner; connecting subscribes and sends rollback(0), so the new runner
delivers again everything not acked (at-least-once). Faults are retried with back-off for up to
``retry_window_s``, then surface as RetriableError.

A batch belongs to the connection it came from: acking a batch fetched before a reconnect raises
RetriableError instead of acking some other batch with the same id on the new server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from adapter.coordination.locator import ServerLocator
from adapter.coordination.session import ZkSession
from adapter.errors import CanalError, ProtocolError, RetriableError

log = logging.getLogger(__name__)


class Connector(Protocol):
    """What we need of adapter.client.tcp.CanalClient (one connection to one server)."""

    def connect(self) -> None: ...

    def subscribe(self, filter: str | None = None) -> None: ...

    def get_without_ack(self, batch_size: int, timeout_ms: int) -> tuple[int, list[Any]]: ...

    def ack(self, batch_id: int) -> None: ...

    def rollback(self, batch_id: int = 0) -> None: ...

    def disconnect(self) -> None: ...


ConnectorFactory = Callable[[str, int], Connector]


class ClusterCanalClient:
    """Drop-in for CanalClient when the server is found through ZooKeeper. Not thread-safe (one consumer)."""

    def __init__(
        self,
        zk: Any,
        *,
        destination: str,
        client_id: int | str = 1001,
        filter: str = "",
        username: str = "",
        password: str = "",
        so_timeout: float = 60.0,
        connector_factory: ConnectorFactory | None = None,
        retry_window_s: float = 30.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 5.0,
        zk_timeout_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.destination = destination
        self.client_id = str(client_id)
        self.filter = filter
        self._zk_arg = zk
        self._zk_timeout_s = zk_timeout_s
        self._session: ZkSession | None = None
        self._locator: ServerLocator | None = None
        self._factory = connector_factory or self._tcp_factory(username, password, so_timeout)
        self._retry_window_s = retry_window_s
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._sleep, self._clock = sleep, clock
        self._conn: Connector | None = None
        self._address: str | None = None
        self._epoch = 0
        self._batches: dict[int, int] = {}  # batch id -> epoch it was fetched in
        self._lock = threading.RLock()

    # ------------------------------------------------------------ canal client API
    @property
    def address(self) -> str | None:
        """The server currently connected to."""
        return self._address

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def connect(self) -> None:
        """Find the runner and connect + subscribe (+ rollback(0)); retries within ``retry_window_s``."""
        with self._lock:
            self._ensure_zk()
            self._retrying(lambda: None, "connect")

    def subscribe(self, filter: str | None = None) -> None:
        with self._lock:
            if filter is not None:
                self.filter = filter
            if self._conn is not None:
                self._retrying(lambda: self._require().subscribe(self.filter), "subscribe")

    def get_without_ack(self, batch_size: int = 1000, timeout_ms: int = -1) -> tuple[int, list[Any]]:
        """GET from the current runner; on a failover or a fault, reconnect and try again."""
        with self._lock:
            self._ensure_zk()
            batch_id, entries = self._retrying(lambda: self._require().get_without_ack(batch_size, timeout_ms), "get")
            if batch_id > 0:
                self._batches[batch_id] = self._epoch
            return batch_id, entries

    def ack(self, batch_id: int) -> None:
        with self._lock:
            if batch_id == -1:
                return
            if self._conn is None or self._batches.get(batch_id) != self._epoch:
                self._batches.pop(batch_id, None)
                raise RetriableError(
                    f"batch {batch_id} of {self.destination} came from a previous server connection; "
                    "the current runner will deliver it again"
                )
            try:
                self._conn.ack(batch_id)
            except CanalError:
                self._drop()
                raise
            self._batches.pop(batch_id, None)

    def rollback(self, batch_id: int = 0) -> None:
        """Roll back on the current connection; without one this is a no-op (connecting rolls back)."""
        with self._lock:
            if self._conn is None:
                return
            try:
                self._conn.rollback(batch_id)
            except CanalError as e:
                log.info("rollback failed; the next connection rolls back", extra={"error": repr(e)})
                self._drop()
                return
            if batch_id == 0:
                self._batches.clear()
            else:
                self._batches.pop(batch_id, None)

    def disconnect(self) -> None:
        """Close the server connection (no unsubscribe) and our ZooKeeper session if we opened it."""
        with self._lock:
            self._drop()
            if self._locator is not None:
                self._locator.stop()
                self._locator = None
            if self._session is not None and isinstance(self._zk_arg, str):
                self._session.close()
            self._session = None

    # ------------------------------------------------------------ internals
    def _tcp_factory(self, username: str, password: str, so_timeout: float) -> ConnectorFactory:
        def make(host: str, port: int) -> Connector:
            from adapter.client.tcp import CanalClient

            return CanalClient(host, port, username=username, password=password, client_id=self.client_id,
                               destination=self.destination, filter=self.filter, so_timeout=so_timeout)

        return make

    def _ensure_zk(self) -> None:
        if self._locator is not None:
            return
        zk = self._zk_arg
        if isinstance(zk, str):
            session = ZkSession.connect(zk, timeout_s=self._zk_timeout_s)
        else:
            session = zk if isinstance(zk, ZkSession) else ZkSession(zk)
        self._session = session
        self._locator = ServerLocator(session, self.destination)
        self._locator.start()

    def _require(self) -> Connector:
        if self._conn is None:
            raise RetriableError("not connected")
        return self._conn

    def _drop(self) -> None:
        conn, self._conn, self._address = self._conn, None, None
        self._batches.clear()
        if conn is not None:
            try:
                conn.disconnect()
            except Exception as e:  # closing a broken socket may fail; it is gone either way
                log.debug("disconnect failed", extra={"error": repr(e)})

    def _connect_to_runner(self) -> None:
        """Connect to whoever the locator names, if we are not already connected there."""
        assert self._locator is not None
        target = self._locator.current()
        if target is None:
            raise RetriableError(f"no canal server registered for destination {self.destination} in ZooKeeper")
        if self._conn is not None and target == self._address:
            return
        if self._conn is not None:
            log.info("canal server changed: reconnecting",
                     extra={"destination": self.destination, "from": self._address, "to": target})
            self._drop()
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            raise RetriableError(f"bad server address {target!r} in ZooKeeper for {self.destination}")
        conn = self._factory(host, int(port))
        conn.connect()  # auth + subscribe + rollback(0): the new runner re-delivers what was not acked
        self._conn, self._address = conn, target
        self._epoch += 1
        self._batches.clear()
        log.info("connected to canal server", extra={"destination": self.destination, "server": target})

    def _retrying(self, op: Callable[[], Any], what: str) -> Any:
        """Connect to the runner and run ``op``; on faults back off and retry within the window."""
        assert self._locator is not None
        deadline = self._clock() + self._retry_window_s
        delay, cap = self._backoff
        attempt = 0
        while True:
            attempt += 1
            seen = self._locator.version
            try:
                self._connect_to_runner()
                return op()
            except (RetriableError, ProtocolError, OSError) as e:
                # ProtocolError covers "should start first": a standby, or a lazy start in progress.
                self._drop()
                left = deadline - self._clock()
                log.info("canal request failed; retrying",
                         extra={"destination": self.destination, "op": what, "attempt": attempt, "error": repr(e)})
                if left <= 0:
                    raise RetriableError(f"{what} on {self.destination} failed after {attempt} attempts: {e}") from e
                self._pause(min(delay, left), seen)
                delay = min(delay * 2, cap)

    def _pause(self, seconds: float, seen: int) -> None:
        """Back off, but retry at once when ZooKeeper names another server (the usual cause: a failover)."""
        assert self._locator is not None
        slept = 0.0
        while slept < seconds and self._locator.version == seen:
            step = min(0.1, seconds - slept)
            self._sleep(step)
            slept += step
