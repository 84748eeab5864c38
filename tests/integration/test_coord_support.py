"""Helpers shared by the coordination/HA integration tests (no tests here): a TCP proxy that can cut
a ZooKeeper client off without closing its socket, an event recorder, and a polling wait."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any


def wait_for(cond: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll ``cond`` until truthy; fail with ``what`` after ``timeout`` (generous, never a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


class Recorder:
    """Ordered log of on/off events across monitors; checks that at most one was ever on."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []
        self.on: set[str] = set()
        self.overlaps: list[tuple[str, set[str]]] = []

    def active(self, name: str) -> Callable[[], None]:
        def fn() -> None:
            with self.lock:
                if self.on - {name}:
                    self.overlaps.append((name, set(self.on)))
                self.on.add(name)
                self.events.append((name, "on"))

        return fn

    def inactive(self, name: str) -> Callable[[], None]:
        def fn() -> None:
            with self.lock:
                self.on.discard(name)
                self.events.append((name, "off"))

        return fn

    def count(self, name: str, kind: str) -> int:
        with self.lock:
            return sum(1 for e in self.events if e == (name, kind))


class GateWatcher(threading.Thread):
    """Samples ``is_active`` of several parties; records any instant when two were active at once."""

    def __init__(self, parties: dict[str, Callable[[], bool]], interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.parties = parties
        self.interval = interval
        self.stop_event = threading.Event()
        self.overlaps: list[list[str]] = []
        self.seen: set[str] = set()

    def run(self) -> None:
        while not self.stop_event.is_set():
            on = [n for n, f in self.parties.items() if f()]
            self.seen.update(on)
            if len(on) > 1:
                self.overlaps.append(on)
            time.sleep(self.interval)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(5)


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target. ``blackhole(True)`` silently drops bytes both ways while
    keeping the sockets open: to ZooKeeper it looks like a network partition (no RST, no FIN)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listen = socket.create_server(("127.0.0.1", 0))
        self.port = self._listen.getsockname()[1]
        self._blackhole = threading.Event()
        self._stopped = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def blackhole(self, on: bool) -> None:
        if on:
            self._blackhole.set()
        else:
            self._blackhole.clear()

    def drop_connections(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.close()

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listen.close()
        self.drop_connections()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listen.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not self._blackhole.is_set():
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
