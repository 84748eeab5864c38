"""ZkSession: a guard around one KazooClient's connection state, fanning it out to listeners in order.

Why stopping on SUSPENDED prevents split brain: ephemeral nodes live until the server expires the
session, which happens no earlier than one session timeout after the server last heard from us.
kazoo declares the connection SUSPENDED after 2/3 of that timeout without an answer, so a holder
that stops serving on SUSPENDED has stopped before its nodes can vanish and anyone else can win.

Listeners run synchronously on kazoo's connection thread, right after ``connected`` turns False,
so they must not block or call ZooKeeper: they flip flags and hand work to a Scheduler.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, NoNodeError, OperationTimeoutError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState

from adapter.errors import CoordinationLost

log = logging.getLogger(__name__)

#: canal's Java client asks for 90 s (capped by the server's maxSessionTimeout); ours is shorter so a
#: dead server's ephemeral nodes go away sooner. Configurable everywhere it matters.
DEFAULT_SESSION_TIMEOUT_S = 10.0

ClientFactory = Callable[..., Any]

#: How long a coordination call may take while the connection stays up.
DEFAULT_OP_TIMEOUT_S = 30.0
_POLL_S = 0.1


def zk_call(
    client: Any, method_async: Callable[..., Any], *args: Any, timeout_s: float = DEFAULT_OP_TIMEOUT_S, **kwargs: Any
) -> Any:
    """Run a kazoo ``*_async`` call and wait for it, failing fast with ConnectionLoss when the connection
    is (or becomes) suspended.

    kazoo queues a request made while reconnecting until the connection is back, so a plain sync call
    can block a coordination thread for the whole partition: the stop that must follow SUSPENDED
    would then wait behind it. ``client.connected`` turns False before any state listener runs.
    """
    if not client.connected:
        raise ConnectionLoss("ZooKeeper connection is suspended")
    return wait_result(client, method_async(*args, **kwargs), timeout_s)


def wait_result(client: Any, result: Any, timeout_s: float = DEFAULT_OP_TIMEOUT_S) -> Any:
    """Wait for a kazoo AsyncResult like :func:`zk_call` does (lets callers pipeline requests)."""
    waited = 0.0
    while True:
        try:
            return result.get(timeout=_POLL_S)
        except KazooTimeoutError:
            waited += _POLL_S
            if not client.connected:
                raise ConnectionLoss("ZooKeeper connection suspended during the call") from None
            if waited >= timeout_s:
                raise OperationTimeoutError(f"ZooKeeper call took longer than {timeout_s}s") from None


def spawn_thread(register: Callable[[], Any], name: str) -> None:
    """Default watch spawner: a short-lived daemon thread."""
    threading.Thread(target=register, name=f"zk-watch-{name}", daemon=True).start()


class BoundedClient:
    """The few kazoo calls the coordination code makes, each through :func:`zk_call` (never hangs)."""

    def __init__(self, client: Any, timeout_s: float = DEFAULT_OP_TIMEOUT_S) -> None:
        self.raw = client
        self.timeout_s = timeout_s

    @property
    def connected(self) -> bool:
        return bool(self.raw.connected)

    def get(self, path: str) -> Any:
        return zk_call(self.raw, self.raw.get_async, path, timeout_s=self.timeout_s)

    def exists(self, path: str) -> Any:
        return zk_call(self.raw, self.raw.exists_async, path, timeout_s=self.timeout_s)

    def get_children(self, path: str) -> list[str]:
        return list(zk_call(self.raw, self.raw.get_children_async, path, timeout_s=self.timeout_s))

    def create(
        self,
        path: str,
        value: bytes = b"",
        *,
        ephemeral: bool = False,
        makepath: bool = False,
        include_data: bool = False,
    ) -> Any:
        return zk_call(
            self.raw,
            self.raw.create_async,
            path,
            value,
            ephemeral=ephemeral,
            makepath=makepath,
            include_data=include_data,
            timeout_s=self.timeout_s,
        )

    def set(self, path: str, value: bytes, version: int = -1) -> Any:
        return zk_call(self.raw, self.raw.set_async, path, value, version, timeout_s=self.timeout_s)

    def delete(self, path: str, version: int = -1, *, recursive: bool = False) -> None:
        if recursive:
            for child in self.get_children(path):
                with contextlib.suppress(NoNodeError):
                    self.delete(f"{path.rstrip('/')}/{child}", recursive=True)
        zk_call(self.raw, self.raw.delete_async, path, version, timeout_s=self.timeout_s)

    def ensure_path(self, path: str) -> None:
        zk_call(self.raw, self.raw.ensure_path_async, path, timeout_s=self.timeout_s)


@dataclass(frozen=True, slots=True)
class SessionListener:
    """Callbacks for one subscriber; all optional, all called on kazoo's connection thread."""

    on_suspended: Callable[[], None] | None = None
    on_lost: Callable[[], None] | None = None
    #: Reconnected within the same session: our ephemeral nodes survived.
    on_resumed: Callable[[], None] | None = None
    #: Connected with a new session (first connect, or after LOST): ephemeral nodes must be re-created.
    on_new_session: Callable[[], None] | None = None


