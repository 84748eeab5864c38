"""ZkMetaManager: subscriptions and acked cursors in ZooKeeper, laid out as canal's default-instance does.

- a subscription is the persistent node ``/otter/canal/destinations/{dest}/{clientId}``, plus
  ``.../filter`` holding the raw filter when it is non-empty;
- the cursor is ``.../{clientId}/cursor`` holding canal's LogPosition JSON with ``@type`` first (a
  Java canal reading the same ZooKeeper can resume from it);
- cursors are kept in memory and flushed every ``canal.zookeeper.flush.period`` when changed.

Deviations from canal (PeriodMixedMetaManager + ZooKeeperMetaManager), on purpose:
- ``stop()`` flushes once more (canal loses up to one period of acks on a clean stop);
- subscribe/unsubscribe write synchronously (canal: asynchronously) so a reply means it is stored;
- an empty filter on re-subscribe deletes a stale ``filter`` node (canal leaves the old one);
- ``refresh(dest)`` re-reads a destination before this server starts it, since in a cluster the
  previous runner (another process) moved the cursors while we were standby;
- an unreadable cursor node is an error naming the node, never a silent fresh start.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kazoo.exceptions import KazooException, NoNodeError, NotEmptyError

from adapter.coordination import paths
from adapter.coordination.session import BoundedClient, wait_result
from adapter.errors import CoordinationLost, FatalError
from adapter.server.contracts import ClientIdentity, cursor_from_canal, cursor_to_canal
from adapter.server.events import LogPosition, SourceAddress

log = logging.getLogger(__name__)

SourceLookup = Callable[[str], "SourceAddress | None"] | Mapping[str, SourceAddress]
_IO_TIMEOUT_S = 30.0


@dataclass
class _Client:
    identity: ClientIdentity
    cursor: LogPosition | None = None
    dirty: bool = False
    broken: str = ""  # why the stored cursor could not be read


class ZkMetaManager:
    """MetaManager over ZooKeeper (``zk`` is a KazooClient or a ZkSession); see the module docstring."""

    def __init__(
        self,
        zk: Any,
        destination_source_address: SourceLookup,
        flush_period_ms: int = 1000,
        *,
        destinations: Iterable[str] | None = None,
    ) -> None:
        self._raw = getattr(zk, "client", zk)
        self._zk = BoundedClient(self._raw)  # fail fast while suspended instead of queueing behind a partition
        src = destination_source_address
        self._source: Callable[[str], SourceAddress | None] = src.get if isinstance(src, Mapping) else src
        self._period_s = flush_period_ms / 1000.0
        self._destinations = list(destinations) if destinations is not None else None
        self._lock = threading.Lock()  # memory state
        self._io_lock = threading.Lock()  # orders flushes against (un)subscribe writes
        self._clients: dict[str, dict[int, _Client]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Read every destination's subscriptions and cursors, then start the periodic flush."""
        dests = self._destinations
        if dests is None:
            try:
                dests = self._zk.get_children(paths.DESTINATIONS_ROOT)
            except NoNodeError:
                dests = []
            except KazooException as e:
                raise CoordinationLost(f"cannot read {paths.DESTINATIONS_ROOT}: {e}") from e
        for dest in dests:
            self.refresh(dest)
        if self._period_s > 0 and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="zk-meta-flush", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(_IO_TIMEOUT_S)
            self._thread = None
        self.flush()

    def refresh(self, destination: str) -> None:
        """Re-read ``destination`` from ZooKeeper; cursors changed here but not yet flushed are kept."""
        loaded = self._load(destination)
        with self._lock:
            mine = self._clients.get(destination, {})
            for cid, c in mine.items():
                if c.dirty:
                    loaded[cid] = c
            self._clients[destination] = loaded

    # ------------------------------------------------------------ subscriptions
    def subscribe(self, client: ClientIdentity) -> None:
        node = paths.client_node(client.destination, client.client_id)
        fpath = paths.client_filter(client.destination, client.client_id)
        with self._io_lock:
            try:
                self._zk.ensure_path(node)
                if client.filter:
                    self._write(fpath, client.filter.encode())
                elif self._zk.exists(fpath):
                    self._zk.delete(fpath)
            except NoNodeError:
                pass
            except KazooException as e:
                raise CoordinationLost(f"cannot store subscription {node}: {e}") from e
            with self._lock:
                clients = self._clients.setdefault(client.destination, {})
                old = clients.get(client.client_id)
                clients[client.client_id] = _Client(
                    client, old.cursor if old else None, old.dirty if old else False, old.broken if old else ""
                )

    def unsubscribe(self, client: ClientIdentity) -> None:
        node = paths.client_node(client.destination, client.client_id)
        with self._io_lock:
            with self._lock:
                self._clients.get(client.destination, {}).pop(client.client_id, None)
            for _ in range(5):  # a concurrent ephemeral child (a consumer's running node) may race the delete
                try:
                    self._zk.delete(node, recursive=True)
                    return
                except NoNodeError:
                    return
                except NotEmptyError:
                    continue
                except KazooException as e:
                    raise CoordinationLost(f"cannot delete subscription {node}: {e}") from e
            raise CoordinationLost(f"cannot delete subscription {node}: children keep appearing")

    def has_subscribe(self, client: ClientIdentity) -> bool:
        with self._lock:
            return client.client_id in self._clients.get(client.destination, {})

    def list_subscribed(self, destination: str) -> list[ClientIdentity]:
        with self._lock:
            clients = self._clients.get(destination, {})
            return [clients[cid].identity for cid in sorted(clients)]

    # ------------------------------------------------------------ cursors
    def get_cursor(self, client: ClientIdentity) -> LogPosition | None:
        with self._lock:
            c = self._clients.get(client.destination, {}).get(client.client_id)
            if c is None:
                return None
            if c.broken and c.cursor is None:
                raise FatalError(c.broken)
            return c.cursor

    def update_cursor(self, client: ClientIdentity, position: LogPosition) -> None:
        with self._lock:
            clients = self._clients.setdefault(client.destination, {})
            c = clients.get(client.client_id)
            if c is None:
                c = clients[client.client_id] = _Client(client)
            c.cursor, c.dirty = position, True
        if self._period_s <= 0:
            self.flush()  # write-through when no period is configured

    def flush(self) -> None:
        """Write every changed cursor (requests pipelined); failed ones stay dirty for the next flush."""
        with self._io_lock:
            with self._lock:
                todo = [(c, c.cursor) for cs in self._clients.values() for c in cs.values() if c.dirty and c.cursor]
            if not todo or not self._zk.connected:
                return
            pending = []
            for c, pos in todo:
                assert pos is not None
                path = paths.client_cursor(c.identity.destination, c.identity.client_id)
                data = self._cursor_json(c.identity.destination, pos)
                pending.append((c, pos, path, data, self._raw.set_async(path, data)))
            for c, pos, path, data, result in pending:
                try:
                    try:
                        wait_result(self._raw, result, _IO_TIMEOUT_S)
                    except NoNodeError:
                        self._zk.create(path, data, makepath=True)
                except Exception as e:  # kazoo raises its own and timeouts; keep it dirty, retry next period
                    log.warning("cursor flush failed", extra={"path": path, "error": repr(e)})
                    continue
                with self._lock:
                    if c.cursor == pos:
                        c.dirty = False

    # ------------------------------------------------------------ plumbing
    def _cursor_json(self, destination: str, pos: LogPosition) -> bytes:
        src = self._source(destination)
        body = cursor_to_canal(pos, src or SourceAddress("", 0), with_type=True)
        if src is None:
            del body["identity"]["sourceAddress"]
        return paths.dumps(body)

    def _write(self, path: str, data: bytes) -> None:
        try:
            self._zk.set(path, data)
        except NoNodeError:
            self._zk.create(path, data, makepath=True)

    def _load(self, destination: str) -> dict[int, _Client]:
        try:
            names = self._zk.get_children(paths.destination(destination))
        except NoNodeError:
            return {}
        except KazooException as e:
            raise CoordinationLost(f"cannot read {paths.destination(destination)}: {e}") from e
        ids = [int(n) for n in names if paths.is_client_id(n)]
        reads = {
            (cid, kind): self._raw.get_async(
                paths.client_filter(destination, cid) if kind == "filter" else paths.client_cursor(destination, cid)
            )
            for cid in ids
            for kind in ("filter", "cursor")
        }
        out: dict[int, _Client] = {}
        for cid in ids:
            flt = self._result(self._raw, reads[(cid, "filter")])
            raw = self._result(self._raw, reads[(cid, "cursor")])
            c = _Client(ClientIdentity(destination, cid, flt.decode("utf-8", "replace") if flt else ""))
            if raw:
                try:
                    c.cursor, _ = cursor_from_canal(json.loads(raw))
                except (ValueError, KeyError, TypeError) as e:
                    c.broken = (
                        f"{paths.client_cursor(destination, cid)}: cannot read canal LogPosition JSON "
                        f"(expected {{'postion': {{'journalName', 'position', ...}}}}): {e}"
                    )
                    log.error("unreadable cursor node", extra={"path": paths.client_cursor(destination, cid)})
            out[cid] = c
        return out

    @staticmethod
    def _result(client: Any, async_result: Any) -> bytes | None:
        try:
            data, _ = wait_result(client, async_result, _IO_TIMEOUT_S)
            return bytes(data) if data else None
        except NoNodeError:
            return None
        except KazooException as e:
            raise CoordinationLost(f"ZooKeeper read failed: {e}") from e

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            try:
                self.flush()
            except Exception:
                log.exception("periodic cursor flush failed")
