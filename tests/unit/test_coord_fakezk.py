"""An in-memory ZooKeeper (server + kazoo-like clients) and a manual scheduler for coordination unit tests.

Only what our coordination code calls is implemented. Watches fire synchronously, which is allowed
because our code only enqueues from them; the ManualScheduler then runs the work when told to.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from kazoo.exceptions import BadVersionError, ConnectionLoss, NodeExistsError, NoNodeError, NotEmptyError
from kazoo.protocol.states import KazooState


@dataclass(frozen=True)
class Stat:
    ephemeralOwner: int = 0
    version: int = 0
    mzxid: int = 0
    czxid: int = 0


class FakeZkServer:
    def __init__(self) -> None:
        self.nodes: dict[str, tuple[bytes, Stat]] = {"/": (b"", Stat())}
        self.zxid = itertools.count(1)
        self.sessions = itertools.count(0x1000)
        self.clients: list[FakeZk] = []

    def client(self) -> FakeZk:
        c = FakeZk(self)
        self.clients.append(c)
        return c

    def _notify(self, path: str) -> None:
        parent = path.rsplit("/", 1)[0] or "/"
        for c in list(self.clients):
            c._fire(path, parent)

    def expire(self, session_id: int) -> None:
        for path in sorted([p for p, (_, st) in self.nodes.items() if st.ephemeralOwner == session_id], reverse=True):
            del self.nodes[path]
            self._notify(path)


class FakeZk:
    def __init__(self, server: FakeZkServer) -> None:
        self.server = server
        self.session = next(server.sessions)
        self.connected = True
        self.state = KazooState.CONNECTED
        self.listeners: list[Callable[[str], Any]] = []
        self.data_watches: dict[str, list[Callable[..., Any]]] = {}
        self.child_watches: dict[str, list[Callable[..., Any]]] = {}

    # -------------------------------------------------------------- session control (test side)
    @property
    def client_id(self) -> tuple[int, bytes] | None:
        return (self.session, b"pw") if self.connected else None

    def add_listener(self, fn: Callable[[str], Any]) -> None:
        self.listeners.append(fn)

    def remove_listener(self, fn: Callable[[str], Any]) -> None:
        if fn in self.listeners:
            self.listeners.remove(fn)

    def _state(self, state: str) -> None:
        self.state = state
        for fn in list(self.listeners):
            fn(state)

    def suspend(self) -> None:
        self.connected = False
        self._state(KazooState.SUSPENDED)

    def resume(self) -> None:
        self.connected = True
        self._state(KazooState.CONNECTED)
        self._refire_all()

    def expire(self) -> None:
        """The server expires our session (its ephemerals go), then we learn it and reconnect fresh."""
        self.connected = False
        self._state(KazooState.SUSPENDED)
        self.server.expire(self.session)
        self._state(KazooState.LOST)
        self.session = next(self.server.sessions)
        self.connected = True
        self._state(KazooState.CONNECTED)
        self._refire_all()

    def crash(self) -> None:
        """The process dies: the session expires, nobody is told on this side."""
        self.connected = False
        self.server.clients.remove(self)
        self.server.expire(self.session)

    def stop(self) -> None:
        self.crash()

    def close(self) -> None:
        pass

    # -------------------------------------------------------------- watches
    def _refire_all(self) -> None:
        for path in list(self.data_watches):
            self._fire(path, None)
        for path in list(self.child_watches):
            self._fire(None, path)

    def _fire(self, path: str | None, parent: str | None) -> None:
        if not self.connected:
            return
        if path is not None:
            for fn in list(self.data_watches.get(path, [])):
                data, stat = self.server.nodes.get(path, (None, None))
                if fn(data, stat) is False:
                    self.data_watches[path].remove(fn)
        if parent is not None:
            for fn in list(self.child_watches.get(parent, [])):
                if parent in self.server.nodes and fn(self._children(parent)) is False:
                    self.child_watches[parent].remove(fn)

    def DataWatch(self, path: str, func: Callable[..., Any]) -> None:
        self._check()
        self.data_watches.setdefault(path, []).append(func)
        data, stat = self.server.nodes.get(path, (None, None))
        func(data, stat)

    def ChildrenWatch(self, path: str, func: Callable[..., Any]) -> None:
        self._check()
        self.ensure_path(path)
        self.child_watches.setdefault(path, []).append(func)
        func(self._children(path))

    # -------------------------------------------------------------- operations
    def _check(self) -> None:
        if not self.connected:
            raise ConnectionLoss("fake: not connected")

    def _children(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        names = (p[len(prefix) :] for p in self.server.nodes if p.startswith(prefix))
        return sorted(n for n in names if n and "/" not in n)

    def create(
        self,
        path: str,
        value: bytes = b"",
        ephemeral: bool = False,
        makepath: bool = False,
        include_data: bool = False,
        sequence: bool = False,
    ) -> Any:
        self._check()
        if path in self.server.nodes:
            raise NodeExistsError()
        parent = path.rsplit("/", 1)[0] or "/"
        if parent not in self.server.nodes:
            if not makepath:
                raise NoNodeError()
            self.ensure_path(parent)
        z = next(self.server.zxid)
        stat = Stat(ephemeralOwner=self.session if ephemeral else 0, mzxid=z, czxid=z)
        self.server.nodes[path] = (value, stat)
        self.server._notify(path)
        return (path, stat) if include_data else path

    def ensure_path(self, path: str) -> None:
        self._check()
        parts = [p for p in path.split("/") if p]
        for i in range(1, len(parts) + 1):
            p = "/" + "/".join(parts[:i])
            if p not in self.server.nodes:
                z = next(self.server.zxid)
                self.server.nodes[p] = (b"", Stat(mzxid=z, czxid=z))
                self.server._notify(p)

    def exists(self, path: str, watch: Any = None) -> Stat | None:
        self._check()
        return self.server.nodes.get(path, (None, None))[1]

    def get(self, path: str, watch: Any = None) -> tuple[bytes, Stat]:
        self._check()
        if path not in self.server.nodes:
            raise NoNodeError()
        return self.server.nodes[path]

    def __getattr__(self, name: str) -> Any:
        """``<op>_async``: the sync op, already finished (kazoo's AsyncResult interface)."""
        if name.endswith("_async"):
            op = getattr(self, name[: -len("_async")])
            return lambda *a, **k: _Done(lambda: op(*a, **k))
        raise AttributeError(name)

    def Lock(self, path: str, identifier: str = "", extra_lock_patterns: Any = ()) -> Any:
        return FakeLock(self, path)

    def get_children(self, path: str, watch: Any = None) -> list[str]:
        self._check()
        if path not in self.server.nodes:
            raise NoNodeError()
        return self._children(path)

    def set(self, path: str, value: bytes, version: int = -1) -> Stat:
        self._check()
        if path not in self.server.nodes:
            raise NoNodeError()
        _, stat = self.server.nodes[path]
        if version not in (-1, stat.version):
            raise BadVersionError()
        stat = replace(stat, version=stat.version + 1, mzxid=next(self.server.zxid))
        self.server.nodes[path] = (value, stat)
        self.server._notify(path)
        return stat

    def delete(self, path: str, version: int = -1, recursive: bool = False) -> None:
        self._check()
        if path not in self.server.nodes:
            raise NoNodeError()
        kids = self._children(path)
        if kids and not recursive:
            raise NotEmptyError()
        for k in kids:
            self.delete(f"{path.rstrip('/')}/{k}", recursive=True)
        if version not in (-1, self.server.nodes[path][1].version):
            raise BadVersionError()
        del self.server.nodes[path]
        self.server._notify(path)


class _Done:
    """An already-finished kazoo AsyncResult."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        try:
            self.value, self.exc = fn(), None
        except Exception as e:
            self.value, self.exc = None, e

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if self.exc is not None:
            raise self.exc
        return self.value


class FakeLock:
    """kazoo Lock reduced to non-blocking acquire: an ephemeral child under ``path``."""

    def __init__(self, zk: FakeZk, path: str) -> None:
        self.zk, self.path, self.node = zk, path, f"{path}/lock"

    def acquire(self, blocking: bool = True) -> bool:
        try:
            self.zk.create(self.node, b"", ephemeral=True, makepath=True)
            return True
        except NodeExistsError:
            return False

    def release(self) -> None:
        self.zk.delete(self.node)


class ManualScheduler:
    """A Scheduler whose time only moves in ``advance``; ``run()`` drains what is due."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, list[Any]]] = []
        self._seq = itertools.count()

    def call_soon(self, fn: Callable[[], None]) -> None:
        self.call_later(0.0, fn)

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> Any:
        entry: list[Any] = [fn, False]
        heapq.heappush(self._heap, (self.now + delay_s, next(self._seq), entry))

        class H:
            def cancel(self_inner) -> None:
                entry[1] = True

        return H()

    def in_thread(self) -> bool:
        return True  # everything runs inline when asked to wait

    def run(self) -> None:
        while self._heap and self._heap[0][0] <= self.now:
            _, _, (fn, cancelled) = heapq.heappop(self._heap)
            if not cancelled:
                fn()

    def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while self._heap and self._heap[0][0] <= target:
            self.now = max(self.now, self._heap[0][0])
            self.run()
        self.now = target
        self.run()

    def pending(self) -> list[float]:
        return sorted(t - self.now for t, _, (fn, c) in self._heap if not c)
