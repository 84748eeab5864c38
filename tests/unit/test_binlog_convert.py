"""The transaction state machine: grouping, boundaries, positions, filters, empty transactions, DDL."""

from __future__ import annotations

import datetime
import struct

import pytest
from pymysqlreplication.constants import FIELD_TYPE as T

from adapter.errors import FatalError
from adapter.protocol import EntryProtocol_pb2 as pb
from adapter.server.binlog import stream as S
from adapter.server.binlog.convert import Converter, ParserStats, parse_gtid_state
from adapter.server.binlog.filter import TableFilter
from adapter.server.binlog.tabledef import ColumnDef, TableDef
from adapter.server.events import Event, LogPosition

UTC = datetime.timezone.utc
TS = 1_700_000_000


class Binlog:
    """Builds consecutive events of one binlog file with realistic offsets."""

    def __init__(self, journal: str = "mysql-bin.000001", pos: int = 256) -> None:
        self.journal = journal
        self.pos = pos
        self.seq = 0

    def _ev(self, kind: int, size: int, **kw: object) -> S.BinlogEvent:
        self.pos += size
        return S.BinlogEvent(kind, TS, 1, self.pos, size, **kw)  # type: ignore[arg-type]

    def gtid(self, standalone: bool = False) -> S.BinlogEvent:
        self.seq += 1
        return self._ev(S.GTID, 42, gtid=f"0-1-{self.seq}", mariadb=True, standalone=standalone)

    def table_map(self, table: TableDef) -> S.BinlogEvent:
        return self._ev(S.TABLE_MAP, 60, table=table)

    def insert(self, table: TableDef, *rows: tuple[int, str]) -> S.BinlogEvent:
        data = b"".join(bytes([0]) + struct.pack("<i", i) + bytes([len(n)]) + n.encode() for i, n in rows)
        return self._ev(S.ROWS, 40 + len(data), table_id=table.table_id, rows_kind=S.ROWS_INSERT, data=data,
                        start=0, end=len(data), bitmap=b"\x03")

    def xid(self, xid: int = 77) -> S.BinlogEvent:
        return self._ev(S.XID, 31, xid=xid)

    def query(self, sql: str, schema: str = "db") -> S.BinlogEvent:
        return self._ev(S.QUERY, 60 + len(sql), sql=sql, schema=schema, thread_id=5)

    def rotate(self, next_file: str) -> S.BinlogEvent:
        ev = S.BinlogEvent(S.ROTATE, TS, 1, self.pos + 44, 44, next_file=next_file, rotate_pos=4)
        self.journal, self.pos = next_file, 4
        return ev


def table(name: str = "t", table_id: int = 10, schema: str = "db") -> TableDef:
    cols = (ColumnDef(0, "id", T.LONG, is_key=True), ColumnDef(1, "name", T.VARCHAR, charset="utf8mb4",
                                                               max_length=64))
    return TableDef(table_id, schema, name, cols, key=(schema, name, cols))


def conv(**kw: object) -> Converter:
    c = Converter(tz=UTC, table_filter=kw.pop("filter", TableFilter(r".*\..*")), **kw)  # type: ignore[arg-type]
    c.reset(LogPosition("mysql-bin.000001", 256))
    return c


def feed(c: Converter, *events: S.BinlogEvent) -> list[Event]:
    out: list[Event] = []
    for ev in events:
        got = c.feed(ev)
        if got:
            out.extend(got)
    return out


def decode(ev: Event) -> pb.Entry:
    e = pb.Entry()
    e.ParseFromString(ev.entry)
    return e


def test_transaction_is_begin_rowdata_end_with_boundary_after_commit() -> None:
    b, t, c = Binlog(), table(), conv()
    g = b.gtid()
    out = feed(c, g, b.table_map(t), ins := b.insert(t, (1, "a"), (2, "b")))
    assert out == []  # nothing until the commit
    x = b.xid(99)
    out = feed(c, x)
    assert [e.entry_type for e in out] == [pb.TRANSACTIONBEGIN, pb.ROWDATA, pb.TRANSACTIONEND]
    assert [e.boundary for e in out] == [False, False, True]
    start = LogPosition("mysql-bin.000001", 256)
    assert out[0].position == start and out[1].position == start
    assert out[2].position == LogPosition("mysql-bin.000001", x.log_pos, 1, TS * 1000, "0-1-1")
    begin, rows, end = (decode(e) for e in out)
    assert begin.header.logfileOffset == g.log_pos - g.size
    assert rows.header.logfileOffset == ins.log_pos - ins.size and rows.header.eventLength == ins.size
    assert rows.header.eventType == pb.INSERT and rows.header.schemaName == "db" and rows.header.tableName == "t"
    assert rows.header.executeTime == TS * 1000 and rows.header.gtid == "0-1-1"
    assert [(p.key, p.value) for p in rows.header.props] == [("rowsCount", "2")]
    rc = pb.RowChange()
    rc.ParseFromString(rows.storeValue)
    assert rc.eventType == pb.INSERT and rc.tableId == 10 and len(rc.rowDatas) == 2
    te = pb.TransactionEnd()
    te.ParseFromString(end.storeValue)
    assert te.transactionId == "99"
    assert c.stats.rows == 2 and c.stats.transactions == 1


