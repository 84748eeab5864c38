"""Events → ES operations (pure: planning + resolution with a fake source database)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import orjson
import pytest

from adapter.dml import Dml
from adapter.errors import FatalError
from adapter.writers.base import DataSource, MappingHeader, WriterContext
from adapter.writers.es import parse_es_mapping
from adapter.writers.es.ops import DELETE, INDEX, UPSERT, Op, bulk_lines
from adapter.writers.es.plan import plan
from adapter.writers.es.sync import Resolver

CTX = WriterContext(data_sources={"ds": DataSource("ds", "mysql+pymysql://u@h/db", "db")})
USER_ROLE = ("select a.id as _id, a.name, a.role_id, b.role_name from user a "
             "left join role b on b.id = a.role_id")


def mapping(sql: str, **extra: Any) -> Any:
    body = {"_index": "idx", "_id": "_id", "sql": sql, **extra}
    if "pk" in extra:
        body.pop("_id")
    return parse_es_mapping(MappingHeader("m.yml", "/c/es7/m.yml", "ds", "example", "g1", None),
                            {"esMapping": body}, CTX, "es7")


def dml(table: str, kind: str, data: list[dict[str, Any]], old: list[dict[str, Any]] | None = None) -> Dml:
    return Dml("example", "g1", "db", table, kind, ("id",), tuple(data), tuple(old) if old is not None else None)


class FakeDb:
    """Records SQL; answers with canned rows chosen by a callback."""

    def __init__(self, answer: Any = None) -> None:
        self.sql: list[str] = []
        self.answer = answer or (lambda sql: [])

    def __call__(self, sql: str) -> list[dict[str, Any]]:
        self.sql.append(sql)
        return list(self.answer(sql))


def ops(m: Any, dmls: list[Dml], db: FakeDb | None = None, keys: tuple[str, ...] = ("id",)) -> list[Op]:
    items = plan(m, dmls, () if m.direct else keys)
    return Resolver(m, db).ops(items, () if m.direct else keys)


def brief(o: Op) -> tuple[Any, ...]:
    return (o.kind, o.id, o.routing, dict(o.doc) if o.doc is not None else None)


# ---------------------------------------------------------------- direct (single table)
SINGLE = "select a.id as _id, a.name as _name, a.role_id as _role_id, a.c_time as _c_time from user a"


def test_direct_insert_update_delete_without_queries() -> None:
    m = mapping(SINGLE)
    t = dt.datetime(2020, 1, 1, 10)
    out = ops(m, [
        dml("user", "INSERT", [{"id": 1, "name": "a", "role_id": 1, "c_time": t}]),
        dml("user", "UPDATE", [{"id": 1, "name": "b", "role_id": 1, "c_time": t}], [{"name": "a"}]),
        dml("user", "UPDATE", [{"id": 1, "name": "b", "role_id": 1, "c_time": t, "x": 2}], [{"x": 1}]),
        dml("user", "DELETE", [{"id": 1, "name": "b", "role_id": 1, "c_time": t}]),
    ], db=None)
    assert [brief(o) for o in out] == [
        (INDEX, "1", None, {"_name": "a", "_role_id": 1, "_c_time": t}),
        (UPSERT, "1", None, {"_name": "b", "_role_id": 1, "_c_time": t}),
        (DELETE, "1", None, None),
    ]


def test_upsert_flag_makes_inserts_upserts() -> None:
    m = mapping(SINGLE, upsert=True)
    out = ops(m, [dml("user", "INSERT", [{"id": 1, "name": "a", "role_id": 1, "c_time": None}])])
    assert out[0].kind == UPSERT


def test_primary_key_change_moves_the_document() -> None:
    m = mapping(SINGLE)
    out = ops(m, [dml("user", "UPDATE", [{"id": 2, "name": "a", "role_id": 1, "c_time": None}], [{"id": 1}])])
    assert [(o.kind, o.id) for o in out] == [(DELETE, "1"), (UPSERT, "2")]


def test_computed_id_is_deleted_from_the_before_image() -> None:
    m = mapping("select concat('oid_', t.id) as _id, t.serial_code as s from biz_order t")
    out = ops(m, [dml("biz_order", "DELETE", [{"id": 7, "serial_code": "x"}])])
    assert [(o.kind, o.id) for o in out] == [(DELETE, "oid_7")]


def test_values_python_cannot_render_are_computed_by_the_database() -> None:
    m = mapping("select concat(t.code, '-', t.id) as _id, t.code from biz_order t")
    db = FakeDb(lambda sql: [{"_id": "1.5-7", "code": 1.5}])
    out = ops(m, [dml("biz_order", "DELETE", [{"id": 7, "code": 1.5}])], db)
    assert [(o.kind, o.id) for o in out] == [(DELETE, "1.5-7")]
    assert "UNION ALL" not in db.sql[0] and "1.5 AS `code`" in db.sql[0]


def test_relations_route_children_and_move_them_between_parents() -> None:
    m = mapping("select concat('oid_', t.id) as _id, t.customer_id, t.id as order_id from biz_order t",
                relations={"customer_order": {"name": "order", "parent": "customer_id"}}, skips=["customer_id"])
    out = ops(m, [
        dml("biz_order", "INSERT", [{"id": 1, "customer_id": 10}]),
        dml("biz_order", "UPDATE", [{"id": 1, "customer_id": 11}], [{"customer_id": 10}]),
        dml("biz_order", "DELETE", [{"id": 1, "customer_id": 11}]),
    ])
    assert [brief(o) for o in out] == [
        (INDEX, "oid_1", "10", {"order_id": 1, "customer_order": {"name": "order", "parent": "10"}}),
        (DELETE, "oid_1", "10", None),
        (UPSERT, "oid_1", "11", {"order_id": 1, "customer_order": {"name": "order", "parent": "11"}}),
        (DELETE, "oid_1", "11", None),
    ]


def test_pk_mode_creates_and_deletes() -> None:
    m = mapping("select a.id, a.name from user a", pk="id")
    out = ops(m, [dml("user", "INSERT", [{"id": 1, "name": "a"}]), dml("user", "DELETE", [{"id": 1, "name": "a"}])])
    assert [(o.kind, o.id, o.pk) for o in out] == [(INDEX, None, 1), (DELETE, None, 1)]
    assert out[0].doc == {"id": 1, "name": "a"}  # the pk field stays in _source (it is searched on)


# ---------------------------------------------------------------- re-query (joins)
def user_rows(sql: str) -> list[dict[str, Any]]:
    rows = {1: {"_id": 1, "name": "a", "role_id": 5, "role_name": "r5", "__key0": 1},
            2: {"_id": 2, "name": "b", "role_id": 5, "role_name": "r5", "__key0": 2}}
    if "`role_id` IN (5)" in sql:
        return [rows[1], rows[2]]
    m = re.search(r"a\.`id` IN \(([^)]*)\)", sql)
    wanted = {int(v) for v in m[1].split(",")} if m else set()
    return [r for k, r in rows.items() if k in wanted]


def test_main_insert_requeries_by_key_in_one_query() -> None:
    m = mapping(USER_ROLE)
    db = FakeDb(user_rows)
    out = ops(m, [dml("user", "INSERT", [{"id": 1, "name": "a", "role_id": 5}]),
                  dml("user", "INSERT", [{"id": 2, "name": "b", "role_id": 5}])], db)
    assert len(db.sql) == 1 and "WHERE a.`id` IN (1, 2)" in db.sql[0]
    assert [brief(o) for o in out] == [(INDEX, "1", None, {"name": "a", "role_id": 5, "role_name": "r5"}),
                                       (INDEX, "2", None, {"name": "b", "role_id": 5, "role_name": "r5"})]


def test_joined_update_pushes_the_predicate_onto_the_referencing_column() -> None:
    m = mapping(USER_ROLE)
    db = FakeDb(user_rows)
    out = ops(m, [dml("role", "UPDATE", [{"id": 5, "role_name": "r5"}], [{"role_name": "old"}])], db)
    assert len(db.sql) == 1 and db.sql[0].endswith("WHERE a.`role_id` IN (5)")
    assert "SELECT * FROM (" not in db.sql[0]  # never canal's wrapped full scan
    assert [(o.kind, o.id) for o in out] == [(UPSERT, "1"), (UPSERT, "2")]


def test_joined_change_of_an_unmapped_column_queries_nothing() -> None:
    m = mapping(USER_ROLE)
    db = FakeDb(user_rows)
    assert ops(m, [dml("role", "UPDATE", [{"id": 5, "role_name": "r5", "note": "x"}], [{"note": "y"}])], db) == []
    assert db.sql == []


def test_deleting_a_joined_row_requeries_its_documents() -> None:
    m = mapping(USER_ROLE)
    db = FakeDb(lambda sql: [{"_id": 1, "name": "a", "role_id": 5, "role_name": None, "__key0": 1}])
    out = ops(m, [dml("role", "DELETE", [{"id": 5, "role_name": "r5"}])], db)
    assert db.sql[0].endswith("WHERE a.`role_id` IN (5)")
    assert out[0].doc == {"name": "a", "role_id": 5, "role_name": None}  # the joined fields are cleared


def test_joined_key_change_queries_old_and_new_values() -> None:
    m = mapping(USER_ROLE)
    db = FakeDb()
    ops(m, [dml("role", "UPDATE", [{"id": 6, "role_name": "r"}], [{"id": 5}])], db)
    assert db.sql[0].endswith("WHERE a.`role_id` IN (6, 5)")


def test_main_delete_and_pk_change_need_no_query_for_the_delete() -> None:
    m = mapping(USER_ROLE)
    db = FakeDb(user_rows)
    out = ops(m, [dml("user", "DELETE", [{"id": 9, "name": "z", "role_id": 5}]),
                  dml("user", "UPDATE", [{"id": 2, "name": "b", "role_id": 5}], [{"id": 3}])], db)
    assert [(o.kind, o.id) for o in out] == [(DELETE, "9"), (DELETE, "3"), (UPSERT, "2")]
    assert len(db.sql) == 1


def test_subquery_changes_use_the_inner_join_column() -> None:
    m = mapping("select a.id as _id, c.labels from user a left join (select l.user_id, "
                "group_concat(l.label separator ';') as labels from label l group by l.user_id) c "
                "on c.user_id = a.id", objFields={"labels": "array:;"})
    db = FakeDb()
    ops(m, [dml("label", "INSERT", [{"id": 100, "user_id": 3, "label": "x"}])], db)
    assert db.sql[0].endswith("WHERE a.`id` IN (3)")


def test_outer_where_deletes_documents_that_stop_matching() -> None:
    m = mapping("select a.id as _id, b.role_name from user a left join role b on b.id = a.role_id "
                "where a.deleted = 0")
    db = FakeDb()
    out = ops(m, [dml("user", "UPDATE", [{"id": 4, "role_id": 1, "deleted": 1}], [{"deleted": 0}])], db)
    assert [(o.kind, o.id) for o in out] == [(DELETE, "4")]


def test_replayed_batch_gives_the_same_operations() -> None:
    m = mapping(USER_ROLE)
    batch = [dml("user", "INSERT", [{"id": 1, "name": "a", "role_id": 5}]),
             dml("role", "UPDATE", [{"id": 5, "role_name": "r5"}], [{"role_name": "x"}])]
    assert [brief(o) for o in ops(m, batch, FakeDb(user_rows))] == [brief(o) for o in ops(m, batch, FakeDb(user_rows))]


def test_requery_mapping_without_database_is_fatal() -> None:
    m = mapping(USER_ROLE)
    with pytest.raises(FatalError, match="source database"):
        ops(m, [dml("user", "INSERT", [{"id": 1, "name": "a", "role_id": 5}])], None)


def test_other_tables_and_ddl_are_ignored() -> None:
    m = mapping(USER_ROLE)
    ddl = Dml("example", "g1", "db", "user", "ALTER", is_ddl=True, sql="alter table user add x int")
    assert plan(m, [dml("other", "INSERT", [{"id": 1}]), ddl], ("id",)) == []


# ---------------------------------------------------------------- bulk lines
def test_bulk_lines_per_kind() -> None:
    put = Op(UPSERT, "i", "1", "7", {"a": 1})
    head, body = bulk_lines(put, {"a": 1}, doc_type=None).splitlines()
    assert orjson.loads(head) == {"update": {"_index": "i", "_id": "1", "routing": "7", "retry_on_conflict": 3}}
    assert orjson.loads(body) == {"doc": {"a": 1}, "doc_as_upsert": True}
    (line,) = bulk_lines(Op(DELETE, "i", "1"), None, doc_type="_doc").splitlines()
    assert orjson.loads(line) == {"delete": {"_index": "i", "_id": "1", "_type": "_doc"}}
    head, body = bulk_lines(Op(INDEX, "i", "x"), {"d": Decimal("1")}.__class__(), doc_type=None).splitlines()
    assert orjson.loads(head) == {"index": {"_index": "i", "_id": "x"}} and orjson.loads(body) == {}
