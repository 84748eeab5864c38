"""rdb writer: rows → keyed ops, per-key collapse, exact-order runs, key-safe partitioning; statement building."""

from __future__ import annotations

import random
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from adapter.dml import Dml
from adapter.writers.base import MappingHeader
from adapter.writers.rdb import parse_rdb_mapping, sqlbuild
from adapter.writers.rdb.binding import TableBinding
from adapter.writers.rdb.plan import DELETE_OP, UPSERT_OP, Op, collapse, partition, row_groups, runs
from adapter.writers.rdb.types import UTC, ConvContext

HEADER = MappingHeader("t.yml", "/conf/rdb/t.yml", None, "example", "g1", None)


def binding(concurrent: bool = True, name: str = "t", key: tuple[str, ...] = ("id",)) -> TableBinding:
    cols = [sa.Column(k, sa.Integer, primary_key=True) for k in key]
    table = sa.Table(name, sa.MetaData(), *cols, sa.Column("name", sa.String(20)), sa.Column("n", sa.Integer))
    m = parse_rdb_mapping(HEADER, {"concurrent": concurrent, "dbMapping": {
        "database": "db", "table": name, "targetTable": name, "mapAll": True}})
    return TableBinding(mapping=m, table=table, key_cols=key, explicit={}, ctx=ConvContext("sqlite", name, "null", UTC))


def dml(kind: str, rows: list[dict[str, Any]], old: list[dict[str, Any]] | None = None, table: str = "t") -> Dml:
    return Dml("example", "g1", "db", table, kind, ("id",), tuple(rows), tuple(old) if old is not None else None)


def ops_of(b: TableBinding, *dmls: Dml) -> list[list[Op]]:
    groups: list[list[Op]] = []
    for d in dmls:
        groups.extend(row_groups(b, d, b.plan(tuple(d.data[0]), d.mysql_types)))
    return groups


def flat(groups: list[list[Op]]) -> list[tuple[int, tuple[Any, ...]]]:
    return [(op.kind, op.key) for g in groups for op in g]


def test_rows_become_keyed_ops() -> None:
    b = binding()
    groups = ops_of(b,
                    dml("INSERT", [{"id": 1, "name": "a", "n": 1}, {"id": 2, "name": "b", "n": 2}]),
                    dml("UPDATE", [{"id": 1, "name": "a2", "n": 1}], [{"name": "a"}]),  # same key
                    dml("UPDATE", [{"id": 3, "name": "b", "n": 2}], [{"id": 2}]),  # key change 2 → 3
                    dml("DELETE", [{"id": 1, "name": "a2", "n": 1}]))
    assert flat(groups) == [(UPSERT_OP, (1,)), (UPSERT_OP, (2,)), (UPSERT_OP, (1,)),
                            (DELETE_OP, (2,)), (UPSERT_OP, (3,)), (DELETE_OP, (1,))]
    assert [len(g) for g in groups] == [1, 1, 1, 2, 1]  # the key change is one group
    assert groups[3][1].values == {"id": 3, "name": "b", "n": 2}


def test_partial_image_writes_only_carried_columns() -> None:
    b = binding()
    (g,) = ops_of(b, dml("UPDATE", [{"id": 1, "n": 5}], [{"n": 4}]))
    assert g[0].values == {"id": 1, "n": 5}


def test_collapse_keeps_each_keys_final_state() -> None:
    b = binding()
    groups = ops_of(b,
                    dml("INSERT", [{"id": 1, "name": "a", "n": 1}]),
                    dml("DELETE", [{"id": 1, "name": "a", "n": 1}]),
                    dml("INSERT", [{"id": 1, "name": "again", "n": 2}]),  # insert → delete → insert
                    dml("INSERT", [{"id": 2, "name": "b", "n": 1}]),
                    dml("UPDATE", [{"id": 2, "name": "b2", "n": 1}], [{"name": "b"}]),  # merged upserts
                    dml("INSERT", [{"id": 3, "name": "c", "n": 1}]),
                    dml("DELETE", [{"id": 3, "name": "c", "n": 1}]))  # insert → delete
    (work,) = collapse([op for g in groups for op in g])
    assert work.deletes == [(1,), (3,)]
    assert work.upserts == [{"id": 1, "name": "again", "n": 2}, {"id": 2, "name": "b2", "n": 1}]


def test_collapse_merges_partial_images_in_order() -> None:
    b = binding()
    groups = ops_of(b, dml("UPDATE", [{"id": 1, "name": "x"}], [{"name": "w"}]),
                    dml("UPDATE", [{"id": 1, "n": 9}], [{"n": 8}]))
    (work,) = collapse([op for g in groups for op in g])
    assert work.upserts == [{"id": 1, "name": "x", "n": 9}] and work.deletes == []


def test_runs_keep_exact_order_without_repeating_a_key() -> None:
    b, other = binding(), binding(name="u")
    groups = ops_of(b, dml("INSERT", [{"id": 1, "name": "a", "n": 1}, {"id": 2, "name": "b", "n": 1},
                                      {"id": 1, "name": "a2", "n": 1}]),
                    dml("DELETE", [{"id": 2, "name": "b", "n": 1}, {"id": 3, "name": "c", "n": 1}]))
    groups += ops_of(other, dml("INSERT", [{"id": 9, "name": "z", "n": 1}], table="u"))
    rs = runs([op for g in groups for op in g])
    assert [[(op.binding.name, op.kind, op.key) for op in r] for r in rs] == [
        [("t", UPSERT_OP, (1,)), ("t", UPSERT_OP, (2,))],
        [("t", UPSERT_OP, (1,))],
        [("t", DELETE_OP, (2,)), ("t", DELETE_OP, (3,))],
        [("u", UPSERT_OP, (9,))],
    ]


