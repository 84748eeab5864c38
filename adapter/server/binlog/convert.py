"""Binlog events → canal Entries, grouped by transaction: the parser's state machine.

Checkpoints exist only at transaction boundaries (XID, COMMIT, a DDL outside a transaction):
only those events carry ``boundary=True`` and a position right after the commit. Every other
event carries the position of the boundary before it (where a reader must restart to see it).
A transaction is handed out whole, or in pieces of at most ``max_pending_events`` entries so a
huge transaction does not fill memory.
"""

from __future__ import annotations

import datetime
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from adapter.errors import FatalError
from adapter.protocol import EntryProtocol_pb2 as pb
from adapter.server.binlog import entries as E
from adapter.server.binlog import stream as S
from adapter.server.binlog.ddl import classify
from adapter.server.binlog.filter import TableFilter
from adapter.server.binlog.rowcodec import RowCodec
from adapter.server.binlog.tabledef import TableDef
from adapter.server.binlog.typemap import mysql_type
from adapter.server.events import Event, LogPosition

log = logging.getLogger(__name__)

#: (schema, table) → [(column name, COLUMN_TYPE)] from information_schema, or None if unknown.
ColumnTypeLookup = Callable[[str, str], Sequence[tuple[str, str]] | None]

_INT_WIDTH = re.compile(r"^(tinyint|smallint|mediumint|int|bigint)\(\d+\)")
_FLOAT_SIZE = re.compile(r"^(float|double)\(\d+(,\d+)?\)")


@dataclass
class ParserStats:
    """Counters for metrics; written by the parser thread only, read by anyone."""

    events: int = 0
    rows: int = 0
    bytes: int = 0
    transactions: int = 0
    last_execute_time_ms: int = 0
    reconnects: int = 0
    delay_ms: int = 0  # wall clock minus the commit time of the last transaction put into the sink


def _normalize_type(text: str) -> str:
    t = text.lower().replace(" zerofill", "").strip()
    return _FLOAT_SIZE.sub(r"\1", _INT_WIDTH.sub(r"\1", t))


def parse_gtid_state(text: str) -> dict[int, str]:
    """MariaDB GTID state "d-s-n[,d-s-n...]" → {domain: gtid}; anything else → {}."""
    out: dict[int, str] = {}
    for item in (text or "").split(","):
        parts = item.strip().split("-")
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            out[int(parts[0])] = item.strip()
    return out


