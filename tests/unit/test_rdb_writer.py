"""rdb writer on SQLite: ordering, idempotent replay, key changes, truncate, fallbacks, errors, DDL, ETL."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter.dml import Dml
from adapter.errors import ConfigError, FatalError, RetriableError
from adapter.writers.base import DataSource, MappingHeader, Routed, WriterConfig, WriterContext
from adapter.writers.rdb import RdbMapping, RdbWriter, parse_rdb_mapping


def header(task: str = "user.yml") -> MappingHeader:
    return MappingHeader(task, f"/conf/rdb/{task}", "src", "example", "g1", "k1")


def mapping(task: str = "user.yml", **body: Any) -> RdbMapping:
    base: dict[str, Any] = {"database": "main", "table": "user", "targetTable": "user", "mapAll": True}
    base.update(body)
    return parse_rdb_mapping(header(task), {"dataSourceKey": "src", "concurrent": True, "dbMapping": base})


def dml(kind: str, rows: list[dict[str, Any]], old: list[dict[str, Any]] | None = None, table: str = "user",
        **kw: Any) -> Dml:
    return Dml("example", "g1", "main", table, kind, ("id",), tuple(rows), tuple(old) if old is not None else None,
               **kw)


class Env:
    def __init__(self, tmp: Path) -> None:
        self.db = tmp / "target.db"
        self.src = tmp / "source.db"
        self.conn = sqlite3.connect(self.db, isolation_level=None)
        self.conn.executescript("""
            create table user (id integer primary key, name text not null, email text unique, n integer);
            create table flags (id integer primary key, on_off boolean, amount numeric(10, 2));
        """)
        ctx = WriterContext(data_sources={"src": DataSource("src", f"sqlite:///{self.src}", "main")})
        self.writer = RdbWriter(WriterConfig("rdb", "k1", None, {"jdbc.url": f"jdbc:sqlite:{self.db}"}, "example",
                                             "g1"), ctx)

    def rows(self, table: str = "user") -> list[tuple[Any, ...]]:
        return self.conn.execute(f"select * from {table} order by 1").fetchall()

    def start(self, *mappings: RdbMapping) -> RdbWriter:
        self.writer.set_mappings(mappings)
        self.writer.open()
        return self.writer


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.writer.close()
    e.conn.close()


def u(i: int, name: str = "x", email: str | None = None, n: int = 0) -> dict[str, Any]:
    return {"id": i, "name": name, "email": email, "n": n}


def test_mixed_workload_and_replay_are_idempotent(env: Env) -> None:
    m = mapping()
    w = env.start(m)
    batch = [Routed(m, d) for d in (
        dml("INSERT", [u(1, "a"), u(2, "b"), u(3, "c")]),
        dml("UPDATE", [u(1, "a2")], [{"name": "a"}]),
        dml("UPDATE", [u(20, "b")], [{"id": 2}]),  # key change 2 → 20
        dml("INSERT", [u(2, "b-again")]),  # the old key is reused
        dml("DELETE", [u(3, "c")]),
        dml("INSERT", [u(3, "c2")]),  # insert → delete → insert
        dml("INSERT", [u(4, "d")]),
        dml("DELETE", [u(4, "d")]),  # insert → delete
    )]
    expected = [(1, "a2", None, 0), (2, "b-again", None, 0), (3, "c2", None, 0), (20, "b", None, 0)]
    w.write(batch)
    assert env.rows() == expected
    w.write(batch)  # a replayed batch
    assert env.rows() == expected
    w.write(batch[:3])  # a prefix of a batch, then the whole batch again (a failed retry)
    w.write(batch)
    assert env.rows() == expected


def test_bad_mapping_on_reload_is_refused_naming_its_file(env: Env) -> None:
    good = mapping()
    w = env.start(good)
    bad = mapping("bad.yml", mapAll=False, targetColumns={"id": None, "nope": "name"})
    with pytest.raises(ConfigError, match="nope") as err:
        w.set_mappings([good, bad])  # the node keeps the previous version in force (router._install)
    assert err.value.source is not None and "bad.yml" in err.value.source
    w.set_mappings([good])
    w.write([Routed(good, dml("INSERT", [u(1)]))])
    assert env.rows() == [(1, "x", None, 0)]


def test_update_of_a_missing_row_lands_as_insert(env: Env) -> None:
    m = mapping()
    env.start(m).write([Routed(m, dml("UPDATE", [u(7, "late")], [{"name": "early"}]))])
    assert env.rows() == [(7, "late", None, 0)]


def test_truncate_is_a_barrier(env: Env) -> None:
    m = mapping()
    w = env.start(m)
    w.write([Routed(m, dml("INSERT", [u(1), u(2)])),
             Routed(m, Dml("example", "g1", "main", "user", "TRUNCATE", is_ddl=True, sql="truncate table user")),
             Routed(m, dml("INSERT", [u(3)]))])
    assert env.rows() == [(3, "x", None, 0)]


def test_unique_swap_falls_back_to_exact_order(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    m = mapping()
    w = env.start(m)
    w.write([Routed(m, dml("INSERT", [u(1, email="a"), u(2, email="b")]))])
    w.write([Routed(m, dml("UPDATE", [u(1, email="tmp")], [{"email": "a"}])),
             Routed(m, dml("UPDATE", [u(2, email="a")], [{"email": "b"}])),
             Routed(m, dml("UPDATE", [u(1, email="b")], [{"email": "tmp"}]))])
    assert env.rows() == [(1, "x", "b", 0), (2, "x", "a", 0)]
    assert any("exact order" in r.getMessage() for r in caplog.records)  # collapsed form was rejected


def test_rejected_row_is_fatal_naming_table_and_key(env: Env) -> None:
    m = mapping()
    w = env.start(m)
    with pytest.raises(FatalError) as ei:
        w.write([Routed(m, dml("INSERT", [u(1), {"id": 2, "name": None, "email": None, "n": 0}, u(3)]))])
    msg = str(ei.value)
    assert "user" in msg and "id=2" in msg and "NOT NULL" in msg.upper()
    assert env.rows() == []  # all-or-nothing


def test_bad_value_is_fatal_naming_column_and_value(env: Env) -> None:
    m = mapping(table="flags", targetTable="flags")
    w = env.start(m)
    with pytest.raises(FatalError) as ei:
        w.write([Routed(m, dml("INSERT", [{"id": 1, "on_off": 5, "amount": None}], table="flags",
                               mysql_types={"on_off": "tinyint(1)"}))])
    assert "flags.on_off" in str(ei.value) and "5" in str(ei.value)
    with pytest.raises(FatalError, match=r"flags\.amount"):
        w.write([Routed(m, dml("INSERT", [{"id": 1, "on_off": 1, "amount": "1.234"}], table="flags"))])


def test_target_down_is_retriable(tmp_path: Path) -> None:
    m = mapping()
    w = RdbWriter(WriterConfig("rdb", "k1", None, {"url": f"sqlite:///{tmp_path}/no/such/dir/t.db"}, "example", "g1"),
                  WriterContext())
    w.set_mappings([m])
    w.open()  # a target that is down is not a configuration error
    with pytest.raises(RetriableError):
        w.write([Routed(m, dml("INSERT", [u(1)]))])
    w.close()


def test_explicit_columns_case_insensitive_and_renames(env: Env) -> None:
    m = mapping(mapAll=False, caseInsensitive=True, targetColumns={"id": "ID", "name": "UserName", "n": None})
    env.start(m).write([Routed(m, dml("INSERT", [{"ID": 1, "UserName": "a", "N": 5, "extra": 1}]))])
    assert env.rows() == [(1, "a", None, 5)]


def test_add_columns_from_rows_and_ddl(env: Env) -> None:
    m = mapping(ddl="addColumns")
    w = env.start(m)
    w.write([Routed(m, dml("INSERT", [{**u(1), "born": dt.date(2000, 1, 2)}], mysql_types={"born": "date"}))])
    assert env.rows()[0][-1] == "2000-01-02"
    w.write([Routed(m, Dml("example", "g1", "main", "user", "ALTER", is_ddl=True,
                           sql="ALTER TABLE user ADD COLUMN score INT NOT NULL DEFAULT 5 AFTER n"))])
    cols = [r[1] for r in env.conn.execute("pragma table_info(user)")]
    assert cols[-1] == "score" and env.rows()[0][-1] == 5  # existing rows get the source default
    w.write([Routed(m, Dml("example", "g1", "main", "user", "ALTER", is_ddl=True,
                           sql="ALTER TABLE user ADD COLUMN score INT NOT NULL DEFAULT 5"))])  # replay


def test_new_column_without_add_columns_is_reported_not_written(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    m = mapping()
    env.start(m).write([Routed(m, dml("INSERT", [{**u(1), "born": "2000-01-02"}], mysql_types={"born": "date"}))])
    assert env.rows() == [(1, "x", None, 0)]
    assert any("addColumns" in r.getMessage() for r in caplog.records)


def test_mirror_db_replays_ddl_and_rows(env: Env) -> None:
    m = parse_rdb_mapping(header("mirror.yml"), {"dbMapping": {"mirrorDb": True, "database": "shop"}})
    w = env.start(m)

    def ddl(sql: str, table: str) -> Routed:
        return Routed(m, Dml("example", "g1", "shop", table, "CREATE", is_ddl=True, sql=sql))

    create = ddl("CREATE TABLE `orders` (`id` bigint unsigned NOT NULL AUTO_INCREMENT, `amount` decimal(10,2), "
                 "`state` enum('new','paid') DEFAULT 'new', PRIMARY KEY (`id`)) ENGINE=InnoDB", "orders")
    row = Dml("example", "g1", "shop", "orders", "INSERT", ("id",), ({"id": 1, "amount": "9.50", "state": "paid"},))
    w.write([create, Routed(m, row), ddl("ALTER TABLE orders ADD COLUMN note varchar(20) AFTER amount", "orders")])
    w.write([create, Routed(m, row)])  # replayed DDL is harmless
    assert env.conn.execute("select id, amount, state, note from orders").fetchall() == [(1, 9.5, "paid", None)]
    w.write([ddl("DROP TABLE orders", "orders")])
    assert env.conn.execute("select count(*) from sqlite_master where name='orders'").fetchone() == (0,)


def _source(env: Env, n: int) -> None:
    c = sqlite3.connect(env.src, isolation_level=None)
    c.execute("create table user (id integer primary key, name text not null, email text, n integer)")
    c.executemany("insert into user values (?, ?, ?, ?)", [(i, f"n{i}", None, i % 7) for i in range(1, n + 1)])
    c.close()


def test_etl_keyset_pages_condition_and_count(env: Env) -> None:
    _source(env, 95)
    m = mapping(commitBatch=10, etlCondition="where n >= {} and name <> ':x'")
    w = env.start(m)
    seen: list[int] = []
    res = w.etl(m, [], seen.append)  # a condition with placeholders applies only with params (canal)
    assert res.succeeded and res.rows == 95 and res.result_message == "导入RDB 数据：95 条"
    assert seen == [10, 20, 30, 40, 50, 60, 70, 80, 90, 95]
    assert w.count(m) == 95
    assert w.count_info(m) == {"count": 95, "targetTable": "user"}
    env.conn.execute("delete from user")
    res = w.etl(m, ["5"], lambda n: None)
    assert res.succeeded and w.count(m) == len([i for i in range(1, 96) if i % 7 >= 5])
    bad = w.etl(m, ["1", "2"], lambda n: None)
    assert not bad.succeeded and "placeholder" in (bad.error_message or "")
    assert bad.to_canal_dict()["errorMessage"].startswith("user etl failed! ==>")


def test_etl_without_source_is_a_failed_result(env: Env) -> None:
    m = mapping()
    w = env.start(m)
    res = w.etl(m, [], lambda n: None)
    assert not res.succeeded and "does not exist" in (res.error_message or "")