def test_mysql_style_begin_and_commit_queries() -> None:
    b, t, c = Binlog(), table(), conv()
    out = feed(c, b.query("BEGIN"), b.table_map(t), b.insert(t, (1, "a")), b.query("COMMIT"))
    assert [e.entry_type for e in out] == [pb.TRANSACTIONBEGIN, pb.ROWDATA, pb.TRANSACTIONEND]
    tb = pb.TransactionBegin()
    tb.ParseFromString(decode(out[0]).storeValue)
    assert tb.threadId == 5
    te = pb.TransactionEnd()
    te.ParseFromString(decode(out[2]).storeValue)
    assert te.transactionId == "0" and out[2].boundary


def test_filtered_rows_are_dropped_and_empty_transactions_throttled() -> None:
    b, t, other = Binlog(), table(), table("other", 11, "db2")
    c = conv(filter=TableFilter(r"db\..*"))
    out = feed(c, b.gtid(), b.table_map(other), b.insert(other, (1, "a")), x1 := b.xid())
    # the first empty transaction is let through so the store learns the position
    assert [e.entry_type for e in out] == [pb.TRANSACTIONBEGIN, pb.TRANSACTIONEND]
    out = feed(c, b.gtid(), b.table_map(other), b.insert(other, (2, "a")), x2 := b.xid())
    assert out == []  # within 5 s of the last empty one: dropped...
    assert c.boundary.position == x2.log_pos > x1.log_pos  # ...but the position still moves
    out = feed(c, b.gtid(), b.table_map(t), b.table_map(other), b.insert(other, (3, "x")), b.insert(t, (3, "y")),
               b.xid())
    assert [e.entry_type for e in out] == [pb.TRANSACTIONBEGIN, pb.ROWDATA, pb.TRANSACTIONEND]
    assert decode(out[1]).header.tableName == "t"


def test_empty_transaction_threshold() -> None:
    b, other = Binlog(), table("other", 11, "db2")
    c = conv(filter=TableFilter(r"db\..*"), empty_txn_threshold=3)
    kept = 0
    for _ in range(10):
        kept += len(feed(c, b.gtid(), b.table_map(other), b.insert(other, (1, "a")), b.xid())) // 2
    assert kept == 3  # 1st, then after every 3 dropped


def test_set_filter_applies_to_following_events() -> None:
    b, t, c = Binlog(), table(), conv()
    c.set_filter(TableFilter(r"nomatch\..*"))
    out = feed(c, b.gtid(), b.table_map(t), b.insert(t, (1, "a")), b.xid())
    assert [e.entry_type for e in out] == [pb.TRANSACTIONBEGIN, pb.TRANSACTIONEND]


def test_ddl_outside_transaction_is_a_boundary() -> None:
    b, c = Binlog(), conv()
    out = feed(c, b.gtid(standalone=True), q := b.query("ALTER TABLE t ADD COLUMN c int", schema="db"))
    (ev,) = out
    assert ev.boundary and ev.is_ddl and ev.entry_type == pb.ROWDATA
    assert ev.position == LogPosition("mysql-bin.000001", q.log_pos, 1, TS * 1000, "0-1-1")
    e = decode(ev)
    assert e.header.eventType == pb.ALTER and e.header.schemaName == "db" and e.header.tableName == "t"
    rc = pb.RowChange()
    rc.ParseFromString(e.storeValue)
    assert rc.isDdl and rc.eventType == pb.ALTER and rc.sql.startswith("ALTER") and rc.ddlSchemaName == "db"


def test_ddl_on_filtered_table_is_dropped_but_query_ddl_is_not() -> None:
    b = Binlog()
    c = conv(filter=TableFilter(r"db\..*"))
    assert feed(c, b.gtid(True), b.query("CREATE TABLE other.x (a int)", schema="other")) == []
    assert c.boundary.position == b.pos
    out = feed(c, b.gtid(True), b.query("CREATE DATABASE other2", schema=""))
    assert len(out) == 1 and decode(out[0]).header.eventType == pb.QUERY
    out = feed(c, b.gtid(True), b.query("RENAME TABLE other.x TO db.x", schema=""))
    assert len(out) == 1 and decode(out[0]).header.eventType == pb.RENAME


