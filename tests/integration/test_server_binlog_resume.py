"""Binlog parser positions against the real MariaDB: resume, start by position/timestamp/GTID, reconnect."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pymysql
import pytest
from binlog_support import WAIT, Collector

from adapter.protocol import EntryProtocol_pb2 as pb
from adapter.server.binlog import BinlogParser
from adapter.server.events import Event, LogPosition, ParserSettings


def ids(events: Sequence[Event]) -> list[int]:
    """The ``id`` of every inserted row, in order."""
    out = []
    for ev in events:
        e = pb.Entry()
        e.ParseFromString(ev.entry)
        if e.entryType == pb.ROWDATA:
            rc = pb.RowChange()
            rc.ParseFromString(e.storeValue)
            if rc.eventType == pb.INSERT and not rc.isDdl:
                out.extend(int(rd.afterColumns[0].value) for rd in rc.rowDatas)
    return out


def base(mysql_settings: dict[str, Any], db: str, **kw: Any) -> ParserSettings:
    return ParserSettings(destination="it", master_host=mysql_settings["host"], master_port=mysql_settings["port"],
                          username=mysql_settings["user"], password=mysql_settings["password"],
                          slave_id=30000 + uuid.uuid4().int % 10000, filter_regex=db + r"\..*", **kw)


def master(conn: Any) -> LogPosition:
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        f, p = cur.fetchone()[:2]
        cur.execute("SELECT @@gtid_binlog_pos")
        (gtid,) = cur.fetchone()
    return LogPosition(f, int(p), gtid=gtid)


def insert(conn: Any, table: str, *ids_: int) -> None:
    """One transaction inserting ``ids_`` (one statement each)."""
    conn.begin()
    with conn.cursor() as cur:
        for i in ids_:
            cur.execute(f"INSERT INTO {table} (id, v) VALUES (%s, %s)", (i, f"v{i}"))
    conn.commit()


@pytest.fixture
def table(mysql_conn: Any) -> str:
    name = "r_" + uuid.uuid4().hex[:8]
    with mysql_conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {name} (id INT PRIMARY KEY, v VARCHAR(20))")
    return name


@pytest.fixture
def parsers() -> Iterator[list[BinlogParser]]:
    made: list[BinlogParser] = []
    yield made
    for p in made:
        p.stop()


def start(parsers: list[BinlogParser], st: ParserSettings, resume: LogPosition | None = None, **kw: Any
          ) -> tuple[BinlogParser, Collector]:
    sink = Collector()
    p = BinlogParser(st, sink, **kw)
    parsers.append(p)
    p.start(resume)
    return p, sink


def test_stop_and_resume_from_the_last_boundary(mysql_conn: Any, mysql_settings: dict[str, Any], mysql_db: str,
                                                table: str, parsers: list[BinlogParser]) -> None:
    st = base(mysql_settings, mysql_db)
    p1, s1 = start(parsers, st, master(mysql_conn))
    insert(mysql_conn, table, 1, 2)
    insert(mysql_conn, table, 3)
    s1.wait(lambda evs: ids(evs) == [1, 2, 3] and evs[-1].boundary)
    p1.stop()
    pos = p1.position
    assert pos is not None and pos.gtid
    insert(mysql_conn, table, 4, 5)  # while stopped
    p2, s2 = start(parsers, st, pos)
    insert(mysql_conn, table, 6)
    events = s2.wait(lambda evs: 6 in ids(evs))
    assert ids(events) == [4, 5, 6]
    assert p2.error is None and p1.error is None


def test_start_inside_a_transaction_moves_back_to_its_begin(mysql_conn: Any, mysql_settings: dict[str, Any],
                                                            mysql_db: str, table: str,
                                                            parsers: list[BinlogParser]) -> None:
    before = master(mysql_conn)
    insert(mysql_conn, table, 10, 11, 12)
    after = master(mysql_conn)
    assert after.journal_name == before.journal_name
    inside = before.position + (after.position - before.position) // 2
    st = base(mysql_settings, mysql_db, journal_name=before.journal_name, position=inside)
    _p, sink = start(parsers, st)
    insert(mysql_conn, table, 13)
    events = sink.wait(lambda evs: 13 in ids(evs))
    assert ids(events) == [10, 11, 12, 13]


def test_start_by_timestamp(mysql_conn: Any, mysql_settings: dict[str, Any], mysql_db: str, table: str,
                            parsers: list[BinlogParser]) -> None:
    insert(mysql_conn, table, 20)
    with mysql_conn.cursor() as cur:  # binlog timestamps have 1 s resolution: move to the next second
        cur.execute("SELECT UNIX_TIMESTAMP()")
        (now,) = cur.fetchone()
    while True:
        with mysql_conn.cursor() as cur:
            cur.execute("SELECT UNIX_TIMESTAMP()")
            (t,) = cur.fetchone()
        if t > now:
            break
        time.sleep(0.1)
    insert(mysql_conn, table, 21)
    insert(mysql_conn, table, 22)
    st = base(mysql_settings, mysql_db, timestamp=int(t) * 1000)
    _p, sink = start(parsers, st)
    events = sink.wait(lambda evs: 22 in ids(evs))
    assert ids(events) == [21, 22]


def test_start_by_gtid(mysql_conn: Any, mysql_settings: dict[str, Any], mysql_db: str, table: str,
                       parsers: list[BinlogParser]) -> None:
    insert(mysql_conn, table, 30)
    gtid = master(mysql_conn).gtid
    insert(mysql_conn, table, 31, 32)
    st = base(mysql_settings, mysql_db, gtid_on=True, gtid=gtid)
    p, sink = start(parsers, st)
    insert(mysql_conn, table, 33)
    events = sink.wait(lambda evs: 33 in ids(evs))
    assert ids(events) == [31, 32, 33]
    assert p.position is not None and p.position.journal_name and p.position.gtid


def test_reconnects_after_the_dump_connection_is_killed(mysql_conn: Any, mysql_settings: dict[str, Any],
                                                        mysql_db: str, table: str,
                                                        parsers: list[BinlogParser]) -> None:
    user = "cbr_" + uuid.uuid4().hex[:8]
    with mysql_conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'pw'")
        cur.execute(f"GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{user}'@'127.0.0.1'")
    try:
        st = base({**mysql_settings, "user": user, "password": "pw"}, mysql_db)
        p, sink = start(parsers, st, master(mysql_conn), backoff=(0.1, 0.5))
        insert(mysql_conn, table, 40, 41)
        sink.wait(lambda evs: ids(evs) == [40, 41] and evs[-1].boundary)
        killed = 0
        with mysql_conn.cursor() as cur:
            cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER=%s AND COMMAND LIKE 'Binlog Dump%%'",
                        (user,))
            for (pid,) in cur.fetchall():
                cur.execute(f"KILL {int(pid)}")
                killed += 1
        assert killed == 1
        insert(mysql_conn, table, 42, 43)
        insert(mysql_conn, table, 44)
        events = sink.wait(lambda evs: 44 in ids(evs))
        assert ids(events) == [40, 41, 42, 43, 44]  # nothing lost, nothing twice
        assert p.stats.reconnects >= 1 and p.error is None
    finally:
        for p in parsers:
            p.stop()
        with mysql_conn.cursor() as cur:
            cur.execute(f"DROP USER '{user}'@'127.0.0.1'")


def test_purged_or_unknown_binlog_is_a_fatal_error(mysql_settings: dict[str, Any], mysql_db: str,
                                                   parsers: list[BinlogParser]) -> None:
    st = base(mysql_settings, mysql_db)
    p, _ = start(parsers, st, LogPosition("mysql-bin.999999", 4), sleep=lambda s: None)
    assert p._thread is not None
    p._thread.join(WAIT)
    assert isinstance(p.error, pymysql.err.OperationalError) and p.error.args[0] == 1236


def test_large_transaction_arrives_in_pieces_with_one_boundary(mysql_conn: Any, mysql_settings: dict[str, Any],
                                                                mysql_db: str, table: str,
                                                                parsers: list[BinlogParser]) -> None:
    st = base(mysql_settings, mysql_db)
    _p, sink = start(parsers, st, master(mysql_conn), max_pending_events=4)
    mysql_conn.begin()
    with mysql_conn.cursor() as cur:
        for i in range(100, 120):
            cur.execute(f"INSERT INTO {table} (id, v) VALUES (%s, 'x')", (i,))
    mysql_conn.commit()
    events = sink.wait(lambda evs: len(ids(evs)) == 20 and evs[-1].boundary)
    assert ids(events) == list(range(100, 120))
    rows = [i for i, ev in enumerate(events) if ev.entry_type == pb.ROWDATA]
    assert not any(ev.boundary for ev in events[rows[0] - 1 : rows[-1] + 1])  # BEGIN … last row
    assert events[rows[-1] + 1].boundary and events[rows[-1] + 1].entry_type == pb.TRANSACTIONEND


def test_starts_transaction_fast_path(mysql_conn: Any, mysql_db: str) -> None:
    """A configured position at a transaction's first event needs no scan; one inside it does."""
    from adapter.server.binlog.positions import starts_transaction

    with mysql_conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `{mysql_db}`.fp (id INT PRIMARY KEY)")
        cur.execute("SHOW MASTER STATUS")
        journal, begin = cur.fetchone()[:2]
        cur.execute(f"INSERT INTO `{mysql_db}`.fp VALUES (1)")
        cur.execute("SHOW BINLOG EVENTS IN %s FROM %s LIMIT 2", (journal, begin))
        inside = cur.fetchall()[1][1]  # the event after the transaction's GTID
    assert starts_transaction(mysql_conn, journal, begin)
    assert not starts_transaction(mysql_conn, journal, inside)
    assert not starts_transaction(mysql_conn, journal, begin + 1)  # not an event start
