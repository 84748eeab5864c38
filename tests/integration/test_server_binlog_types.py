"""Binlog parser against the real MariaDB: every column type, INSERT/UPDATE/DELETE (PK change), DDL, NULLs."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from binlog_support import Collector

from adapter.errors import ConfigError
from adapter.protocol import EntryProtocol_pb2 as pb
from adapter.server.binlog import BinlogParser, check_source
from adapter.server.events import Event, ParserSettings


def settings(mysql_settings: dict[str, Any], db: str, **kw: Any) -> ParserSettings:
    return ParserSettings(destination="it", master_host=mysql_settings["host"], master_port=mysql_settings["port"],
                          username=mysql_settings["user"], password=mysql_settings["password"],
                          slave_id=20000 + uuid.uuid4().int % 10000, filter_regex=db + r"\..*", **kw)


def entries(events: Sequence[Event]) -> list[pb.Entry]:
    out = []
    for ev in events:
        e = pb.Entry()
        e.ParseFromString(ev.entry)
        out.append(e)
    return out


def row_changes(events: Sequence[Event]) -> list[tuple[pb.Entry, pb.RowChange]]:
    out = []
    for e in entries(events):
        if e.entryType == pb.ROWDATA:
            rc = pb.RowChange()
            rc.ParseFromString(e.storeValue)
            out.append((e, rc))
    return out


def dml(events: Sequence[Event]) -> list[tuple[int, pb.RowData]]:
    return [(rc.eventType, rd) for _, rc in row_changes(events) if not rc.isDdl for rd in rc.rowDatas]


@pytest.fixture
def run(mysql_db: str, mysql_settings: dict[str, Any]) -> Iterator[tuple[BinlogParser, Collector]]:
    sink = Collector()
    parser = BinlogParser(settings(mysql_settings, mysql_db), sink)
    parser.start(None)
    # wait until the parser streams (its start position is the binlog end at start time)
    for _ in range(600):
        if parser.position is not None:
            break
        threading.Event().wait(0.05)
    yield parser, sink
    parser.stop()
    assert parser.error is None


ALL_TYPES = """
CREATE TABLE all_types (
  id INT NOT NULL PRIMARY KEY,
  flag TINYINT(1), ti TINYINT UNSIGNED, i INT, u BIGINT UNSIGNED, amount DECIMAL(12,2), f FLOAT, d DOUBLE,
  dt DATE, tm TIME(3), dtm DATETIME(6), ts TIMESTAMP(3) NULL, y YEAR, c CHAR(4), vc VARCHAR(64), body TEXT,
  bl BLOB, j JSON, e ENUM('a','b','c'), s SET('x','y','z'), bits BIT(10), vb VARBINARY(8)
) CHARACTER SET utf8mb4
"""

ROW1 = ("INSERT INTO all_types VALUES (1, 1, 255, -2147483648, 18446744073709551615, -12.30, 1.5, 2.5e-5, "
        "'2024-01-02', '-838:59:59.123', '2024-01-02 03:04:05.678900', '2024-03-04 13:06:07.250', 2024, 'ab', "
        "'héllo 😀', 'some text', 0xff00, '{\"a\": [1, 2]}', 'b', 'x,z', b'1010', 0x61ff)")

EXPECTED_ROW1 = {
    # name: (value, sqlType, mysqlType, isKey)
    "id": ("1", 4, "int(11)", True),
    "flag": ("1", -6, "tinyint(1)", False),
    "ti": ("255", 5, "tinyint(3) unsigned", False),
    "i": ("-2147483648", 4, "int(11)", False),
    "u": ("18446744073709551615", 3, "bigint(20) unsigned", False),
    "amount": ("-12.30", 3, "decimal(12,2)", False),
    "f": ("1.5", 7, "float", False),
    "d": ("2.5E-5", 8, "double", False),
    "dt": ("2024-01-02", 91, "date", False),
    "tm": ("-838:59:59.123", 92, "time(3)", False),
    "dtm": ("2024-01-02 03:04:05.678900", 93, "datetime(6)", False),
    "ts": ("2024-03-04 05:06:07.250", 93, "timestamp(3)", False),  # written at +08:00, server zone UTC
    "y": ("2024", 12, "year(4)", False),
    "c": ("ab", 1, "char(4)", False),
    "vc": ("héllo 😀", 12, "varchar(64)", False),
    "body": ("some text", 2005, "text", False),
    "bl": ("ÿ\x00", 2004, "blob", False),
    "j": ('{"a": [1, 2]}', 2005, "longtext", False),  # MariaDB JSON is LONGTEXT
    "e": ("b", 1, "enum('a','b','c')", False),
    "s": ("x,z", 12, "set('x','y','z')", False),
    "bits": ("10", -7, "bit(10)", False),
    "vb": ("aÿ", 2004, "varbinary(8)", False),
}


def by_name(cols: Sequence[pb.Column]) -> dict[str, pb.Column]:
    return {c.name: c for c in cols}


def test_every_type_insert_update_delete_and_ddl(run: tuple[BinlogParser, Collector], mysql_conn: Any) -> None:
    parser, sink = run
    cur = mysql_conn.cursor()
    cur.execute(ALL_TYPES)
    cur.execute("SET SESSION time_zone='+08:00'")
    cur.execute(ROW1)
    cur.execute("INSERT INTO all_types (id) VALUES (2)")
    cur.execute("SET SESSION sql_mode=''")
    cur.execute("INSERT INTO all_types (id, dt, dtm, ts, y) VALUES (3, '0000-00-00', '0000-00-00 00:00:00', "
                "'0000-00-00 00:00:00', 0)")
    events = sink.wait(lambda evs: len(dml(evs)) >= 3)

    # (the server is shared: other sessions' CREATE DATABASE is QUERY-type DDL, which no filter drops)
    creates = [(e, rc) for e, rc in row_changes(events) if rc.isDdl and rc.eventType == pb.CREATE]
    assert [e.header.tableName for e, _ in creates] == ["all_types"]

    (k1, r1), (k2, r2), (k3, r3) = dml(events)
    assert k1 == k2 == k3 == pb.INSERT
    cols = by_name(r1.afterColumns)
    assert not r1.beforeColumns and list(cols) == list(EXPECTED_ROW1)
    for name, (value, sql_type, mysql_type, key) in EXPECTED_ROW1.items():
        col = cols[name]
        assert (col.value, col.sqlType, col.mysqlType, col.isKey, col.isNull, col.updated) == (
            value, sql_type, mysql_type, key, False, True), name
    assert [c.index for c in r1.afterColumns] == list(range(len(EXPECTED_ROW1)))

    nulls = by_name(r2.afterColumns)
    assert nulls["id"].value == "2" and not nulls["id"].isNull
    for name in EXPECTED_ROW1:
        if name != "id":
            assert nulls[name].isNull and nulls[name].value == "" and nulls[name].HasField("isNull"), name
            assert nulls[name].sqlType == EXPECTED_ROW1[name][1], name

    zero = by_name(r3.afterColumns)
    assert (zero["dt"].value, zero["dtm"].value, zero["ts"].value, zero["y"].value) == (
        "0000-00-00", "0000-00-00 00:00:00.000000", "0000-00-00 00:00:00.000", "0000")

    # UPDATE: a value change, and a primary-key change with NULL → value; then DELETE
    cur.execute("UPDATE all_types SET vc='x', u=0 WHERE id=1")
    cur.execute("UPDATE all_types SET id=20, i=7 WHERE id=2")
    cur.execute("DELETE FROM all_types WHERE id=3")
    events = sink.wait(lambda evs: len(dml(evs)) >= 6)
    (ku1, u1), (ku2, u2), (kd, d3) = dml(events)[3:6]
    assert ku1 == ku2 == pb.UPDATE and kd == pb.DELETE
    assert [c.name for c in u1.afterColumns if c.updated] == ["u", "vc"]
    assert not any(c.updated for c in u1.beforeColumns)
    assert by_name(u1.beforeColumns)["vc"].value == "héllo 😀" and by_name(u1.afterColumns)["vc"].value == "x"
    assert [c.name for c in u2.afterColumns if c.updated] == ["id", "i"]
    assert by_name(u2.beforeColumns)["id"].value == "2" and by_name(u2.afterColumns)["id"].value == "20"
    assert by_name(u2.afterColumns)["id"].isKey
    assert not d3.afterColumns and by_name(d3.beforeColumns)["id"].value == "3"

    # DDL, then rows decoded with the new layout (the old events keep the old one)
    cur.execute("ALTER TABLE all_types ADD COLUMN extra VARCHAR(10) DEFAULT 'new'")
    cur.execute("INSERT INTO all_types (id) VALUES (4)")
    events = sink.wait(lambda evs: len(dml(evs)) >= 7)
    alters = [(e, rc) for e, rc in row_changes(events) if rc.isDdl and rc.eventType == pb.ALTER]
    assert len(alters) == 1 and alters[0][0].header.tableName == "all_types"
    alter_event = next(ev for ev in events if ev.is_ddl and "ALTER" in ev.entry.decode("latin-1"))
    assert alter_event.boundary and alter_event.position.position > 0
    last = by_name(dml(events)[6][1].afterColumns)
    assert last["extra"].value == "new" and last["extra"].mysqlType == "varchar(10)"

    # every transaction is BEGIN, ROWDATA..., END; boundaries carry the gtid; ROWDATA headers are complete
    # (other sessions' filtered transactions may add empty BEGIN/END pairs)
    kinds = [e.entryType for e in entries(events)]
    assert kinds.count(pb.TRANSACTIONBEGIN) == kinds.count(pb.TRANSACTIONEND) >= 7
    with_rows = [i for i, k in enumerate(kinds) if k == pb.TRANSACTIONBEGIN and kinds[i + 1] == pb.ROWDATA]
    assert len(with_rows) == 7
    for ev, e in zip(events, entries(events), strict=True):
        assert e.HasField("entryType") and e.header.version == 1 and e.header.sourceType == pb.MYSQL
        assert e.header.logfileName and e.header.logfileOffset > 0 and e.header.eventLength > 0
        assert e.header.executeTime > 1_600_000_000_000 and e.header.serverId > 0
        assert e.header.gtid.count("-") >= 2
        if e.entryType == pb.ROWDATA:
            assert e.header.HasField("eventType")
        if ev.boundary:
            assert ev.position.gtid and ev.position.position > e.header.logfileOffset
    assert parser.stats.rows >= 7 and parser.stats.transactions >= 7


def test_check_source_accepts_this_server_and_rejects_a_user_without_replication(
    mysql_conn: Any, mysql_settings: dict[str, Any], mysql_db: str
) -> None:
    check_source(settings(mysql_settings, mysql_db))
    user = "cbt_" + uuid.uuid4().hex[:8]
    cur = mysql_conn.cursor()
    cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'pw'")
    try:
        cur.execute(f"GRANT SELECT ON *.* TO '{user}'@'127.0.0.1'")
        bad = {**mysql_settings, "user": user, "password": "pw"}
        with pytest.raises(ConfigError, match="REPLICATION SLAVE"):
            check_source(settings(bad, mysql_db))
        wrong = {**mysql_settings, "password": "wrong"}
        with pytest.raises(ConfigError, match="dbPassword"):
            check_source(settings(wrong, mysql_db))
    finally:
        cur.execute(f"DROP USER '{user}'@'127.0.0.1'")


def test_filter_and_black_filter(mysql_conn: Any, mysql_settings: dict[str, Any], mysql_db: str) -> None:
    cur = mysql_conn.cursor()
    for t in ("keep_a", "keep_b", "skip_c"):
        cur.execute(f"CREATE TABLE {t} (id INT PRIMARY KEY)")
    sink = Collector()
    st = settings(mysql_settings, mysql_db)
    st = ParserSettings(**{**st.__dict__, "filter_regex": rf"{mysql_db}\.keep_.*,{mysql_db}\.skip_c",
                           "black_regex": rf"{mysql_db}\.keep_b"})
    parser = BinlogParser(st, sink)
    parser.start(None)
    try:
        for _ in range(600):
            if parser.position is not None:
                break
            threading.Event().wait(0.05)
        mysql_conn.begin()
        for t in ("keep_a", "keep_b", "skip_c"):
            cur.execute(f"INSERT INTO {t} VALUES (1)")
        mysql_conn.commit()
        sink.wait(lambda evs: len(dml(evs)) >= 2)
        parser.set_filter(rf"{mysql_db}\.skip_c")
        cur.execute("INSERT INTO keep_a VALUES (2)")
        cur.execute("INSERT INTO skip_c VALUES (2)")
        events = sink.wait(lambda evs: len(dml(evs)) >= 3)
        tables = [e.header.tableName for e, rc in row_changes(events) if not rc.isDdl]
        assert tables == ["keep_a", "skip_c", "skip_c"]
    finally:
        parser.stop()
    assert parser.error is None
