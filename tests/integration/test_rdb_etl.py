"""rdb writer ETL over a real MariaDB source: keyset pages, types, condition, count, and ETL racing a live stream."""

from __future__ import annotations

import datetime as dt
import queue
import random
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymysql
import pytest
import services
import sqlalchemy as sa

from adapter.dml import Dml
from adapter.writers.base import DataSource, MappingHeader, Routed, WriterConfig, WriterContext
from adapter.writers.rdb import RdbMapping, RdbWriter, parse_rdb_mapping

SRC_URL = "mysql+pymysql://app:apppass@127.0.0.1:{port}/{db}?charset=utf8mb4"


def src_conn(db: str) -> Any:
    return pymysql.connect(charset="utf8mb4", autocommit=True, database=db, init_command="SET time_zone='+00:00'",
                           **services.MARIADB_ROOT)


class Setup:
    def __init__(self, db: str, target_url: str, schema: str | None) -> None:
        self.db, self.schema = db, schema
        self.target = sa.create_engine(target_url)
        ctx = WriterContext(data_sources={"src": DataSource("src", SRC_URL.format(port=services.MARIADB["port"],
                                                                                  db=db), db)})
        self.writer = RdbWriter(WriterConfig("rdb", "k1", None, {"url": target_url, "threads": 3}, "example", "g1"),
                                ctx)

    def mapping(self, table: str, **body: Any) -> RdbMapping:
        base: dict[str, Any] = {"database": self.db, "table": table, "targetTable": table, "mapAll": True,
                                "commitBatch": 500}
        if self.schema:
            base["targetDb"] = self.schema
        base.update(body)
        return parse_rdb_mapping(MappingHeader(f"{table}.yml", f"/conf/rdb/{table}.yml", "src", "example", "g1", "k1"),
                                 {"dataSourceKey": "src", "concurrent": True, "dbMapping": base})

    def target_rows(self, table: str) -> list[tuple[Any, ...]]:
        with self.target.connect() as c:
            return [tuple(r) for r in c.exec_driver_sql(f"select * from {self.qualified(table)} order by id")]

    def qualified(self, table: str) -> str:
        return f'"{self.schema}"."{table}"' if self.schema else f'"{table}"'

    def target_run(self, sql: str) -> None:
        with self.target.begin() as c:
            c.exec_driver_sql(sql)


@pytest.fixture(params=["postgresql", "sqlite"])
def setup(request: pytest.FixtureRequest, mysql_db: str, tmp_path: Path) -> Iterator[Setup]:
    if request.param == "postgresql":
        s = Setup(mysql_db, services.PG_URL, request.getfixturevalue("pg_schema"))
    else:
        s = Setup(mysql_db, f"sqlite:///{tmp_path}/t.db", None)
    yield s
    s.writer.close()
    s.target.dispose()


def test_etl_keyset_condition_and_count(setup: Setup) -> None:
    c = src_conn(setup.db)
    with c.cursor() as cur:
        cur.execute("drop table if exists people")
        cur.execute("create table people (id bigint primary key, name varchar(20), c_time datetime)")
        cur.executemany("insert into people values (%s, %s, %s)",
                        [(i * 3, f"p{i}", dt.datetime(2020, 1, 1) + dt.timedelta(days=i)) for i in range(1, 2346)])
    c.close()
    setup.target_run(f"create table {setup.qualified('people')} (id bigint primary key, name varchar(20), "
                     "c_time timestamp)")
    m = setup.mapping("people", etlCondition="where c_time >= {}")
    setup.writer.set_mappings([m])
    setup.writer.open()
    seen: list[int] = []
    res = setup.writer.etl(m, ["2026-01-01"], seen.append)
    cut = dt.datetime(2026, 1, 1)
    expected = len([i for i in range(1, 2346) if dt.datetime(2020, 1, 1) + dt.timedelta(days=i) >= cut])
    assert res.succeeded and res.rows == expected, res
    assert res.result_message == f"导入RDB 数据：{expected} 条"
    assert setup.writer.count(m) == expected
    res = setup.writer.etl(m, [], seen.append)  # no params: the whole table (canal)
    assert res.succeeded and res.rows == 2345 and setup.writer.count(m) == 2345
    assert seen[-1] == 2345 and seen == sorted(seen)
    rows = setup.target_rows("people")
    assert rows[0][:2] == (3, "p1") and rows[-1][:2] == (2345 * 3, "p2345")


