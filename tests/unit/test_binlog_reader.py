"""BinlogParser thread: sink puts, positions, reconnect from the last boundary without duplicates, stop."""

from __future__ import annotations

import datetime
import struct
import threading
from collections.abc import Iterator, Sequence

import pymysql
import pytest
from pymysqlreplication.constants import FIELD_TYPE as T

from adapter.errors import FatalError
from adapter.protocol import EntryProtocol_pb2 as pb
from adapter.server.binlog import BinlogParser, ParserStats
from adapter.server.binlog import stream as S
from adapter.server.binlog.tabledef import ColumnDef, TableDef
from adapter.server.events import Event, LogPosition, ParserSettings

UTC = datetime.timezone.utc
TS = 1_700_000_000
WAIT = 30.0
COLS = (ColumnDef(0, "id", T.LONG, is_key=True),)
TABLE = TableDef(10, "db", "t", COLS, key=("db", "t", COLS))
SETTINGS = ParserSettings(destination="example", master_host="127.0.0.1", master_port=1, username="u",
                          password="p", slave_id=77)
START = LogPosition("mysql-bin.000001", 4)


class Block:
    """A script item: block the stream until it is interrupted (then fail like a closed socket)."""


class FakeStream:
    def __init__(self, script: Sequence[object]) -> None:
        self.script = list(script)
        self.interrupted = threading.Event()
        self.closed = False

    def __iter__(self) -> Iterator[S.BinlogEvent]:
        for item in self.script:
            if isinstance(item, Block):
                self.interrupted.wait(WAIT)
                raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, S.BinlogEvent)
            yield item

    def close(self) -> None:
        self.closed = True

    def interrupt(self) -> None:
        self.interrupted.set()


class Factory:
    def __init__(self, *scripts: Sequence[object]) -> None:
        self.scripts = list(scripts)
        self.requests: list[S.StreamRequest] = []
        self.streams: list[FakeStream] = []

    def __call__(self, request: S.StreamRequest) -> FakeStream:
        self.requests.append(request)
        stream = FakeStream(self.scripts.pop(0) if self.scripts else [Block()])
        self.streams.append(stream)
        return stream


class Sink:
    def __init__(self, accept: bool = True) -> None:
        self.events: list[Event] = []
        self.accept = accept
        self.cond = threading.Condition()

    def put(self, events: Sequence[Event], stop: threading.Event) -> bool:
        with self.cond:
            if not self.accept:
                return False
            self.events.extend(events)
            self.cond.notify_all()
        return True

    def wait_for(self, n: int) -> list[Event]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.events) >= n, WAIT), f"only {len(self.events)} events"
            return list(self.events)


class Log:
    """Events of one binlog file with consecutive offsets."""

    def __init__(self) -> None:
        self.pos = 4
        self.seq = 0

    def ev(self, kind: int, size: int, **kw: object) -> S.BinlogEvent:
        self.pos += size
        return S.BinlogEvent(kind, TS, 1, self.pos, size, **kw)  # type: ignore[arg-type]

    def txn(self, *ids: int) -> list[S.BinlogEvent]:
        self.seq += 1
        out = [self.ev(S.GTID, 42, gtid=f"0-1-{self.seq}", mariadb=True), self.ev(S.TABLE_MAP, 50, table=TABLE)]
        for i in ids:
            data = b"\x00" + struct.pack("<i", i)
            out.append(self.ev(S.ROWS, 40, table_id=10, rows_kind=S.ROWS_INSERT, data=data, start=0, end=5,
                               bitmap=b"\x01"))
        out.append(self.ev(S.XID, 31, xid=self.seq))
        return out


def parser(factory: Factory, sink: Sink, sleeps: list[float] | None = None, **kw: object) -> BinlogParser:
    record = sleeps if sleeps is not None else []
    return BinlogParser(SETTINGS, sink, stream_factory=factory, tz=UTC, column_types=None,
                        sleep=record.append, **kw)  # type: ignore[arg-type]


def ids(events: Sequence[Event]) -> list[object]:
    """Compact view: 'B', row ids, 'E'."""
    out: list[object] = []
    for ev in events:
        e = pb.Entry()
        e.ParseFromString(ev.entry)
        if e.entryType == pb.TRANSACTIONBEGIN:
            out.append("B")
        elif e.entryType == pb.TRANSACTIONEND:
            out.append("E")
        else:
            rc = pb.RowChange()
            rc.ParseFromString(e.storeValue)
            out.extend(int(rd.afterColumns[0].value) for rd in rc.rowDatas)
    return out


def test_streams_transactions_into_the_sink_and_tracks_the_boundary() -> None:
    log = Log()
    t1, t2 = log.txn(1, 2), log.txn(3)
    factory, sink = Factory([*t1, *t2, Block()]), Sink()
    p = parser(factory, sink)
    p.start(START)
    events = sink.wait_for(7)
    p.stop()
    assert ids(events) == ["B", 1, 2, "E", "B", 3, "E"]
    assert p.position == LogPosition("mysql-bin.000001", t2[-1].log_pos, 1, TS * 1000, "0-1-2")
    assert p.error is None and p.stats.rows == 3 and p.stats.transactions == 2
    req = factory.requests[0]
    assert (req.journal, req.position, req.server_id, req.gtid, req.blocking) == ("mysql-bin.000001", 4, 77, "", True)
    assert req.connection["user"] == "u" and factory.streams[0].closed


