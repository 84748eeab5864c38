"""Meta managers for memory-instance and file-instance: subscriptions and acked cursors per client.

FileMetaManager keeps canal's ``<canal.file.data.dir>/<destination>/meta.dat`` JSON shape, flushed
every ``canal.file.flush.period`` ms when something changed, at once on subscribe/unsubscribe and
on stop (canal skips the final flush and loses up to one period; we do not). Writes are atomic
(tmp + fsync + rename). A document with no client data never replaces an existing file except for
an explicit unsubscribe of the last client (canal #4312 guards against losing cursors that way).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from adapter.errors import ConfigError
from adapter.server.contracts import ClientIdentity, cursor_from_canal, cursor_to_canal
from adapter.server.events import LogPosition, SourceAddress

log = logging.getLogger(__name__)


class MemoryMetaManager:
    """memory-instance: nothing is persisted."""

    def __init__(self, destination: str) -> None:
        self.destination = destination
        self._lock = threading.RLock()
        self._clients: dict[ClientIdentity, ClientIdentity] = {}  # key: identity (filter ignored) → latest
        self._cursors: dict[ClientIdentity, LogPosition] = {}

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def flush(self) -> None:
        pass

    def subscribe(self, client: ClientIdentity) -> None:
        with self._lock:
            self._clients.pop(client, None)
            self._clients[client] = client  # keeps the latest filter

    def unsubscribe(self, client: ClientIdentity) -> None:
        with self._lock:
            self._clients.pop(client, None)
            self._cursors.pop(client, None)

    def has_subscribe(self, client: ClientIdentity) -> bool:
        with self._lock:
            return client in self._clients

    def list_subscribed(self, destination: str) -> list[ClientIdentity]:
        with self._lock:
            return [c for c in self._clients.values() if c.destination == destination]

    def get_cursor(self, client: ClientIdentity) -> LogPosition | None:
        with self._lock:
            return self._cursors.get(client)

    def update_cursor(self, client: ClientIdentity, position: LogPosition) -> None:
        with self._lock:
            if client in self._clients:
                self._cursors[client] = position


class FileMetaManager(MemoryMetaManager):
    """file-instance: memory state persisted to ``meta.dat`` in canal's JSON shape."""

    def __init__(self, data_dir: Path, destination: str, source: SourceAddress, flush_period_ms: int = 1000) -> None:
        super().__init__(destination)
        self.path = Path(data_dir) / destination / "meta.dat"
        self.source = source
        self.period = flush_period_ms / 1000.0
        self._dirty = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._load()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"meta-flush-{self.destination}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.flush()
            except OSError as e:  # retried next period; the stop flush raises instead
                log.error("meta flush failed", extra={"destination": self.destination, "path": str(self.path),
                                                      "error": str(e)})

    # ------------------------------------------------------------ changes
    def subscribe(self, client: ClientIdentity) -> None:
        with self._lock:
            super().subscribe(client)
            self._dirty = True
        self._write(allow_empty=False)

    def unsubscribe(self, client: ClientIdentity) -> None:
        with self._lock:
            known = client in self._clients
            super().unsubscribe(client)
            self._dirty = self._dirty or known
        if known:
            self._write(allow_empty=True)

    def update_cursor(self, client: ClientIdentity, position: LogPosition) -> None:
        with self._lock:
            if client in self._clients and self._cursors.get(client) != position:
                super().update_cursor(client, position)
                self._dirty = True

    def flush(self) -> None:
        """Write if anything changed since the last write."""
        if self._dirty:
            self._write(allow_empty=False)

    # ------------------------------------------------------------ file
    def _document(self) -> dict[str, Any]:
        datas = []
        for c in self._clients.values():
            data: dict[str, Any] = {
                "clientIdentity": {"clientId": c.client_id, "destination": c.destination, "filter": c.filter}
            }
            cursor = self._cursors.get(c)
            if cursor is not None:
                data["cursor"] = cursor_to_canal(cursor, self.source, with_type=False)
            datas.append(data)
        return {"clientDatas": datas, "destination": self.destination}

    def _write(self, *, allow_empty: bool) -> None:
        with self._write_lock:
            with self._lock:
                doc = self._document()
                self._dirty = False
            if not doc["clientDatas"] and not allow_empty and self.path.exists():
                return
            data = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
            try:
                _atomic_write(self.path, data)
            except OSError:
                with self._lock:
                    self._dirty = True
                raise

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            doc = json.loads(self.path.read_bytes())
            datas = doc.get("clientDatas") or []
            loaded: list[tuple[ClientIdentity, LogPosition | None]] = []
            for d in datas:
                ident = d["clientIdentity"]
                client = ClientIdentity(str(ident.get("destination") or self.destination), int(ident["clientId"]),
                                        str(ident.get("filter") or ""))
                cursor = cursor_from_canal(d["cursor"])[0] if d.get("cursor") else None
                loaded.append((client, cursor))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ConfigError(f"cannot read meta file (fix or remove it): {e!r}", source=str(self.path)) from e
        with self._lock:
            for client, cursor in loaded:
                if client.destination != self.destination:
                    continue
                self._clients[client] = client
                if cursor is not None:
                    self._cursors[client] = cursor


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a crash leaves either the old or the new file, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # persist the rename itself (not possible on every filesystem)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
