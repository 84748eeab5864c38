"""rdb writer against real PostgreSQL, MariaDB and a SQLite file: workloads, replay, types, outages."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import services
import sqlalchemy as sa

from adapter.dml import Dml
from adapter.errors import FatalError, RetriableError
from adapter.writers.base import MappingHeader, Routed, WriterConfig, WriterContext
from adapter.writers.rdb import RdbMapping, RdbWriter, parse_rdb_mapping

MARIA = "mysql+pymysql://app:apppass@127.0.0.1:{port}/{db}?charset=utf8mb4"


class Target:
    """One target database: its URL, a schema/database name, and DDL for the test tables."""

    def __init__(self, family: str, url: str, schema: str | None) -> None:
        self.family, self.url, self.schema = family, url, schema
        self.engine = sa.create_engine(url)

    def run(self, *sql: str) -> None:
        with self.engine.begin() as c:
            for s in sql:
                c.exec_driver_sql(s)

    def q(self, name: str) -> str:
        quote = "`" if self.family == "mysql" else '"'
        return f"{quote}{self.schema}{quote}.{quote}{name}{quote}" if self.schema else f"{quote}{name}{quote}"

    def rows(self, name: str, order: str = "id") -> list[tuple[Any, ...]]:
        with self.engine.connect() as c:
            return [tuple(r) for r in c.exec_driver_sql(f"select * from {self.q(name)} order by {order}")]

    def writer(self, *mappings: RdbMapping, threads: int = 3, **props: Any) -> RdbWriter:
        w = RdbWriter(WriterConfig("rdb", "k1", None, {"url": self.url, "threads": threads, **props}, "example", "g1"),
                      WriterContext())
        w.set_mappings(mappings)
        w.open()
        return w


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    if request.param == "postgresql":
        schema = request.getfixturevalue("pg_schema")
        t = Target("postgresql", services.PG_URL, schema)
    elif request.param == "mariadb":
        db = request.getfixturevalue("mysql_db")
        t = Target("mysql", MARIA.format(port=services.MARIADB["port"], db=db), db)
    else:
        t = Target("sqlite", f"sqlite:///{tmp_path}/target.db", None)
    yield t
    t.engine.dispose()


def mapping(t: Target, table: str, task: str = "m.yml", concurrent: bool = True, **body: Any) -> RdbMapping:
    base: dict[str, Any] = {"database": "src", "table": table, "targetTable": table, "mapAll": True}
    if t.schema:
        base["targetDb"] = t.schema
    base.update(body)
    header = MappingHeader(task, f"/conf/rdb/{task}", "src", "example", "g1", "k1")
    return parse_rdb_mapping(header, {"concurrent": concurrent, "dbMapping": base})


def dml(table: str, kind: str, rows: list[dict[str, Any]], old: list[dict[str, Any]] | None = None,
        **kw: Any) -> Dml:
    return Dml("example", "g1", "src", table, kind, ("id",), tuple(rows), tuple(old) if old is not None else None, **kw)


# ---------------------------------------------------------------- mixed workload, replay
def _workload(table: str, seed: int, n: int) -> tuple[list[Dml], dict[int, tuple[Any, ...]]]:
    """A random stream of inserts, updates (some changing the key), deletes; and the expected final rows."""
    rng = random.Random(seed)
    state: dict[int, tuple[Any, ...]] = {}
    out: list[Dml] = []
    for i in range(n):
        k = rng.randrange(200)
        if k in state and rng.random() < 0.15:
            out.append(dml(table, "DELETE", [{"id": k, "name": state[k][0], "n": state[k][1]}]))
            del state[k]
        elif k in state and rng.random() < 0.3:
            new = rng.choice([c for c in range(200) if c not in state])  # a key change
            out.append(dml(table, "UPDATE", [{"id": new, "name": f"moved{i}", "n": i}],
                           [{"id": k, "name": state[k][0]}]))
            del state[k]
            state[new] = (f"moved{i}", i)
        elif k in state:
            out.append(dml(table, "UPDATE", [{"id": k, "name": f"u{i}", "n": i}],
                           [{"name": state[k][0], "n": state[k][1]}]))
            state[k] = (f"u{i}", i)
        else:
            out.append(dml(table, "INSERT", [{"id": k, "name": f"i{i}", "n": i}]))
            state[k] = (f"i{i}", i)
    return out, state


def test_mixed_workload_with_replays_equals_expected(target: Target) -> None:
    target.run(f"create table {target.q('wl')} (id bigint primary key, name varchar(40) not null, n integer)")
    m = mapping(target, "wl")
    w = target.writer(m)
    events, expected = _workload("wl", seed=11, n=1500)
    batches = [events[i:i + 97] for i in range(0, len(events), 97)]
    for i, b in enumerate(batches):
        w.write([Routed(m, d) for d in b])
        if i % 4 == 1:
            w.write([Routed(m, d) for d in b])  # a replayed batch
        if i % 5 == 2 and i + 1 < len(batches):
            w.write([Routed(m, d) for d in batches[i + 1][:40]])  # part of the next batch lands early (a failed try)
    truncate = Dml("example", "g1", "src", "wl", "TRUNCATE", is_ddl=True, sql="truncate table wl")
    w.write([Routed(m, dml("wl", "INSERT", [{"id": 9999, "name": "gone", "n": 0}])), Routed(m, truncate)]
            + [Routed(m, dml("wl", "INSERT", [{"id": k, "name": v[0], "n": v[1]}])) for k, v in expected.items()])
    w.close()
    assert target.rows("wl") == sorted((k, *v) for k, v in expected.items())


# ---------------------------------------------------------------- types
TYPES_DDL = {
    "postgresql": """(id bigint primary key, big numeric(20,0), dec numeric(12,4), flag boolean, tiny smallint,
        j jsonb, jj json, e text, s text[], bits bit(8), bin bytea, dt timestamp(6), ts timestamptz(6), d date,
        tm time(6), zero_dt timestamp, name varchar(10))""",
    "mysql": """(id bigint primary key, big bigint unsigned, `dec` decimal(12,4), flag tinyint(1), tiny tinyint,
        j json, jj json, e enum('a','b'), s set('x','y'), bits bit(8), bin varbinary(16), dt datetime(6),
        ts timestamp(6) null, d date, tm time(6), zero_dt datetime, name varchar(10))""",
    "sqlite": """(id integer primary key, big text, dec numeric(12,4), flag boolean, tiny integer, j json, jj text,
        e text, s text, bits integer, bin blob, dt datetime, ts datetime, d date, tm time, zero_dt datetime,
        name varchar(10))""",
}
MYSQL_TYPES = {"id": "bigint(20)", "big": "bigint(20) unsigned", "dec": "decimal(12,4)", "flag": "tinyint(1)",
               "tiny": "tinyint(1)", "j": "json", "jj": "json", "e": "enum('a','b')", "s": "set('x','y')",
               "bits": "bit(8)", "bin": "varbinary(16)", "dt": "datetime(6)", "ts": "timestamp(6)", "d": "date",
               "tm": "time(6)", "zero_dt": "datetime", "name": "varchar(10)"}
NAIVE = dt.datetime(2024, 1, 2, 3, 4, 5, 123456)
ROW = {"id": 1, "big": 2**64 - 1, "dec": Decimal("12345678.1234"), "flag": 1, "tiny": 5, "j": '{"a": [1, 2.5]}',
       "jj": '{"b": null}', "e": "b", "s": "x,y", "bits": 5, "bin": b"\x00\xff\x10", "dt": NAIVE, "ts": NAIVE,
       "d": dt.date(2024, 2, 29), "tm": "12:34:56.500000", "zero_dt": "0000-00-00 00:00:00", "name": "héllo"}


def _check_types(family: str, got: dict[str, Any]) -> None:
    assert int(got["big"]) == 2**64 - 1
    assert Decimal(str(got["dec"])) == Decimal("12345678.1234")
    assert got["flag"] in (True, 1) and got["tiny"] == 5
    assert got["bin"] == b"\x00\xff\x10" and got["name"] == "héllo"
    assert str(got["d"]) == "2024-02-29"
    if family == "postgresql":
        assert got["j"] == {"a": [1, 2.5]} and got["jj"] == {"b": None}
        assert got["e"] == "b" and got["s"] == ["x", "y"] and got["bits"] == "00000101"
        assert got["dt"] == NAIVE and got["ts"] == NAIVE.replace(tzinfo=dt.timezone.utc)
        assert got["tm"] == dt.time(12, 34, 56, 500000) and got["zero_dt"] is None
    elif family == "mysql":
        assert got["j"] == '{"a": [1, 2.5]}' and got["e"] == "b" and got["s"] == "x,y" and got["bits"] == b"\x05"
        assert got["dt"] == NAIVE and got["ts"] == NAIVE  # read back in the UTC session below
        assert got["tm"] == dt.timedelta(hours=12, minutes=34, seconds=56, microseconds=500000)
        assert str(got["zero_dt"]) == "0000-00-00 00:00:00"  # kept for MySQL-family targets
    else:
        assert got["j"] == '{"a": [1, 2.5]}' and got["s"] == "x,y" and got["bits"] == 5
        assert got["dt"].startswith("2024-01-02 03:04:05.123456") and got["zero_dt"] is None


def _read_one(t: Target, table: str) -> dict[str, Any]:
    with t.engine.connect() as c:
        if t.family == "mysql":
            c.exec_driver_sql("SET time_zone = '+00:00'")
        return dict(c.exec_driver_sql(f"select * from {t.q(table)}").mappings().one())


def test_every_type_lands_faithfully(target: Target) -> None:
    target.run(f"create table {target.q('alltypes')} {TYPES_DDL[target.family]}")
    m = mapping(target, "alltypes")
    w = target.writer(m)
    d = dml("alltypes", "INSERT", [ROW], mysql_types=MYSQL_TYPES)
    w.write([Routed(m, d)])
    w.write([Routed(m, d)])
    w.close()
    _check_types(target.family, _read_one(target, "alltypes"))


def test_values_the_target_cannot_hold_fail_clearly(target: Target) -> None:
    if target.family != "postgresql":
        pytest.skip("PostgreSQL-specific target types")
    target.run(f"create table {target.q('narrow')} (id bigint primary key, big bigint, t time, flag boolean)")
    m = mapping(target, "narrow")
    w = target.writer(m)
    for col, value, words in (("big", 2**64 - 1, "out of range"), ("t", "-01:00:00", "outside"),
                              ("flag", 7, "0/1")):
        with pytest.raises(FatalError) as ei:
            w.write([Routed(m, dml("narrow", "INSERT", [{"id": 1, col: value}], mysql_types=MYSQL_TYPES))])
        assert f"narrow.{col}" in str(ei.value) and words in str(ei.value)
    w.close()
    assert target.rows("narrow") == []


def test_integrity_error_names_table_and_key(target: Target) -> None:
    target.run(f"create table {target.q('strict')} (id integer primary key, name varchar(10) not null)")
    m = mapping(target, "strict", concurrent=False)  # one partition: one transaction for the batch
    w = target.writer(m)
    with pytest.raises(FatalError) as ei:
        w.write([Routed(m, dml("strict", "INSERT", [{"id": 1, "name": "a"}, {"id": 2, "name": None}]))])
    w.close()
    assert "strict" in str(ei.value) and "id=2" in str(ei.value)
    assert target.rows("strict") == []


# ---------------------------------------------------------------- outages
@pytest.mark.parametrize("url", ["postgresql+psycopg://postgres@127.0.0.1:1/postgres",
                                 "mysql+pymysql://app:apppass@127.0.0.1:1/x"])
def test_target_down_is_retriable(url: str) -> None:
    header = MappingHeader("m.yml", "/conf/rdb/m.yml", None, "example", "g1", None)
    m = parse_rdb_mapping(header, {"dbMapping": {"database": "src", "table": "t", "targetTable": "t", "mapAll": True}})
    w = RdbWriter(WriterConfig("rdb", "k1", None, {"url": url}, "example", "g1"), WriterContext())
    w.set_mappings([m])
    w.open()
    with pytest.raises(RetriableError):
        w.write([Routed(m, dml("t", "INSERT", [{"id": 1}]))])
    w.close()


def test_killed_connections_recover_or_retry(pg_schema: str) -> None:
    app = "rdbtest_" + uuid.uuid4().hex[:8]
    t = Target("postgresql", services.PG_URL, pg_schema)
    t.run(f"create table {t.q('k')} (id integer primary key, name text)")
    m = mapping(t, "k")
    w = Target("postgresql", f"{services.PG_URL}?application_name={app}", pg_schema).writer(m)
    w.write([Routed(m, dml("k", "INSERT", [{"id": 1, "name": "a"}]))])
    admin = sa.create_engine(services.PG_URL)
    with admin.begin() as c:  # only this test's connections
        c.execute(sa.text("select pg_terminate_backend(pid) from pg_stat_activity where application_name = :a"),
                  {"a": app})
    batch = [Routed(m, dml("k", "INSERT", [{"id": 2, "name": "b"}]))]
    try:
        w.write(batch)
    except RetriableError:
        w.write(batch)  # the worker's retry
    w.close()
    admin.dispose()
    assert t.rows("k") == [(1, "a"), (2, "b")]
    t.engine.dispose()