def test_key_change_chain_stays_in_one_partition_in_order() -> None:
    b = binding()
    groups = ops_of(b,
                    dml("INSERT", [{"id": 1, "name": "a", "n": 0}]),
                    dml("UPDATE", [{"id": 2, "name": "a", "n": 0}], [{"id": 1}]),
                    dml("UPDATE", [{"id": 5, "name": "a", "n": 0}], [{"id": 2}]),
                    dml("INSERT", [{"id": 1, "name": "new", "n": 0}]),
                    dml("DELETE", [{"id": 5, "name": "a", "n": 0}]))
    groups += ops_of(b, dml("INSERT", [{"id": i, "name": "x", "n": 0} for i in range(10, 40)]))
    parts = partition(groups, 3)
    linked = {(1,), (2,), (5,)}
    holders = [p for p in parts if any(op.key in linked for op in p)]
    assert len(holders) == 1
    assert [(op.kind, op.key) for op in holders[0] if op.key in linked] == [
        (UPSERT_OP, (1,)), (DELETE_OP, (1,)), (UPSERT_OP, (2,)), (DELETE_OP, (2,)), (UPSERT_OP, (5,)),
        (UPSERT_OP, (1,)), (DELETE_OP, (5,))]
    assert len(parts) > 1  # unrelated keys did spread


def test_partitioning_preserves_every_keys_order_randomised() -> None:
    rng = random.Random(7)
    b = binding()
    groups: list[list[Op]] = []
    live: set[int] = set()
    for _ in range(600):
        k = rng.randrange(40)
        if k in live and rng.random() < 0.3:
            new = rng.randrange(40, 80) if rng.random() < 0.5 else k
            groups += ops_of(b, dml("UPDATE", [{"id": new, "name": "u", "n": 1}], [{"id": k}] if new != k else [{}]))
            live.discard(k)
            live.add(new)
        elif k in live:
            groups += ops_of(b, dml("DELETE", [{"id": k, "name": "d", "n": 1}]))
            live.discard(k)
        else:
            groups += ops_of(b, dml("INSERT", [{"id": k, "name": "i", "n": 1}]))
            live.add(k)
    order = {id(op): i for i, op in enumerate(op for g in groups for op in g)}
    parts = partition(groups, 4)
    where: dict[tuple[Any, ...], int] = {}
    for pi, p in enumerate(parts):
        assert [order[id(op)] for op in p] == sorted(order[id(op)] for op in p)  # source order kept
        for op in p:
            assert where.setdefault(op.key, pi) == pi  # a key lives in one partition
    for g in groups:  # both keys of a key change share a partition
        assert len({where[op.key] for op in g}) == 1


def test_non_concurrent_mapping_is_one_partition() -> None:
    b = binding(concurrent=False)
    groups = ops_of(b, dml("INSERT", [{"id": i, "name": "x", "n": 0} for i in range(50)]))
    assert len(partition(groups, 3)) == 1


# ---------------------------------------------------------------- statements
def _sql(stmt: Any, dialect: Any) -> str:
    return str(stmt.compile(dialect=dialect))


def test_upserts_per_dialect() -> None:
    t = sa.Table("user", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("key", sa.String),
                 sa.Column("j", sa.JSON), schema="mytest2")
    my = _sql(sqlbuild.upsert("mysql", t, ("id",), ("id", "key", "j")), mysql.dialect())
    assert my.startswith("INSERT INTO mytest2.user (id, `key`, j)")
    assert "ON DUPLICATE KEY UPDATE `key` = VALUES(`key`)" in my
    pg = _sql(sqlbuild.upsert("postgresql", t, ("id",), ("id", "key", "j")), postgresql.dialect())
    assert "ON CONFLICT (id) DO UPDATE SET key = excluded.key, j = excluded.j" in pg
    assert "CAST(" in pg and "AS JSON)" in pg  # the source's JSON text is cast, not re-encoded
    lite = _sql(sqlbuild.upsert("sqlite", t, ("id",), ("id", "key")), sqlite.dialect())
    assert 'ON CONFLICT (id) DO UPDATE SET "key" = excluded."key"' in lite
    only_keys = _sql(sqlbuild.upsert("postgresql", t, ("id",), ("id",)), postgresql.dialect())
    assert "ON CONFLICT (id) DO NOTHING" in only_keys
    assert "ON DUPLICATE KEY UPDATE id = VALUES(id)" in _sql(sqlbuild.upsert("mysql", t, ("id",), ("id",)),
                                                             mysql.dialect())


def test_delete_and_truncate_statements() -> None:
    t = sa.Table("order", sa.MetaData(), sa.Column("a", sa.Integer, primary_key=True),
                 sa.Column("b", sa.Integer, primary_key=True), schema="s")
    one = sqlbuild.delete_keys(t, ("a",), [(1,), (2,)])
    assert "WHERE s.\"order\".a IN" in _sql(one, postgresql.dialect())
    two = sqlbuild.delete_keys(t, ("a", "b"), [(1, 2), (3, 4)])
    assert "(s.`order`.a, s.`order`.b) IN" in _sql(two, mysql.dialect())
    assert _sql(sqlbuild.truncate(postgresql.dialect(), t), postgresql.dialect()) == 'TRUNCATE TABLE s."order"'
    assert _sql(sqlbuild.truncate(mysql.dialect(), t), mysql.dialect()) == "TRUNCATE TABLE s.`order`"
    assert _sql(sqlbuild.truncate(sqlite.dialect(), t), sqlite.dialect()).startswith('DELETE FROM s."order"')
