"""CanalInstance: one destination's meta, store and binlog parser, started and stopped in canal's order.

Start: meta → store → parser; the parser resumes from the minimum cursor over the subscribed
clients (else from the configured start), and each client starts after its own cursor. Stop runs
in reverse and flushes the meta. Requests (subscribe/get/ack/rollback) go through here so that an
ack moves both the store and the client's persisted cursor.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from adapter.errors import ConfigError, ProtocolError, RetriableError
from adapter.server.config import InstanceConfig
from adapter.server.contracts import ClientIdentity, MetaManager
from adapter.server.events import Event, EventSink, LogPosition, ParserSettings
from adapter.server.store import EventStore

log = logging.getLogger(__name__)


class Parser(Protocol):
    """What the instance needs from ``adapter.server.binlog.BinlogParser``."""

    error: BaseException | None
    position: LogPosition | None
    stats: Any

    def start(self, resume_from: LogPosition | None = None) -> None: ...

    def stop(self) -> None: ...

    def set_filter(self, regex: str) -> None: ...


ParserFactory = Callable[[ParserSettings, EventSink], Parser]
SourceCheck = Callable[[ParserSettings], None]


def default_parser_factory(settings: ParserSettings, sink: EventSink) -> Parser:
    from adapter.server.binlog import BinlogParser

    return BinlogParser(settings, sink)


def default_source_check(settings: ParserSettings) -> None:
    from adapter.server.binlog import check_source

    check_source(settings)


class CanalInstance:
    """One running destination. ``own_meta``: start/stop the meta manager here (not when it is shared)."""

    def __init__(
        self,
        config: InstanceConfig,
        meta: MetaManager,
        *,
        own_meta: bool = True,
        parser_factory: ParserFactory = default_parser_factory,
        source_check: SourceCheck | None = default_source_check,
        start_wait_s: float = 10.0,
    ) -> None:
        self.config = config
        self._start_wait_s = start_wait_s
        self.destination = config.destination
        self.meta = meta
        self._own_meta = own_meta
        self._parser_factory = parser_factory
        self._source_check = source_check
        self.store: EventStore | None = None
        self.parser: Parser | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start meta, store and parser; raises (and leaves nothing running) on failure."""
        cfg = self.config
        if self._own_meta:
            self.meta.start()
        try:
            settings = cfg.parser
            subscribed = self.meta.list_subscribed(self.destination)
            filters = [c.filter for c in subscribed if c.filter]
            if filters:  # canal re-applies the subscriptions' filter when the parser starts
                settings = dataclasses.replace(settings, filter_regex=filters[-1])
            self._check_source(settings)
            store = EventStore(
                capacity=cfg.buffer_size, max_bytes=cfg.buffer_bytes, memunit=cfg.memunit,
                batch_mode=cfg.batch_mode, ddl_isolation=settings.ddl_isolation,
                floor_source=lambda: self.parser.position if self.parser is not None else None,
            )
            cursors = []
            for client in subscribed:
                cursor = self.meta.get_cursor(client)
                store.subscribe(client.client_id, cursor)
                if cursor is not None:
                    cursors.append(cursor)
            resume = min(cursors) if cursors else None
            store.set_floor(resume)
            self.store = store
            self.parser = self._parser_factory(settings, store)
            self.parser.start(resume)
            self._wait_parser_started(self.parser)
        except BaseException:
            self._teardown()
            raise
        log.info("instance started", extra={"destination": self.destination, "clients": len(subscribed),
                                            "resume": _fmt(resume), "meta": cfg.meta_kind})

    def _wait_parser_started(self, parser: Parser) -> None:
        """Wait (bounded) until the parser has fixed its start position, so that a change made after
        ``start()`` returns is delivered even when the start is "the binlog's current end"."""
        deadline = time.monotonic() + self._start_wait_s
        while parser.position is None and parser.error is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if parser.position is None:
            log.warning("binlog parser has not fixed its start position yet", extra={
                "destination": self.destination, "error": str(parser.error) if parser.error else None})

    def stop(self) -> None:
        """Parser → store → meta (the meta flushes the last acks)."""
        self._teardown()
        log.info("instance stopped", extra={"destination": self.destination})

    def _teardown(self) -> None:
        parser, self.parser = self.parser, None
        store, self.store = self.store, None
        try:
            if parser is not None:
                parser.stop()
        finally:
            if store is not None:
                store.close()
            try:
                if self._own_meta:
                    self.meta.stop()
                else:
                    self.meta.flush()
            except Exception:  # the un-flushed acks are delivered again after the restart (at-least-once)
                log.exception("final meta flush failed", extra={"destination": self.destination})

    def _check_source(self, settings: ParserSettings) -> None:
        if self._source_check is None:
            return
        try:
            self._source_check(settings)
        except ConfigError as e:
            raise ConfigError(str(e), source=self.config.source_file, key=e.key) from e
        except RetriableError as e:  # the parser retries connection faults by itself
            log.warning("source not reachable at start, the parser will retry",
                        extra={"destination": self.destination, "error": str(e)})

    # ------------------------------------------------------------ requests
    def _store(self) -> EventStore:
        store = self.store
        if store is None:
            raise ProtocolError(f"destination:{self.destination} should start first")
        return store

    def subscribe(self, client: ClientIdentity) -> None:
        store = self._store()
        if client.filter and self.parser is not None:
            try:
                self.parser.set_filter(client.filter)  # replaces the instance's filter, as canal
            except ConfigError as e:
                raise ProtocolError(f"bad subscription filter {client.filter!r}: {e}") from e
        with self._lock:
            self.meta.subscribe(client)
            cursor = self.meta.get_cursor(client)
            floor = store.subscribe(client.client_id, cursor)
            if cursor is None and floor is not None:
                self.meta.update_cursor(client, floor)

    def unsubscribe(self, client: ClientIdentity) -> bool:
        """Remove the subscription; True when no subscriber is left."""
        store = self._store()
        with self._lock:
            store.unsubscribe(client.client_id)
            self.meta.unsubscribe(client)
            return not self.meta.list_subscribed(self.destination)

    def get(self, client: ClientIdentity, fetch_size: int, timeout: float | None,
            cancel: Callable[[], bool] | None = None) -> tuple[int, list[Event]]:
        self._require_subscribed(client)
        return self._store().get(client.client_id, fetch_size, timeout, cancel)

    def ack(self, client: ClientIdentity, batch_id: int) -> None:
        store = self._store()
        self._require_subscribed(client)
        with self._lock:
            position = store.ack(client.client_id, batch_id)
            if position is None and self.meta.get_cursor(client) is None:
                position = store.floor  # nothing to move to yet, but give the client a safe cursor
            if position is not None:
                self.meta.update_cursor(client, position)

    def rollback(self, client: ClientIdentity, batch_id: int) -> None:
        store = self._store()
        if not store.is_subscribed(client.client_id):
            return  # clients roll back while connecting, before they subscribe (canal ignores it)
        store.rollback(client.client_id, batch_id)

    def _require_subscribed(self, client: ClientIdentity) -> None:
        if not self.meta.has_subscribe(client):
            raise ProtocolError(f"client:{client.client_id} should subscribe first")
        self._store()

    # ------------------------------------------------------------ observation
    @property
    def parser_error(self) -> BaseException | None:
        return self.parser.error if self.parser is not None else None


def _fmt(pos: LogPosition | None) -> str:
    return f"{pos.journal_name}:{pos.position}" if pos else "configured start"