class ZkSession:
    """Wraps a KazooClient (owned when made by :meth:`connect`) and tracks session identity."""

    def __init__(
        self, client: Any, *, owned: bool = False, spawn: Callable[[Callable[[], Any], str], None] = spawn_thread
    ) -> None:
        self.client = client
        #: Bounded calls for coordination threads (fail fast while suspended).
        self.calls = BoundedClient(client)
        self._owned = owned
        self._spawn = spawn
        self._lock = threading.Lock()
        self._listeners: list[SessionListener] = []
        self._connected = threading.Event()
        cid = client.client_id if client.connected else None
        self._session_id: int | None = cid[0] if cid else None
        if self._session_id is not None:
            self._connected.set()
        client.add_listener(self._on_state)

    @classmethod
    def connect(
        cls,
        hosts: str,
        *,
        timeout_s: float = DEFAULT_SESSION_TIMEOUT_S,
        start_timeout_s: float = 15.0,
        factory: ClientFactory = KazooClient,
        **client_options: Any,
    ) -> ZkSession:
        """Create and start a client (connection retries forever once started, as canal's ZkClientx)."""
        # kazoo's default reconnect back-off grows to an hour; a coordinator must come back quickly.
        retry = {"max_tries": -1, "delay": 0.1, "backoff": 2, "max_delay": 2.0}
        client = factory(hosts=hosts, timeout=timeout_s, connection_retry=retry, **client_options)
        try:
            client.start(timeout=start_timeout_s)
        except Exception as e:
            client.stop()
            client.close()
            raise CoordinationLost(f"cannot connect to ZooKeeper {hosts}: {e}") from e
        return cls(client, owned=True)

    # ------------------------------------------------------------ state
    @property
    def connected(self) -> bool:
        """True while the session is connected; turns False before any listener runs."""
        return self._connected.is_set()

    @property
    def session_id(self) -> int | None:
        """The current session's id while connected, else None."""
        return self._session_id if self._connected.is_set() else None

    def wait_connected(self, timeout_s: float | None) -> bool:
        return self._connected.wait(timeout_s)

    def require(self) -> int:
        """The live session id, or CoordinationLost."""
        sid = self.session_id
        if sid is None:
            raise CoordinationLost("ZooKeeper session is not connected")
        return sid

    def spawn_watch(self, register: Callable[[], Any], name: str) -> None:
        """Register a kazoo DataWatch/ChildrenWatch off the caller's thread: their first read retries
        forever while disconnected, which must not block a coordination thread."""
        self._spawn(register, name)

    def add_listener(self, listener: SessionListener) -> SessionListener:
        with self._lock:
            self._listeners.append(listener)
        return listener

    def remove_listener(self, listener: SessionListener) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def close(self) -> None:
        """Stop and close the client if this guard created it (ephemeral nodes go at once)."""
        self.client.remove_listener(self._on_state)
        self._connected.clear()
        if self._owned:
            self.client.stop()
            self.client.close()

    # ------------------------------------------------------------ kazoo listener (connection thread)
    def _on_state(self, state: str) -> None:
        if state == KazooState.CONNECTED:
            cid = self.client.client_id
            sid = cid[0] if cid else None
            new = sid != self._session_id
            self._session_id = sid
            self._connected.set()
            log.info("zookeeper connected", extra={"session": f"{sid:#x}" if sid else None, "new_session": new})
            self._fire("on_new_session" if new else "on_resumed")
        elif state == KazooState.SUSPENDED:
            self._connected.clear()
            log.warning("zookeeper connection suspended: stop serving until it comes back")
            self._fire("on_suspended")
        elif state == KazooState.LOST:
            self._connected.clear()
            self._session_id = None
            log.warning("zookeeper session lost: ephemeral nodes are gone")
            self._fire("on_lost")

    def _fire(self, which: str) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            fn = getattr(listener, which)
            if fn is None:
                continue
            try:
                fn()
            except Exception:
                log.exception("session listener failed", extra={"event": which})
