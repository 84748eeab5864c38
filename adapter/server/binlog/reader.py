"""BinlogParser: the thread that streams the binlog, converts it and puts Events into the store.

It reconnects by itself (back-off, injectable sleep) from the last transaction boundary it put
into the sink; events of a transaction that were already put before the connection broke are
not put twice. Connection faults are retried forever; anything else stops the parser and is
kept in ``.error`` for the instance to report.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pymysql

from adapter.errors import ConfigError
from adapter.server.binlog import stream as S
from adapter.server.binlog.convert import ColumnTypeLookup, Converter, ParserStats
from adapter.server.binlog.filter import TableFilter
from adapter.server.binlog.positions import StartPoint, resolve_start
from adapter.server.binlog.source import ColumnTypes, connect, connection_settings, is_retriable, server_timezone
from adapter.server.events import EventSink, LogPosition, ParserSettings

log = logging.getLogger(__name__)

_DEFAULT: Any = object()


class BinlogParser:
    """Streams one source's binlog into an ``EventSink`` (see docs/parser.md)."""

    def __init__(
        self,
        settings: ParserSettings,
        sink: EventSink,
        *,
        stats: ParserStats | None = None,
        stream_factory: S.StreamFactory | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] | None = None,
        connect_fn: Callable[..., Any] = pymysql.connect,
        tz: datetime.tzinfo | None = None,
        column_types: ColumnTypeLookup | None = _DEFAULT,
        backoff: tuple[float, float] = (1.0, 30.0),
        heartbeat_s: float = 5.0,
        max_pending_events: int = 1024,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.stats = stats or ParserStats()
        self.error: BaseException | None = None
        self.position: LogPosition | None = None
        self._factory = stream_factory or S.library_stream
        self._clock = clock
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._connect = connect_fn
        self._tz = tz
        self._own_types = column_types is _DEFAULT
        self._column_types: ColumnTypeLookup | None = (
            ColumnTypes(settings, connect_fn) if column_types is _DEFAULT else column_types)
        self._backoff = backoff
        self._heartbeat = heartbeat_s
        self._max_pending = max_pending_events
        self._filter = TableFilter(settings.filter_regex, settings.black_regex)
        self._converter: Converter | None = None
        self._thread: threading.Thread | None = None
        self._stream: S.BinlogStream | None = None
        self._lock = threading.Lock()
        self._log_extra = {"destination": settings.destination}

    # ------------------------------------------------------------------ public API
    def start(self, resume_from: LogPosition | None = None) -> None:
        """Start the parser thread; ``resume_from`` is a stored cursor (a boundary) or None."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("parser already running")
        self._stop.clear()
        self.error = None
        self._thread = threading.Thread(target=self._main, args=(resume_from,),
                                        name=f"binlog-{self.settings.destination}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop streaming and join the thread."""
        self._stop.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.interrupt()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("binlog parser thread did not stop", extra=self._log_extra)
        if self._own_types and isinstance(self._column_types, ColumnTypes):
            self._column_types.close()

    def set_filter(self, regex: str) -> None:
        """Replace the include filter (a client's subscription filter); ConfigError if invalid."""
        flt = TableFilter(regex, self.settings.black_regex)
        self._filter = flt
        if self._converter is not None:
            self._converter.set_filter(flt)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ thread
    def _request(self, journal: str, position: int, *, gtid: str = "", blocking: bool = True) -> S.StreamRequest:
        return S.StreamRequest(connection=connection_settings(self.settings), server_id=int(self.settings.slave_id),
                               journal=journal, position=position, gtid=gtid, blocking=blocking,
                               heartbeat_s=self._heartbeat)

    def _prepare(self, resume_from: LogPosition | None) -> tuple[datetime.tzinfo, StartPoint] | None:
        """Time zone and start position, retrying connection faults; None when stopped or fatal."""
        delay = self._backoff[0]
        while not self._stop.is_set():
            try:
                return self._resolve(resume_from)
            except Exception as exc:
                if not is_retriable(exc):
                    self._fail(exc)
                    return None
                log.warning("source not reachable, retrying: %s", exc, extra=self._log_extra)
                self._sleep(delay)
                delay = min(delay * 2, self._backoff[1])
        return None

    def _resolve(self, resume_from: LogPosition | None) -> tuple[datetime.tzinfo, StartPoint]:
        opened: list[Any] = []

        def control() -> Any:  # opened only when needed (a stored cursor needs no lookup)
            if not opened:
                opened.append(connect(self.settings, self._connect))
            return opened[0]

        try:
            tz = self._tz or server_timezone(control())
            start = resolve_start(self.settings, resume_from, control, self._factory,
                                  lambda j, p: self._request(j, p, blocking=False))
        finally:
            for conn in opened:
                conn.close()
        return tz, start

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        log.error("binlog parser stopped: %s", exc, extra=self._log_extra,
                  exc_info=not isinstance(exc, ConfigError))

    def _main(self, resume_from: LogPosition | None) -> None:
        try:
            prepared = self._prepare(resume_from)
            if prepared is not None:
                self._run(*prepared)
        except BaseException as exc:  # the thread must never die silently
            self._fail(exc)

    def _run(self, tz: datetime.tzinfo, start: StartPoint) -> None:
        self.position = start.position
        gtid_mode = start.gtid_mode
        conv = self._converter = Converter(tz=tz, table_filter=self._filter, stats=self.stats,
                                           column_types=self._column_types, max_pending_events=self._max_pending)
        log.info("binlog parser starting", extra={**self._log_extra, "journal": start.position.journal_name,
                                                  "position": start.position.position, "gtid": start.position.gtid})
        emitted_in_txn = 0  # events of the open transaction already in the sink
        suppress = 0  # how many of the replayed transaction's first events to drop after a reconnect
        delay = self._backoff[0]
        while not self._stop.is_set():
            pos = self.position
            conv.reset(pos)
            conv.set_filter(self._filter)
            stream: S.BinlogStream | None = None
            try:
                gtid = pos.gtid if gtid_mode and pos.gtid else ""
                stream = self._factory(self._request(pos.journal_name, pos.position, gtid=gtid))
                with self._lock:
                    self._stream = stream
                if self._stop.is_set():
                    break
                for ev in stream:
                    out = conv.feed(ev)
                    if self._stop.is_set():
                        return
                    if not out:
                        continue
                    if suppress:
                        dropped = min(suppress, len(out))
                        suppress -= dropped
                        out = out[dropped:]
                        if not out:
                            continue
                    if not self.sink.put(out, self._stop):
                        return
                    last = out[-1]
                    if last.boundary:
                        self.position = last.position
                        emitted_in_txn = 0
                        self.stats.delay_ms = max(0, int(self._clock() * 1000) - last.position.timestamp)
                    else:
                        emitted_in_txn += len(out)
                    delay = self._backoff[0]
                if self._stop.is_set():
                    return
                raise ConnectionResetError("the source closed the binlog stream")
            except Exception as exc:
                if self._stop.is_set():
                    return
                if not is_retriable(exc):
                    self._fail(exc)
                    return
                self.stats.reconnects += 1
                suppress = emitted_in_txn
                log.warning("binlog connection lost, reconnecting in %.1fs: %s", delay, exc,
                            extra={**self._log_extra, "journal": pos.journal_name, "position": pos.position})
                self._sleep(delay)
                delay = min(delay * 2, self._backoff[1])
            finally:
                with self._lock:
                    self._stream = None
                if stream is not None:
                    try:
                        stream.close()
                    except Exception as exc:  # a broken connection may fail to close
                        log.debug("closing the binlog stream failed: %s", exc, extra=self._log_extra)