def test_etl_types_match_the_stream(setup: Setup) -> None:
    if setup.schema is None:
        pytest.skip("types are checked against PostgreSQL")
    c = src_conn(setup.db)
    with c.cursor() as cur:
        cur.execute("drop table if exists alltypes")
        cur.execute("""create table alltypes (id bigint primary key, big bigint unsigned, `dec` decimal(12,4),
            flag tinyint(1), tiny tinyint, j json, e enum('a','b'), s set('x','y'), bits bit(8),
            bin varbinary(16), dt datetime(6), ts timestamp(6) null, d date, tm time(6), neg time, zero_dt datetime)""")
        cur.execute("""insert into alltypes values (1, 18446744073709551615, 12345678.1234, 1, 5, '{"a": [1, 2.5]}',
            'b', 'x,y', b'00000101', x'00ff10', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.123456',
            '2024-02-29', '12:34:56.5', '-01:00:00', '0000-00-00 00:00:00')""")
    c.close()
    setup.target_run(f"""create table "{setup.schema}".alltypes (id bigint primary key, big numeric(20,0),
        dec numeric(12,4), flag boolean, tiny smallint, j jsonb, e text, s text[], bits bit(8), bin bytea,
        dt timestamp(6), ts timestamptz(6), d date, tm time(6), neg interval, zero_dt timestamp)""")
    m = setup.mapping("alltypes")
    setup.writer.set_mappings([m])
    setup.writer.open()
    assert setup.writer.etl(m, [], lambda n: None).succeeded
    with setup.target.connect() as conn:
        got = dict(conn.exec_driver_sql(f'select * from "{setup.schema}".alltypes').mappings().one())
    naive = dt.datetime(2024, 1, 2, 3, 4, 5, 123456)
    assert got["big"] == Decimal(2**64 - 1) and got["dec"] == Decimal("12345678.1234")
    assert got["flag"] is True and got["tiny"] == 5 and got["j"] == {"a": [1, 2.5]}
    assert got["e"] == "b" and got["s"] == ["x", "y"] and got["bits"] == "00000101" and got["bin"] == b"\x00\xff\x10"
    assert got["dt"] == naive and got["ts"] == naive.replace(tzinfo=dt.timezone.utc)  # TIMESTAMP read in UTC
    assert got["d"] == dt.date(2024, 2, 29) and got["tm"] == dt.time(12, 34, 56, 500000)
    assert got["neg"] == -dt.timedelta(hours=1) and got["zero_dt"] is None


def test_etl_while_the_stream_changes_rows_ends_equal(setup: Setup) -> None:
    """A mutator changes the source and emits the matching Dmls (in commit order); a lagging streamer applies
    them through write() while the ETL pages the table. Afterwards target == source."""
    n = 6000
    c = src_conn(setup.db)
    with c.cursor() as cur:
        cur.execute("drop table if exists live")
        cur.execute("create table live (id bigint primary key, name varchar(30), n int)")
        cur.executemany("insert into live values (%s, %s, %s)", [(i, f"r{i}", 0) for i in range(n)])
    setup.target_run(f"create table {setup.qualified('live')} (id bigint primary key, name varchar(30), n int)")
    m = setup.mapping("live", commitBatch=400)
    w = setup.writer
    w.set_mappings([m])
    w.open()
    events: queue.Queue[Dml | None] = queue.Queue()
    stop = threading.Event()

    def ev(kind: str, row: dict[str, Any], old: dict[str, Any] | None = None) -> Dml:
        return Dml("example", "g1", setup.db, "live", kind, ("id",), (row,), (old,) if old is not None else None)

    def mutate() -> None:
        rng = random.Random(3)
        next_id = n
        with c.cursor() as cur:
            while not stop.is_set():
                k = rng.randrange(next_id)
                cur.execute("select id, name, n from live where id = %s", (k,))
                found = cur.fetchone()
                r = rng.random()
                if found is None:
                    continue
                row = {"id": found[0], "name": found[1], "n": found[2]}
                if r < 0.1:
                    cur.execute("delete from live where id = %s", (k,))
                    events.put(ev("DELETE", row))
                elif r < 0.2:
                    new = next_id
                    next_id += 1
                    cur.execute("update live set id = %s, n = n + 1 where id = %s", (new, k))
                    events.put(ev("UPDATE", {**row, "id": new, "n": row["n"] + 1}, {"id": k, "n": row["n"]}))
                elif r < 0.3:
                    new = next_id
                    next_id += 1
                    cur.execute("insert into live values (%s, %s, 0)", (new, f"new{new}"))
                    events.put(ev("INSERT", {"id": new, "name": f"new{new}", "n": 0}))
                else:
                    cur.execute("update live set n = n + 1 where id = %s", (k,))
                    events.put(ev("UPDATE", {**row, "n": row["n"] + 1}, {"n": row["n"]}))

    def stream() -> None:
        while True:
            batch: list[Dml] = []
            item = events.get()
            while item is not None:
                batch.append(item)
                if len(batch) >= 50:
                    break
                try:
                    item = events.get(timeout=0.05)
                except queue.Empty:
                    break
            if batch:
                w.write([Routed(m, d) for d in batch])
            if item is None:
                return

    mutator = threading.Thread(target=mutate)
    streamer = threading.Thread(target=stream)
    mutator.start()
    streamer.start()
    res = w.etl(m, [], lambda done: None)
    stop.set()
    mutator.join()
    events.put(None)
    streamer.join()
    assert res.succeeded, res
    with c.cursor() as cur:
        cur.execute("select id, name, n from live order by id")
        source = [tuple(r) for r in cur.fetchall()]
    c.close()
    assert len(source) > n // 2
    assert setup.target_rows("live") == source
