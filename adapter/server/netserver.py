"""The TCP listener on ``canal.ip:canal.port``: one thread per connection, each running a Session.

A connection's failure (bad input, idle timeout, a crash in a request) ends that connection only.
``stop()`` closes the listener and every open connection.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from typing import TYPE_CHECKING

from adapter.server.session import Session

if TYPE_CHECKING:
    from adapter.server.config import ServerConfig
    from adapter.server.embedded import EmbeddedServer
    from adapter.server.metrics import ServerMetrics

log = logging.getLogger(__name__)


class CanalNetServer:
    """Accepts canal protocol connections; ``port`` is the bound port (useful with ``canal.port=0``)."""

    def __init__(self, config: ServerConfig, server: EmbeddedServer, *, metrics: ServerMetrics | None = None,
                 backlog: int = 128) -> None:
        self.config, self.server, self.metrics, self.backlog = config, server, metrics, backlog
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.port: int = 0

    def start(self) -> int:
        """Bind and start accepting; returns the bound port (OSError if it cannot bind)."""
        host = self.config.ip or "0.0.0.0"
        listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((host, self.config.port))
            listener.listen(self.backlog)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept_loop, name=f"canal-accept-{self.port}", daemon=True)
        self._thread.start()
        log.info("canal server listening", extra={"ip": host, "port": self.port})
        return self.port

    def stop(self) -> None:
        self._stopping.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if self._thread is not None:
            self._thread.join(10)
        with self._lock:
            conns = list(self._conns.items())
        for sock, _ in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for _, thread in conns:
            thread.join(10)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._conns)

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopping.is_set():
            try:
                sock, addr = listener.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                log.exception("accept failed")
                self._stopping.wait(0.1)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            peer = f"{addr[0]}:{addr[1]}"
            thread = threading.Thread(target=self._serve, args=(sock, peer), name=f"canal-conn-{peer}", daemon=True)
            with self._lock:
                self._conns[sock] = thread
            thread.start()

    def _serve(self, sock: socket.socket, peer: str) -> None:
        try:
            Session(sock, peer, self.server, self.config, self.metrics).run()
        except Exception:  # Session handles its own errors; this is the last guard for the thread
            log.exception("connection handler crashed", extra={"peer": peer})
        finally:
            with self._lock:
                self._conns.pop(sock, None)
            with contextlib.suppress(OSError):
                sock.close()