def test_large_transaction_is_flushed_in_pieces_without_boundary() -> None:
    b, t = Binlog(), table()
    c = conv(max_pending_events=3)
    out = feed(c, b.gtid(), b.table_map(t), *(b.insert(t, (i, "r")) for i in range(5)))
    assert len(out) == 6 and not any(e.boundary for e in out)  # BEGIN+2 rows, then 3 rows
    out += feed(c, b.xid())
    assert [e.entry_type for e in out] == [pb.TRANSACTIONBEGIN] + [pb.ROWDATA] * 5 + [pb.TRANSACTIONEND]
    assert out[-1].boundary


def test_rotate_moves_the_boundary_between_transactions() -> None:
    b, c = Binlog(), conv()
    feed(c, b.rotate("mysql-bin.000002"))
    assert c.boundary == LogPosition("mysql-bin.000002", 4)
    t = table()
    out = feed(c, b.gtid(), b.table_map(t), b.insert(t, (1, "a")), b.xid())
    assert decode(out[1]).header.logfileName == "mysql-bin.000002"
    assert out[-1].position.journal_name == "mysql-bin.000002"


def test_gtid_state_keeps_every_domain() -> None:
    assert parse_gtid_state("0-1-5, 1-2-7") == {0: "0-1-5", 1: "1-2-7"}
    c = Converter(tz=UTC, table_filter=TableFilter(""))
    c.reset(LogPosition("f", 4, gtid="0-1-5,1-2-7"))
    b = Binlog("f", 4)
    b.seq = 9
    out = feed(c, b.gtid(True), b.query("CREATE DATABASE x", ""))
    assert out[0].position.gtid == "0-1-10,1-2-7"


def test_rows_for_unknown_table_id_are_fatal() -> None:
    b, c = Binlog(), conv()
    with pytest.raises(FatalError, match="unknown table id"):
        feed(c, b.gtid(), b.insert(table(), (1, "a")))


def test_unsupported_event_is_fatal() -> None:
    c = conv()
    with pytest.raises(FatalError, match="compressed"):
        c.feed(S.BinlogEvent(S.UNSUPPORTED, TS, 1, 500, 50, detail="compressed binlog event type 0xa6"))


def test_xa_transaction() -> None:
    b, t, c = Binlog(), table(), conv()
    out = feed(c, b.query("XA START 'x1'"), b.table_map(t), b.insert(t, (1, "a")), b.query("XA END 'x1'"))
    assert [e.entry_type for e in out] == [pb.TRANSACTIONBEGIN, pb.ROWDATA, pb.TRANSACTIONEND]
    tb = pb.TransactionBegin()
    tb.ParseFromString(decode(out[0]).storeValue)
    assert [(p.key, p.value) for p in tb.props] == [("XA_TYPE", "XA START"), ("XA_XID", "'x1'")]
    out = feed(c, b.query("XA COMMIT 'x1'"))
    e = decode(out[0])
    assert out[0].boundary and e.header.eventType == pb.XACOMMIT


def test_stats_count_events_and_bytes() -> None:
    b, t = Binlog(), table()
    stats = ParserStats()
    c = conv(stats=stats)
    evs = [b.gtid(), b.table_map(t), b.insert(t, (1, "a")), b.xid()]
    feed(c, *evs)
    assert stats.events == 4 and stats.bytes == sum(e.size for e in evs) and stats.rows == 1
    assert stats.transactions == 1 and stats.last_execute_time_ms == TS * 1000


def test_column_type_lookup_used_only_when_the_live_table_matches() -> None:
    b, t = Binlog(), table()

    def live(schema: str, name: str) -> list[tuple[str, str]]:
        return [("id", "int(5)"), ("name", "varchar(16)")]

    c = conv(column_types=live)
    out = feed(c, b.gtid(), b.table_map(t), b.insert(t, (1, "a")), b.xid())
    rc = pb.RowChange()
    rc.ParseFromString(decode(out[1]).storeValue)
    assert [col.mysqlType for col in rc.rowDatas[0].afterColumns] == ["int(5)", "varchar(16)"]

    def changed(schema: str, name: str) -> list[tuple[str, str]]:
        return [("id", "bigint(20)"), ("name", "varchar(16)")]

    c = conv(column_types=changed)
    out = feed(c, b.gtid(), b.table_map(t), b.insert(t, (1, "a")), b.xid())
    rc.ParseFromString(decode(out[1]).storeValue)
    assert [col.mysqlType for col in rc.rowDatas[0].afterColumns] == ["int(11)", "varchar(16)"]

    def broken(schema: str, name: str) -> list[tuple[str, str]]:
        raise OSError("down")

    c = conv(column_types=broken)
    out = feed(c, b.gtid(), b.table_map(t), b.insert(t, (1, "a")), b.xid())
    assert len(out) == 3
