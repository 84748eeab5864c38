"""The binlog connection: python-mysql-replication behind a small seam that yields ``BinlogEvent``s.

``StreamFactory`` is the seam: the parser asks it for a stream starting at a file/position (or,
with ``gtid_on``, at a MariaDB GTID state) and iterates normalized events. The default factory
wraps ``BinLogStreamReader`` with the library's silent reconnect switched off (the parser
reconnects itself from its own last boundary), the MariaDB GTID dump-packet length fixed, and
rows events handed over *undecoded* (the parser decodes row images itself, see rowcodec).

TABLE_MAP parsing is most of the library's cost for small transactions, and a table's map is the
same bytes in every transaction: inside our own streams the library's TABLE_MAP class resolves to a
caching subclass (keyed by the event's exact bytes, so the result is identical). The switch is
thread-local and only on while one of our streams reads, so other python-mysql-replication readers
in the process are untouched. ``MYSQL_EXPECTED_ERROR_CODES = []`` is process-wide.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import pymysqlreplication.binlogstream as _bls
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication import event as _ev
from pymysqlreplication import row_event as _rows
from pymysqlreplication.constants import BINLOG
from pymysqlreplication.event import BinLogEvent
from pymysqlreplication.packet import BinLogPacketWrapper

from adapter.server.binlog.tabledef import TableDef, table_from_library

# The library would silently reconnect on 2013/2006 and replay from its *original* start
# (python-mysql-replication#367): a duplicate loop. We reconnect ourselves from our last boundary.
_bls.MYSQL_EXPECTED_ERROR_CODES = []

# Event kinds
ROTATE, FORMAT, GTID, QUERY, XID, TABLE_MAP, ROWS, HEARTBEAT, XA_PREPARE, UNSUPPORTED, OTHER = range(11)
# Rows kinds (canal EventType values)
ROWS_INSERT, ROWS_UPDATE, ROWS_DELETE = 1, 2, 3

#: MariaDB compressed events (log_bin_compress=ON): the library cannot decode them; we refuse.
_COMPRESSED = {0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE}
_MARIADB_FL_STANDALONE = 1


@dataclass(slots=True)
class BinlogEvent:
    """One binlog event, normalized. ``log_pos`` is the offset right after it (0 for fake events)."""

    kind: int
    timestamp: int = 0
    server_id: int = 0
    log_pos: int = 0
    size: int = 0
    next_file: str = ""  # ROTATE
    rotate_pos: int = 0
    gtid: str = ""  # GTID ("domain-server-seq" or "uuid:gno")
    standalone: bool = False  # GTID: a statement outside any transaction (DDL)
    mariadb: bool = False
    sql: str = ""  # QUERY
    schema: str = ""
    thread_id: int = 0
    xid: int = 0  # XID
    table: TableDef | None = None  # TABLE_MAP
    table_id: int = 0  # ROWS
    rows_kind: int = 0
    data: bytes = b""
    start: int = 0  # row images are data[start:end]
    end: int = 0
    bitmap: bytes = b""
    bitmap2: bytes = b""
    detail: str = field(default="")  # UNSUPPORTED: what it is


@dataclass(frozen=True)
class StreamRequest:
    """Where and how to stream. ``connection`` is a fresh dict per request (the library mutates it)."""

    connection: dict[str, Any]
    server_id: int
    journal: str = ""
    position: int = 4
    gtid: str = ""  # non-empty: MariaDB GTID mode (slave_connect_state), journal/position ignored
    blocking: bool = True
    heartbeat_s: float = 5.0


class BinlogStream(Protocol):
    def __iter__(self) -> Iterator[BinlogEvent]: ...

    def close(self) -> None: ...

    def interrupt(self) -> None:
        """Called from another thread: make a blocked read return (with an error or the end)."""
        ...


StreamFactory = Callable[[StreamRequest], BinlogStream]


class _Reader(BinLogStreamReader):  # type: ignore[misc]
    """BinLogStreamReader with the MariaDB GTID COM_BINLOG_DUMP length fixed (declares 14, sends 15)."""

    def _BinLogStreamReader__set_mariadb_settings(self) -> bytes:
        packet: bytes = BinLogStreamReader._BinLogStreamReader__set_mariadb_settings(self)
        return struct.pack("<i", len(packet) - 4) + packet[4:]


_TM_FIELDS = ("table_id", "flags", "schema_length", "schema", "table_length", "table", "column_count", "columns",
              "dbms", "null_bitmask", "table_obj", "optional_metadata")
_TM_CACHE: dict[tuple[Any, ...], list[Any]] = {}  # key → [parsed fields, TableDef | None]


class CachedTableMapEvent(_rows.TableMapEvent):  # type: ignore[misc]
    """TableMapEvent that reuses the parse of an identical earlier TABLE_MAP (same id, same layout)."""

    def __init__(self, from_packet: Any, event_size: int, table_map: Any, ctl_connection: Any, **kwargs: Any) -> None:
        raw = from_packet.packet
        key = (raw._data[raw._position : raw._position + event_size], kwargs.get("optional_meta_data"),
               kwargs.get("freeze_schema"), kwargs.get("only_tables"), kwargs.get("ignored_tables"),
               kwargs.get("only_schemas"), kwargs.get("ignored_schemas"))
        hit = _TM_CACHE.get(key)
        if hit is None:
            super().__init__(from_packet, event_size, table_map, ctl_connection, **kwargs)
            if self._processed:
                if len(_TM_CACHE) > 4096:
                    _TM_CACHE.clear()
                self.cache_entry = _TM_CACHE[key] = [{f: getattr(self, f) for f in _TM_FIELDS}, None]
            return
        BinLogEvent.__init__(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
        self.__dict__.update(hit[0])
        self.cache_entry = hit
        table_map[self.table_id] = self.table_obj


_SCOPE = threading.local()


class _ScopedEventMap(dict[int, Any]):
    """The library's event-type → class map; TABLE_MAP resolves to the caching class only while one
    of our streams reads on this thread (a global swap made other readers drop every table map,
    and with it their rows, silently)."""

    def get(self, key: int, default: Any = None) -> Any:
        if key == BINLOG.TABLE_MAP_EVENT and getattr(_SCOPE, "active", False):
            return CachedTableMapEvent
        return super().get(key, default)


BinLogPacketWrapper._BinLogPacketWrapper__event_map = _ScopedEventMap(
    BinLogPacketWrapper._BinLogPacketWrapper__event_map
)

_ONLY_EVENTS = [
    _ev.RotateEvent, _ev.FormatDescriptionEvent, _ev.QueryEvent, _ev.XidEvent, _ev.GtidEvent,
    _ev.MariadbGtidEvent, _ev.XAPrepareEvent, _ev.HeartbeatLogEvent, _ev.NotImplementedEvent,
    CachedTableMapEvent, _rows.WriteRowsEvent, _rows.UpdateRowsEvent, _rows.DeleteRowsEvent,
    _rows.PartialUpdateRowsEvent,
]


class LibraryStream:
    """A ``BinlogStream`` over python-mysql-replication."""

    def __init__(self, request: StreamRequest) -> None:
        conn = dict(request.connection)
        gtid_mode = bool(request.gtid)
        self._reader = _Reader(
            connection_settings=conn,
            server_id=request.server_id,
            blocking=request.blocking,
            resume_stream=True,
            log_file=None if gtid_mode else request.journal,
            log_pos=None if gtid_mode else request.position,
            auto_position=request.gtid or None,
            is_mariadb=gtid_mode,
            only_events=_ONLY_EVENTS,
            filter_non_implemented_events=False,
            slave_heartbeat=request.heartbeat_s if request.blocking else None,
            enable_logging=False,
        )

    def __iter__(self) -> Iterator[BinlogEvent]:
        it = iter(self._reader)
        while True:
            _SCOPE.active = True
            try:
                ev = next(it)
            except StopIteration:
                return
            finally:
                _SCOPE.active = False
            yield normalize(ev)

    def close(self) -> None:
        self._reader.close()

    def interrupt(self) -> None:
        conn = getattr(self._reader, "_stream_connection", None)
        sock = getattr(conn, "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def library_stream(request: StreamRequest) -> BinlogStream:
    return LibraryStream(request)


_ROWS_KIND = {_rows.WriteRowsEvent: ROWS_INSERT, _rows.UpdateRowsEvent: ROWS_UPDATE, _rows.DeleteRowsEvent: ROWS_DELETE}


def normalize(ev: Any) -> BinlogEvent:
    """Turn a library event into a ``BinlogEvent`` (rows events keep their raw row images)."""
    pk = ev.packet
    cls = type(ev)
    out = BinlogEvent(OTHER, pk.timestamp, pk.server_id, pk.log_pos, pk.event_size)
    kind = _ROWS_KIND.get(cls)
    if kind is not None:
        raw = pk.packet  # the pymysql packet: the rows start at its read position
        out.kind = ROWS
        out.rows_kind = kind
        out.table_id = ev.table_id
        out.data = raw._data
        out.start = raw._position
        out.end = raw._position + (ev.event_size - pk.read_bytes)
        out.bitmap = ev.columns_present_bitmap
        out.bitmap2 = getattr(ev, "columns_present_bitmap2", b"") if kind == ROWS_UPDATE else b""
    elif cls is CachedTableMapEvent or cls is _rows.TableMapEvent:
        out.kind = TABLE_MAP
        entry = getattr(ev, "cache_entry", None)
        table = entry[1] if entry is not None else None
        if table is None:
            table = table_from_library(ev)
            if entry is not None:
                entry[1] = table
        out.table = table
    elif cls is _ev.XidEvent:
        out.kind = XID
        out.xid = ev.xid
    elif cls is _ev.QueryEvent:
        out.kind = QUERY
        out.sql = ev.query
        schema = ev.schema
        out.schema = schema.decode("utf-8", "replace") if isinstance(schema, bytes) else str(schema or "")
        out.thread_id = ev.slave_proxy_id
    elif cls is _ev.MariadbGtidEvent:
        out.kind = GTID
        out.gtid = ev.gtid
        out.mariadb = True
        out.standalone = bool(ev.flags & _MARIADB_FL_STANDALONE)
    elif cls is _ev.GtidEvent:
        out.kind = GTID
        out.gtid = ev.gtid
    elif cls is _ev.RotateEvent:
        out.kind = ROTATE
        out.next_file = ev.next_binlog
        out.rotate_pos = ev.position
    elif cls is _ev.FormatDescriptionEvent:
        out.kind = FORMAT
    elif cls is _ev.HeartbeatLogEvent:
        out.kind = HEARTBEAT
    elif cls is _ev.XAPrepareEvent:
        out.kind = XA_PREPARE
        out.xid = 0
        out.sql = ev.xid
    elif cls is _rows.PartialUpdateRowsEvent:
        out.kind = UNSUPPORTED
        out.detail = "PARTIAL_UPDATE_ROWS_EVENT (binlog_row_value_options=PARTIAL_JSON is not supported)"
    elif pk.event_type in _COMPRESSED:
        out.kind = UNSUPPORTED
        out.detail = f"compressed binlog event type {pk.event_type:#x} (set log_bin_compress=OFF)"
    elif pk.event_type == BINLOG.INCIDENT_EVENT:
        out.kind = UNSUPPORTED
        out.detail = "INCIDENT_EVENT: the source lost binlog data; resynchronize the target"
    return out