class Converter:
    """Feeds on ``BinlogEvent``s; returns lists of store ``Event``s that are ready to be put."""

    def __init__(
        self,
        *,
        tz: datetime.tzinfo,
        table_filter: TableFilter,
        stats: ParserStats | None = None,
        column_types: ColumnTypeLookup | None = None,
        max_pending_events: int = 1024,
        max_pending_bytes: int = 8 << 20,
        empty_txn_interval_ms: int = 5000,
        empty_txn_threshold: int = 8192,
    ) -> None:
        self.tz = tz
        self.filter = table_filter
        self.stats = stats or ParserStats()
        self.column_types = column_types
        self.max_pending_events = max_pending_events
        self.max_pending_bytes = max_pending_bytes
        self.empty_interval = empty_txn_interval_ms
        self.empty_threshold = empty_txn_threshold
        self._empty_ts = -(1 << 62)
        self._empty_dropped = 0
        self.tables: dict[int, TableDef] = {}
        self._codecs: dict[object, RowCodec] = {}
        self._lock = threading.Lock()  # set_filter may come from another thread
        self.reset(LogPosition("", 4))

    # ------------------------------------------------------------------ state
    def reset(self, start: LogPosition) -> None:
        """Start over at ``start`` (a boundary): a new stream begins there."""
        self.journal = start.journal_name
        self.boundary = start
        self.gtids = parse_gtid_state(start.gtid)
        self.gtid_text = start.gtid
        self.in_txn = False
        self.pending: list[Event] = []
        self._pending_bytes = 0
        self._txn_rows = 0
        self._txn_flushed = False

    def set_filter(self, table_filter: TableFilter) -> None:
        with self._lock:
            self.filter = table_filter

    def forget_table_types(self) -> None:
        """Drop cached codecs (a DDL may have changed information_schema's column types)."""
        self._codecs.clear()

    # ------------------------------------------------------------------ dispatch
    def feed(self, ev: S.BinlogEvent) -> list[Event] | None:
        st = self.stats
        st.events += 1
        st.bytes += ev.size
        if ev.timestamp:
            st.last_execute_time_ms = ev.timestamp * 1000
        k = ev.kind
        if k == S.ROWS:
            return self._rows(ev)
        if k == S.TABLE_MAP:
            assert ev.table is not None
            self.tables[ev.table.table_id] = ev.table
            return None
        if k == S.XID:
            return self._end(ev, str(ev.xid))
        if k == S.GTID:
            self._gtid(ev)
            if ev.mariadb and not ev.standalone:
                self._begin(ev, 0)
            return None
        if k == S.QUERY:
            return self._query(ev)
        if k == S.ROTATE:
            self.journal = ev.next_file
            if not self.in_txn:
                self.boundary = replace(self.boundary, journal_name=ev.next_file, position=ev.rotate_pos)
            return None
        if k == S.UNSUPPORTED:
            raise FatalError(f"{ev.detail} at {self.journal}:{ev.log_pos - ev.size}")
        return None

    def _header(self, ev: S.BinlogEvent, *, schema: str = "", table: str = "", event_type: int | None = None,
                props: Sequence[tuple[str, str]] = ()) -> bytes:
        return E.header(self.journal, ev.log_pos - ev.size, ev.server_id, ev.timestamp * 1000, ev.size,
                        schema=schema, table=table, event_type=event_type, props=props, gtid=self.gtid_text)

    def _gtid(self, ev: S.BinlogEvent) -> None:
        if ev.mariadb:
            self.gtids[int(ev.gtid.split("-", 1)[0])] = ev.gtid
            self.gtid_text = ",".join(v for _, v in sorted(self.gtids.items()))
        else:
            self.gtid_text = ev.gtid

    def _position(self, ev: S.BinlogEvent) -> LogPosition:
        return LogPosition(self.journal, ev.log_pos, ev.server_id, ev.timestamp * 1000, self.gtid_text)

    # ------------------------------------------------------------------ transactions
    def _begin(self, ev: S.BinlogEvent, thread_id: int, props: Sequence[tuple[str, str]] = ()) -> None:
        if self.in_txn and (self.pending or self._txn_flushed):
            log.warning("transaction without end at %s:%s; its partial entries are dropped", self.journal,
                        ev.log_pos - ev.size)
        self.in_txn = True
        self._txn_rows = 0
        self._txn_flushed = False
        body = E.transaction_begin(thread_id, props)
        self.pending = [Event(E.entry(self._header(ev), E.TRANSACTIONBEGIN, body), ev.size, self.boundary,
                              E.TRANSACTIONBEGIN)]
        self._pending_bytes = 0

    def _end(self, ev: S.BinlogEvent, txid: str, props: Sequence[tuple[str, str]] = ()) -> list[Event] | None:
        pos = self._position(ev)
        self.boundary = pos
        self.stats.transactions += 1
        if not self.in_txn:
            return None  # a commit whose begin we never saw (nothing of it was emitted)
        self.in_txn = False
        body = E.transaction_end(txid, props)
        end = Event(E.entry(self._header(ev), E.TRANSACTIONEND, body), ev.size, pos, E.TRANSACTIONEND,
                    boundary=True)
        out, self.pending = self.pending, []
        if self._txn_rows == 0 and not self._txn_flushed and not self._keep_empty(ev.timestamp * 1000):
            return None
        out.append(end)
        return out

    def _keep_empty(self, ts_ms: int) -> bool:
        """canal's empty-transaction throttle: let one through per interval or threshold, drop the rest."""
        if abs(ts_ms - self._empty_ts) > self.empty_interval or self._empty_dropped >= self.empty_threshold:
            self._empty_ts = ts_ms
            self._empty_dropped = 0
            return True
        self._empty_dropped += 1
        return False

    def _add(self, event: Event) -> list[Event] | None:
        self.pending.append(event)
        self._pending_bytes += len(event.entry)
        if len(self.pending) >= self.max_pending_events or self._pending_bytes >= self.max_pending_bytes:
            out, self.pending = self.pending, []
            self._pending_bytes = 0
            self._txn_flushed = True
            return out
        return None

    # ------------------------------------------------------------------ rows
    def _codec(self, table: TableDef) -> RowCodec:
        codec = self._codecs.get(table.key)
        if codec is None:
            if len(self._codecs) > 2000:
                self._codecs.clear()
            codec = self._codecs[table.key] = RowCodec(table, self.tz, self._mysql_types(table))
        return codec

    def _mysql_types(self, table: TableDef) -> list[str] | None:
        """information_schema's COLUMN_TYPE texts when the live table still has this layout."""
        if self.column_types is None:
            return None
        try:
            live = self.column_types(table.schema, table.table)
        except Exception as exc:  # metadata is cosmetic: never stop the stream for it
            log.warning("column type lookup failed for %s: %s", table.full_name, exc)
            return None
        if not live or len(live) != len(table.columns):
            return None
        out = []
        for col, (name, ctype) in zip(table.columns, live, strict=True):
            if name.lower() != col.name.lower() or _normalize_type(ctype) != _normalize_type(mysql_type(col)):
                return None
            out.append(ctype)
        return out

    def _rows(self, ev: S.BinlogEvent) -> list[Event] | None:
        table = self.tables.get(ev.table_id)
        if table is None:
            raise FatalError(f"rows event for unknown table id {ev.table_id} at {self.journal}:{ev.log_pos - ev.size}"
                             " (the stream did not start at a transaction boundary)")
        with self._lock:
            accepted = self.filter.accepts(table.schema, table.table)
        if not accepted:
            return None
        if not self.in_txn:  # rows without BEGIN (should not happen): open an implicit transaction
            self._begin(ev, 0)
        codec = self._codec(table)
        parts, n = codec.encode(ev.rows_kind, ev.data, ev.start, ev.end, ev.bitmap, ev.bitmap2)
        store = E.rows_change_head(table.table_id, ev.rows_kind) + b"".join(parts)
        head = self._header(ev, schema=table.schema, table=table.table, event_type=ev.rows_kind,
                            props=(("rowsCount", str(n)),) if n else ())
        self.stats.rows += n
        self._txn_rows += 1
        return self._add(Event(E.entry(head, E.ROWDATA, store), ev.size, self.boundary, E.ROWDATA,
                               schema=table.schema, table=table.table))

    # ------------------------------------------------------------------ queries
    def _query(self, ev: S.BinlogEvent) -> list[Event] | None:
        sql = ev.sql
        head = sql.lstrip()[:12].upper()
        if head.startswith(("XA START", "XA BEGIN")):
            self._begin(ev, ev.thread_id, (("XA_TYPE", "XA START"), ("XA_XID", _xa_xid(sql))))
            return None
        if head.startswith("XA END"):
            return self._end(ev, "0", (("XA_TYPE", "XA END"), ("XA_XID", _xa_xid(sql))))
        if head.startswith(("XA COMMIT", "XA ROLLBACK")):
            kind = "XA COMMIT" if head.startswith("XA COMMIT") else "XA ROLLBACK"
            et = pb.XACOMMIT if kind == "XA COMMIT" else pb.XAROLLBACK
            body = E.query_change(et, sql, (("XA_TYPE", kind), ("XA_XID", _xa_xid(sql))))
            return self._statement(ev, E.entry(self._header(ev, event_type=et), E.ROWDATA, body), False, "", "")
        tail = sql.rstrip().upper()
        if tail.endswith("BEGIN"):
            if not self.in_txn:  # MariaDB's GTID event already opened the transaction
                self._begin(ev, ev.thread_id)
            return None
        if tail.endswith("COMMIT") or tail == "ROLLBACK":
            return self._end(ev, "0")
        return self._ddl(ev)

    def _ddl(self, ev: S.BinlogEvent) -> list[Event] | None:
        res = classify(ev.sql, ev.schema)
        self.forget_table_types()
        if res.table and not res.is_dml:
            with self._lock:
                ok = self.filter.accepts(res.schema, res.table) or (
                    res.event_type == pb.RENAME and self.filter.accepts(res.ori_schema, res.ori_table))
            if not ok:
                return self._statement(ev, None, True, res.schema, res.table)
        body = E.statement_change(res.event_type, ev.sql, ev.schema, is_ddl=not res.is_dml)
        head = self._header(ev, schema=res.schema, table=res.table, event_type=res.event_type)
        return self._statement(ev, E.entry(head, E.ROWDATA, body), not res.is_dml, res.schema, res.table)

    def _statement(self, ev: S.BinlogEvent, entry: bytes | None, is_ddl: bool, schema: str, table: str
                   ) -> list[Event] | None:
        """A query entry: part of the open transaction, or a boundary of its own."""
        if self.in_txn:
            if entry is None:
                return None
            return self._add(Event(entry, ev.size, self.boundary, E.ROWDATA, is_ddl=is_ddl, schema=schema,
                                   table=table))
        pos = self._position(ev)
        self.boundary = pos
        self.stats.transactions += 1
        if entry is None:
            return None
        return [Event(entry, ev.size, pos, E.ROWDATA, is_ddl=is_ddl, boundary=True, schema=schema, table=table)]


def _xa_xid(sql: str) -> str:
    words = sql.strip().split(None, 2)
    return words[2] if len(words) > 2 else ""