def test_reconnects_from_last_boundary_and_discards_the_partial_transaction() -> None:
    log = Log()
    t1, t2 = log.txn(1), log.txn(2, 3)
    lost = pymysql.err.OperationalError(2013, "Lost connection")
    factory = Factory([*t1, *t2[:3], lost], [*t2, Block()])
    sink, sleeps = Sink(), []
    p = parser(factory, sink, sleeps)
    p.start(START)
    events = sink.wait_for(7)
    p.stop()
    assert ids(events) == ["B", 1, "E", "B", 2, 3, "E"]
    assert (factory.requests[1].journal, factory.requests[1].position) == ("mysql-bin.000001", t1[-1].log_pos)
    assert sleeps[:1] == [1.0] and p.stats.reconnects >= 1 and p.error is None


def test_events_already_put_of_a_split_transaction_are_not_put_twice() -> None:
    log = Log()
    big = log.txn(1, 2, 3, 4, 5)
    # max_pending_events=2: BEGIN+1, then 2,3 reach the sink before the connection breaks
    factory = Factory([*big[:6], ConnectionResetError("reset")], [*big, Block()])
    sink = Sink()
    p = parser(factory, sink, max_pending_events=2)
    p.start(START)
    events = sink.wait_for(7)
    p.stop()
    assert ids(events) == ["B", 1, 2, 3, 4, 5, "E"]
    assert factory.requests[1].position == 4
    assert events[-1].boundary and not any(e.boundary for e in events[:-1])


def test_backoff_grows_and_resets_after_progress() -> None:
    log = Log()
    t1 = log.txn(1)
    down = pymysql.err.OperationalError(2003, "Can't connect")
    factory = Factory([down], [down], [down], [*t1, down], [Block()])
    sink, sleeps = Sink(), []
    p = parser(factory, sink, sleeps, backoff=(0.5, 1.5))
    p.start(START)
    sink.wait_for(3)
    p.stop()
    assert sleeps[:4] == [0.5, 1.0, 1.5, 0.5]


def test_fatal_errors_stop_the_parser() -> None:
    log = Log()
    bad = [log.ev(S.GTID, 42, gtid="0-1-1", mariadb=True),
           log.ev(S.ROWS, 40, table_id=99, rows_kind=S.ROWS_INSERT, data=b"", bitmap=b"\x01")]
    factory, sink = Factory(bad), Sink()
    p = parser(factory, sink)
    p.start(START)
    assert p._thread is not None
    p._thread.join(WAIT)
    assert isinstance(p.error, FatalError) and not p.running
    assert len(factory.requests) == 1


def test_purged_binlog_is_fatal() -> None:
    factory = Factory([pymysql.err.OperationalError(1236, "Could not find first log file name in binary log")])
    p = parser(factory, Sink())
    p.start(START)
    assert p._thread is not None
    p._thread.join(WAIT)
    assert isinstance(p.error, pymysql.err.OperationalError) and len(factory.requests) == 1


def test_stop_interrupts_a_blocked_read() -> None:
    factory, sink = Factory([Block()]), Sink()
    p = parser(factory, sink)
    p.start(START)
    for _ in range(1000):
        if factory.streams:
            break
        threading.Event().wait(0.01)
    p.stop()
    assert not p.running and factory.streams[0].interrupted.is_set() and p.error is None


def test_a_refusing_sink_ends_the_thread() -> None:
    log = Log()
    factory = Factory([*log.txn(1), Block()])
    p = parser(factory, Sink(accept=False))
    p.start(START)
    assert p._thread is not None
    p._thread.join(WAIT)
    assert not p.running and p.position == START


def test_gtid_mode_reconnects_by_gtid() -> None:
    log = Log()
    t1 = log.txn(1)
    factory = Factory([*t1, ConnectionResetError()], [Block()])
    sink = Sink()
    settings = ParserSettings(destination="example", master_host="h", master_port=1, username="u", password="p",
                              slave_id=77, gtid_on=True)
    p = BinlogParser(settings, sink, stream_factory=factory, tz=UTC, column_types=None, sleep=lambda s: None)
    p.start(LogPosition("mysql-bin.000001", 4, gtid="0-1-0"))
    sink.wait_for(3)
    for _ in range(1000):
        if len(factory.requests) >= 2:
            break
        threading.Event().wait(0.01)
    p.stop()
    assert factory.requests[0].gtid == "0-1-0"
    assert factory.requests[1].gtid == "0-1-1"


def test_set_filter_while_running_and_invalid_filter() -> None:
    from adapter.errors import ConfigError

    log = Log()
    factory, sink = Factory([*log.txn(1), Block()]), Sink()
    p = parser(factory, sink)
    p.set_filter(r"other\..*")
    p.start(START)
    events = sink.wait_for(2)
    p.stop()
    assert ids(events) == ["B", "E"]
    with pytest.raises(ConfigError):
        p.set_filter("db\\.(")


def test_stats_object_is_shared() -> None:
    log = Log()
    stats = ParserStats()
    factory, sink = Factory([*log.txn(1, 2), Block()]), Sink()
    p = parser(factory, sink, stats=stats, clock=lambda: TS + 2.5)
    p.start(START)
    sink.wait_for(4)
    p.stop()
    assert p.stats is stats and stats.rows == 2 and stats.events == 5
    assert stats.delay_ms == 2500
