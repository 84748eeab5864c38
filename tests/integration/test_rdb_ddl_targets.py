"""rdb writer DDL on real targets: mirrorDb replay (translated for PostgreSQL, renamed schema on MariaDB),
``ddl: addColumns`` for mapAll targets, and replayed DDL being harmless."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
import services
import sqlalchemy as sa

from adapter.dml import Dml
from adapter.writers.base import MappingHeader, Routed, WriterConfig, WriterContext
from adapter.writers.rdb import RdbWriter, parse_rdb_mapping

MARIA = "mysql+pymysql://app:apppass@127.0.0.1:{port}/{db}?charset=utf8mb4"


@pytest.fixture
def maria_db(mariadb_available: None) -> Iterator[str]:
    """A fresh target database whose name differs from the source database (canal #4021)."""
    name = "t_" + uuid.uuid4().hex[:12]
    conn = pymysql.connect(autocommit=True, **services.MARIADB_ROOT)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    yield name
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


@pytest.fixture(params=["postgresql", "mariadb"])
def target(request: pytest.FixtureRequest) -> tuple[str, str, str]:
    """(family, url, schema)."""
    if request.param == "postgresql":
        return "postgresql", services.PG_URL, request.getfixturevalue("pg_schema")
    db = request.getfixturevalue("maria_db")
    return "mysql", MARIA.format(port=services.MARIADB["port"], db=db), db


def ddl(kind: str, table: str, sql: str) -> Dml:
    return Dml("example", "g1", "shop", table, kind, is_ddl=True, sql=sql)


def row(table: str, kind: str, data: dict[str, Any], **kw: Any) -> Dml:
    return Dml("example", "g1", "shop", table, kind, ("id",), (data,), **kw)


def select(url: str, schema: str, table: str, family: str) -> list[tuple[Any, ...]]:
    q = "`" if family == "mysql" else '"'
    eng = sa.create_engine(url)
    with eng.connect() as c:
        rows = [tuple(r) for r in c.exec_driver_sql(f"select * from {q}{schema}{q}.{q}{table}{q} order by 1")]
    eng.dispose()
    return rows


def test_mirror_db_replays_ddl_and_rows(target: tuple[str, str, str]) -> None:
    family, url, schema = target
    header = MappingHeader("mirror.yml", "/conf/rdb/mirror.yml", None, "example", "g1", None)
    m = parse_rdb_mapping(header, {"dbMapping": {"mirrorDb": True, "database": "shop", "targetDb": schema}})
    w = RdbWriter(WriterConfig("rdb", "k1", None, {"url": url}, "example", "g1"), WriterContext())
    w.set_mappings([m])
    w.open()
    create = ddl("CREATE", "orders", "CREATE TABLE `shop`.`orders` (`id` bigint unsigned NOT NULL AUTO_INCREMENT, "
                 "`amount` decimal(10,2) NOT NULL DEFAULT '0.00', `state` enum('new','paid') DEFAULT 'new', "
                 "`at` timestamp NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, PRIMARY KEY (`id`), "
                 "KEY `k_state` (`state`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='orders'")
    types = {"id": "bigint(20) unsigned", "amount": "decimal(10,2)", "state": "enum('new','paid')",
             "at": "timestamp", "note": "varchar(20)"}
    batch = [
        Routed(m, create),
        Routed(m, row("orders", "INSERT", {"id": 18446744073709551615, "amount": "9.50", "state": "paid", "at": None},
                      mysql_types=types)),
        Routed(m, ddl("ALTER", "orders", "ALTER TABLE orders ADD COLUMN note varchar(20) NOT NULL DEFAULT 'n/a' "
                                         "AFTER amount")),
        Routed(m, row("orders", "INSERT", {"id": 2, "amount": "1.00", "note": "x", "state": "new", "at": None},
                      mysql_types=types)),
    ]
    w.write(batch)
    w.write(batch)  # the replayed DDL (create, add column) is harmless
    cols = _columns(url, schema, "orders")
    rows = [dict(zip(cols, r, strict=True)) for r in select(url, schema, "orders", family)]
    assert [(int(r["id"]), str(r["amount"]), r["state"], r["note"]) for r in rows] == [
        (2, "1.00", "new", "x"), (18446744073709551615, "9.50", "paid", "n/a")]  # the old row got the default
    w.write([Routed(m, ddl("RENAME", "orders", "RENAME TABLE orders TO orders_old")),
             Routed(m, row("orders_old", "DELETE", {"id": 2}, mysql_types=types)),
             Routed(m, ddl("DROP", "orders_old", "DROP TABLE orders_old"))])
    assert "orders_old" not in _tables(url, schema) and "orders" not in _tables(url, schema)
    w.close()


def _columns(url: str, schema: str, table: str) -> list[str]:
    eng = sa.create_engine(url)
    try:
        return [c["name"] for c in sa.inspect(eng).get_columns(table, schema=schema)]
    finally:
        eng.dispose()


def _tables(url: str, schema: str) -> list[str]:
    eng = sa.create_engine(url)
    try:
        return sa.inspect(eng).get_table_names(schema=schema)
    finally:
        eng.dispose()


def test_add_columns_for_map_all_targets(target: tuple[str, str, str]) -> None:
    family, url, schema = target
    eng = sa.create_engine(url)
    q = "`" if family == "mysql" else '"'
    with eng.begin() as c:
        c.exec_driver_sql(f"create table {q}{schema}{q}.users (id bigint primary key, name varchar(20))")
    eng.dispose()
    header = MappingHeader("u.yml", "/conf/rdb/u.yml", None, "example", "g1", None)
    m = parse_rdb_mapping(header, {"dbMapping": {"database": "shop", "table": "user", "targetDb": schema,
                                                 "targetTable": "users", "mapAll": True, "ddl": "addColumns"}})
    w = RdbWriter(WriterConfig("rdb", "k1", None, {"url": url}, "example", "g1"), WriterContext())
    w.set_mappings([m])
    w.open()
    w.write([Routed(m, row("user", "INSERT", {"id": 1, "name": "a"})),
             Routed(m, ddl("ALTER", "user", "ALTER TABLE `user` ADD COLUMN `level` int unsigned NOT NULL DEFAULT 3")),
             Routed(m, row("user", "INSERT", {"id": 2, "name": "b", "level": 7},
                           mysql_types={"level": "int(10) unsigned"})),
             # a column the DDL stream missed: added from the row's MySQL type
             Routed(m, row("user", "INSERT", {"id": 3, "name": "c", "level": 1, "score": "2.50"},
                           mysql_types={"score": "decimal(6,2)"}))])
    assert _columns(url, schema, "users") == ["id", "name", "level", "score"]
    rows = select(url, schema, "users", family)
    assert [(r[0], r[1], r[2], None if r[3] is None else str(r[3])) for r in rows] == [
        (1, "a", 3, None), (2, "b", 7, None), (3, "c", 1, "2.50")]
    w.close()
