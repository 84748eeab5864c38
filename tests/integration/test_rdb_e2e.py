"""End to end: MariaDB → canal-server → canal-adapter → rdb into PostgreSQL, MariaDB and SQLite.

A mixed workload (inserts, updates, key changes, deletes, a TRUNCATE, all column types) ends with
target == source row for row; a 200,000-row ETL (REST) while the stream keeps changing rows ends
with target == source and a matching /count.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymysql
import pytest
import services
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent.parent))
from pipeline import pipeline

from adapter.testing import wait_until

MARIA = "mysql+pymysql://app:apppass@127.0.0.1:{port}/{db}?charset=utf8mb4"
TYPES_SRC = """(id bigint primary key, big bigint unsigned, `dec` decimal(12,4), flag tinyint(1), j json,
    e enum('a','b'), s set('x','y'), bits bit(8), bin varbinary(16), dt datetime(6), ts timestamp(6) null,
    d date, tm time(6), zero_dt datetime, name varchar(10))"""
TYPES_TGT = {
    "postgresql": """(id bigint primary key, big numeric(20,0), dec numeric(12,4), flag smallint, j jsonb, e text,
        s text[], bits bit(8), bin bytea, dt timestamp(6), ts timestamptz(6), d date, tm time(6), zero_dt timestamp,
        name varchar(10))""",
    "mysql": TYPES_SRC,
    "sqlite": """(id integer primary key, big text, dec text, flag integer, j json, e text, s text, bits integer,
        bin blob, dt datetime, ts datetime, d date, tm time, zero_dt datetime, name varchar(10))""",
}


def src_conn(db: str) -> Any:
    return pymysql.connect(charset="utf8mb4", autocommit=True, database=db, init_command="SET time_zone='+00:00'",
                           **services.MARIADB_ROOT)


def sql(conn: Any, *stmts: str, args: Any = None) -> None:
    with conn.cursor() as cur:
        for s in stmts:
            cur.execute(s, args)


class Tgt:
    def __init__(self, family: str, url: str, schema: str | None) -> None:
        self.family, self.url, self.schema = family, url, schema
        self.engine = sa.create_engine(url)

    def q(self, t: str) -> str:
        c = "`" if self.family == "mysql" else '"'
        return f"{c}{self.schema}{c}.{c}{t}{c}" if self.schema else f"{c}{t}{c}"

    def run(self, stmt: str) -> None:
        with self.engine.begin() as c:
            c.exec_driver_sql(stmt)

    def rows(self, t: str, cols: str = "*") -> list[tuple[Any, ...]]:
        with self.engine.connect() as c:
            return [tuple(r) for r in c.exec_driver_sql(f"select {cols} from {self.q(t)} order by 1")]


@pytest.fixture
def maria_target(mariadb_available: None) -> Iterator[str]:
    name = "t_" + uuid.uuid4().hex[:12]
    conn = pymysql.connect(autocommit=True, **services.MARIADB_ROOT)
    sql(conn, f"CREATE DATABASE `{name}`")
    yield name
    sql(conn, f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def tgt(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tgt]:
    if request.param == "postgresql":
        t = Tgt("postgresql", services.PG_URL, request.getfixturevalue("pg_schema"))
    elif request.param == "mariadb":
        db = request.getfixturevalue("maria_target")
        t = Tgt("mysql", MARIA.format(port=services.MARIADB["port"], db=db), db)
    else:
        t = Tgt("sqlite", f"sqlite:///{tmp_path}/target.db", None)
    yield t
    t.engine.dispose()


def conf(t: Tgt, db: str) -> dict[str, Any]:
    return {
        "srcDataSources": {"defaultDS": {"url": MARIA.format(port=services.MARIADB["port"], db=db)}},
        "syncBatchSize": 200,
        "canalAdapters": [{"instance": "example", "groups": [{"groupId": "g1", "outerAdapters": [
            {"name": "rdb", "key": "rdb1", "properties": {"url": t.url, "threads": 3}}]}]}],
    }


def mapping_file(t: Tgt, db: str, table: str, **extra: Any) -> str:
    body = {"database": db, "table": table, "targetTable": table, "mapAll": True, **extra}
    if t.schema:
        body["targetDb"] = t.schema
    return json.dumps({"dataSourceKey": "defaultDS", "destination": "example", "groupId": "g1",
                       "outerAdapterKey": "rdb1", "concurrent": True, "dbMapping": body})


@pytest.mark.timeout(600)
def test_mixed_workload_target_equals_source(tmp_path: Path, mysql_db: str, tgt: Tgt) -> None:
    src = src_conn(mysql_db)
    sql(src, "drop table if exists users", "drop table if exists alltypes",  # the database is per module
        "create table users (id bigint primary key, name varchar(40) not null, n int)",
        f"create table alltypes {TYPES_SRC}")
    tgt.run(f"create table {tgt.q('users')} (id bigint primary key, name varchar(40) not null, n int)")
    tgt.run(f"create table {tgt.q('alltypes')} {TYPES_TGT[tgt.family]}")
    mappings = {"rdb/users.yml": mapping_file(tgt, mysql_db, "users"),
                "rdb/alltypes.yml": mapping_file(tgt, mysql_db, "alltypes")}
    with pipeline(tmp_path, mysql_db, conf(tgt, mysql_db), mappings):
        rng = random.Random(5)
        sql(src, "insert into users values " + ",".join(f"({i}, 'u{i}', 0)" for i in range(300)))
        sql(src, "insert into users values (9000, 'gone', 0)")
        sql(src, "truncate table users")
        sql(src, "insert into users values " + ",".join(f"({i}, 'u{i}', 0)" for i in range(500)))
        live = set(range(500))
        for step in range(1500):
            k = rng.choice(sorted(live))
            r = rng.random()
            if r < 0.1:
                sql(src, "delete from users where id = %s", args=(k,))
                live.discard(k)
            elif r < 0.2:
                new = max(live) + 1
                sql(src, "update users set id = %s, n = n + 1 where id = %s", args=(new, k))
                live.discard(k)
                live.add(new)
            elif r < 0.25:
                sql(src, "begin")
                sql(src, "delete from users where id = %s", args=(k,))
                sql(src, "insert into users values (%s, %s, %s)", args=(k, f"re{step}", step))
                sql(src, "commit")
            else:
                sql(src, "update users set n = %s, name = %s where id = %s", args=(step, f"v{step}", k))
        sql(src, """insert into alltypes values (1, 18446744073709551615, 12345678.1234, 5, '{"a": [1, 2.5]}', 'b',
            'x,y', b'00000101', x'00ff10', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.123456', '2024-02-29',
            '12:34:56.5', '0000-00-00 00:00:00', 'héllo'), (2, 0, -1.5, 0, '[]', 'a', '', b'0', x'', '1000-01-01',
            '1970-01-01 00:00:01', '1000-01-01', '00:00:00', '2020-01-01 00:00:00', '')""")
        sql(src, "update alltypes set name = 'changed', flag = 1 where id = 2")
        with src.cursor() as cur:
            cur.execute("select id, name, n from users order by id")
            expected = [tuple(r) for r in cur.fetchall()]
        wait_until(lambda: tgt.rows("users") == expected, timeout=300, what="users target == source")
        wait_until(lambda: len(tgt.rows("alltypes")) == 2 and tgt.rows("alltypes", "id, name")[1][1] == "changed",
                   timeout=120, what="alltypes rows")
    names = ["id", "big", "dec", "flag", "j", "e", "bits", "bin", "d", "zero_dt", "name"]
    q = "`" if tgt.family == "mysql" else '"'
    got = dict(zip(names, tgt.rows("alltypes", ", ".join(f"{q}{n}{q}" for n in names))[0], strict=True))
    assert Decimal(str(got["big"])) == 2**64 - 1 and Decimal(str(got["dec"])) == Decimal("12345678.1234")
    assert int(got["flag"]) == 5 and got["e"] == "b" and got["name"] == "héllo"
    assert bytes(got["bin"]) == b"\x00\xff\x10" and str(got["d"]) == "2024-02-29"
    assert got["bits"] in (5, "00000101", b"\x05")
    if tgt.family == "mysql":
        assert str(got["zero_dt"]) == "0000-00-00 00:00:00"  # zero dates stay on MySQL-family targets
    else:
        assert got["zero_dt"] is None
    j = got["j"]
    assert (json.loads(j) if isinstance(j, str) else j) == {"a": [1, 2.5]}
    src.close()


@pytest.mark.timeout(600)
def test_mirror_db_follows_source_ddl(tmp_path: Path, mysql_db: str, pg_schema: str) -> None:
    """mirrorDb into a PostgreSQL schema: tables created, altered, renamed and dropped on the source follow."""
    src = src_conn(mysql_db)
    sql(src, "drop table if exists m_orders", "drop table if exists m_orders2")
    t = Tgt("postgresql", services.PG_URL, pg_schema)
    mirror = json.dumps({"destination": "example", "groupId": "g1", "outerAdapterKey": "rdb1", "concurrent": True,
                         "dbMapping": {"mirrorDb": True, "database": mysql_db, "targetDb": pg_schema}})
    with pipeline(tmp_path, mysql_db, conf(t, mysql_db), {"rdb/mirror.yml": mirror}):
        sql(src, "create table m_orders (id bigint unsigned not null auto_increment, amount decimal(10,2) not null "
                 "default '0.00', state enum('new','paid') default 'new', primary key (id)) engine=InnoDB",
            "insert into m_orders (amount, state) values (9.50, 'paid'), (1.00, 'new')",
            "alter table m_orders add column note varchar(20) not null default 'n/a' after amount",
            "insert into m_orders (amount, note) values (3.25, 'third')",
            "update m_orders set state = 'paid' where id = 2",
            "create table m_gone (id int primary key)", "drop table m_gone")
        wait_until(lambda: "m_orders" in sa.inspect(t.engine).get_table_names(schema=pg_schema)
                   and len(t.rows("m_orders")) == 3, timeout=120, what="mirrored table and rows")
        rows = t.rows("m_orders", "id, amount, note, state")
        assert [(r[0], str(r[1]), r[2], r[3]) for r in rows] == [
            (1, "9.50", "n/a", "paid"), (2, "1.00", "n/a", "paid"), (3, "3.25", "third", "new")]
        sql(src, "rename table m_orders to m_orders2", "delete from m_orders2 where id = 1")
        wait_until(lambda: "m_orders2" in sa.inspect(t.engine).get_table_names(schema=pg_schema)
                   and len(t.rows("m_orders2")) == 2, timeout=120, what="renamed table")
        assert "m_gone" not in sa.inspect(t.engine).get_table_names(schema=pg_schema)
    src.close()
    t.engine.dispose()


def rest(node: Any, method: str, path: str) -> Any:
    req = urllib.request.Request(f"http://{node.rest_address}{path}", method=method)
    with urllib.request.urlopen(req, timeout=900) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_etl_of_200k_rows_while_the_stream_changes_them(tmp_path: Path, mysql_db: str, pg_schema: str) -> None:
    rows = 200_000
    src = src_conn(mysql_db)
    sql(src, "create table big (id bigint primary key, name varchar(40), n int, at datetime(3))")
    for start in range(0, rows, 10_000):
        sql(src, "insert into big values " + ",".join(
            f"({i}, 'r{i}', 0, '2024-01-01 00:00:00.000')" for i in range(start, start + 10_000)))
    t = Tgt("postgresql", services.PG_URL, pg_schema)
    t.run(f"create table {t.q('big')} (id bigint primary key, name varchar(40), n int, at timestamp(3))")
    mappings = {"rdb/big.yml": mapping_file(t, mysql_db, "big", commitBatch=5000)}
    stop = threading.Event()
    changes = [0]

    def mutate() -> None:
        rng = random.Random(9)
        conn = src_conn(mysql_db)
        next_id = rows
        while not stop.is_set():
            k = rng.randrange(next_id)
            r = rng.random()
            if r < 0.1:
                sql(conn, "delete from big where id = %s", args=(k,))
            elif r < 0.2:
                sql(conn, "update ignore big set id = %s, n = n + 1 where id = %s", args=(next_id, k))
                next_id += 1
            elif r < 0.3:
                sql(conn, "insert into big values (%s, 'new', 0, now(3))", args=(next_id,))
                next_id += 1
            else:
                sql(conn, "update big set n = n + 1, at = now(3) where id = %s", args=(k,))
            changes[0] += 1
        conn.close()

    with pipeline(tmp_path, mysql_db, conf(t, mysql_db), mappings) as p:
        mutator = threading.Thread(target=mutate)
        mutator.start()
        try:
            result = rest(p.node, "POST", "/etl/rdb/rdb1/big.yml")
        finally:
            stop.set()
            mutator.join()
        assert result["succeeded"], result
        assert changes[0] > 0
        with src.cursor() as cur:
            cur.execute("select id, name, n, at from big order by id")
            expected = [tuple(r) for r in cur.fetchall()]
        wait_until(lambda: t.rows("big") == expected, timeout=300, what="big target == source")
        counted = rest(p.node, "GET", "/count/rdb/rdb1/big.yml")
        assert counted["count"] == len(expected) and pg_schema in counted["targetTable"]
    src.close()
    t.engine.dispose()
