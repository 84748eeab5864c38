"""Redis writer: Dml → key operations (pure planning; read-backs through a fake fetch)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from adapter.dml import DELETE, INSERT, UPDATE, Dml
from adapter.errors import FatalError
from adapter.writers.base import DataSource, MappingHeader, WriterContext
from adapter.writers.redis import RedisWriter
from adapter.writers.redis.commands import Delete, Patch, Put
from adapter.writers.redis.plan import Planner

CTX = WriterContext(data_sources={"ds": DataSource("ds", "mysql+pymysql://u:p@h:1/shop", "shop")})


def mapping(**body: Any) -> Any:
    h = MappingHeader("t.yml", "/conf/redis/t.yml", "ds", "example", None, None)
    return RedisWriter.parse_mapping(h, {"redisMapping": body}, CTX)


def dml(type_: str, rows: list[dict[str, Any]], old: list[dict[str, Any]] | None = None, table: str = "user",
        pk: tuple[str, ...] = ("id",)) -> Dml:
    return Dml("example", None, "shop", table, type_, pk_names=pk, data=tuple(rows),
               old=tuple(old) if old is not None else None)


class FakeFetch:
    """The source seam: canned results in order, every SQL recorded."""

    def __init__(self, *results: list[dict[str, Any]], pk: tuple[str, ...] = ("id",)) -> None:
        self.results = list(results)
        self.sql: list[str] = []
        self.pk = pk

    def fetch(self, sql: str) -> list[dict[str, Any]]:
        self.sql.append(sql)
        return self.results.pop(0) if self.results else []

    def primary_key(self, database: str, table: str) -> tuple[str, ...]:
        return self.pk


SINGLE = {"sql": "select a.id, a.name, a.price, concat(a.name, '#', a.id) as label from user a", "key": "u:{id}"}
ROW = {"id": 1, "name": "ann", "price": Decimal("2.50")}


def test_direct_insert_update_delete_need_no_database() -> None:
    m = mapping(**SINGLE)
    ops = Planner(m, None).plan([
        dml(INSERT, [ROW]),
        dml(UPDATE, [{**ROW, "price": Decimal("3")}], [{"price": Decimal("2.50")}]),
        dml(UPDATE, [{**ROW, "name": "bo"}], [{"name": "ann"}]),
        dml(UPDATE, [{**ROW, "other": 5}], [{"other": 4}]),  # column outside the mapping: nothing to do
        dml(DELETE, [ROW]),
    ])  # fmt: skip
    full = {"id": 1, "name": "ann", "price": Decimal("2.50"), "label": "ann#1"}
    assert ops == [
        Put("u:1", full),
        Patch("u:1", {"price": Decimal("3")}, {**full, "price": Decimal("3")}),
        Patch("u:1", {"name": "bo", "label": "bo#1"}, {**full, "name": "bo", "label": "bo#1"}),
        Delete("u:1"),
    ]


def test_key_change_deletes_old_key_and_writes_new_whole() -> None:
    m = mapping(**SINGLE, prefix="p:")
    ops = Planner(m, None).plan([dml(UPDATE, [{**ROW, "id": 2}], [{"id": 1}])])
    assert ops == [Delete("p:u:1"), Put("p:u:2", {"id": 2, "name": "ann", "price": Decimal("2.50"),
                                                  "label": "ann#2"})]


def test_json_update_rewrites_whole_value() -> None:
    m = mapping(**SINGLE, type="json")
    [op] = Planner(m, None).plan([dml(UPDATE, [{**ROW, "price": 4}], [{"price": 3}])])
    assert isinstance(op, Put) and op.values["price"] == 4


def test_null_key_rows_are_skipped() -> None:
    m = mapping(**SINGLE)
    assert Planner(m, None).plan([dml(INSERT, [{**ROW, "id": None}]), dml(DELETE, [{**ROW, "id": None}])]) == []
    # a key that becomes NULL: the old key goes
    assert Planner(m, None).plan([dml(UPDATE, [{**ROW, "id": None}], [{"id": 1}])]) == [Delete("u:1")]


JOIN = {"sql": "select a.id, a.name, b.name as role from user a left join role b on b.id = a.role_id",
        "key": "u:{id}"}


def test_main_insert_with_join_reads_back_by_primary_key_in_one_query() -> None:
    m = mapping(**JOIN)
    got = [{"id": 1, "name": "ann", "role": "admin", "__key0": 1}, {"id": 2, "name": "bo", "role": None,
                                                                       "__key0": 2}]
    fetch = FakeFetch(got)
    ops = Planner(m, fetch).plan([dml(INSERT, [{"id": 1, "name": "ann", "role_id": 7},
                                               {"id": 2, "name": "bo", "role_id": None}]),
                                  dml(INSERT, [{"id": 3, "name": "cy", "role_id": 7}])])
    assert len(fetch.sql) == 1 and "IN (1, 2, 3)" in fetch.sql[0]
    assert ops == [Put("u:1", got[0]), Put("u:2", got[1]), Delete("u:3")]  # row 3 is gone: its key too


def test_main_update_of_main_only_field_patches_without_reading() -> None:
    m = mapping(**JOIN)
    fetch = FakeFetch()
    ops = Planner(m, fetch).plan([dml(UPDATE, [{"id": 1, "name": "x", "role_id": 7}], [{"name": "ann"}])])
    assert ops == [Patch("u:1", {"name": "x"}, None)] and fetch.sql == []


def test_main_update_of_join_column_reads_back_the_joined_fields() -> None:
    m = mapping(**JOIN)
    row = {"id": 1, "name": "ann", "role": "ops", "__key0": 1}
    fetch = FakeFetch([row])
    ops = Planner(m, fetch).plan([dml(UPDATE, [{"id": 1, "name": "ann", "role_id": 8}], [{"role_id": 7}])])
    assert ops == [Patch("u:1", {"role": "ops"}, row)]


def test_joined_table_change_reads_back_affected_documents_once() -> None:
    m = mapping(**JOIN)
    docs = [{"id": 1, "name": "ann", "role": "root"}, {"id": 5, "name": "ed", "role": "root"}]
    fetch = FakeFetch(docs)
    ops = Planner(m, fetch).plan([
        dml(UPDATE, [{"id": 7, "name": "root"}], [{"name": "admin"}], table="role"),
        dml(UPDATE, [{"id": 8, "name": "x", "note": "n"}], [{"note": "m"}], table="role"),  # unused column
        dml(DELETE, [{"id": 9, "name": "gone"}], table="role"),
    ])  # fmt: skip
    assert len(fetch.sql) == 1 and "a.`role_id` IN (7, 9)" in fetch.sql[0]
    assert ops == [Patch("u:1", {"role": "root"}, docs[0]), Patch("u:5", {"role": "root"}, docs[1])]


def test_filtered_mapping_reads_back_and_deletes_rows_leaving_the_filter() -> None:
    m = mapping(sql="select a.id, a.name from user a where a.active = 1", key="u:{id}")
    assert m.filtered and not m.direct
    fetch = FakeFetch([])
    ops = Planner(m, fetch).plan([dml(UPDATE, [{"id": 1, "name": "a", "active": 0}], [{"active": 1}])])
    assert ops == [Delete("u:1")] and "`active` = 1" in fetch.sql[0].replace("a.active", "`active`")


def test_computed_key_uses_the_database_when_python_cannot() -> None:
    m = mapping(sql="select date_format(a.day, '%Y') as y, a.id, a.n from user a", key="y:{y}:{id}")
    fetch = FakeFetch([{"y": "2024", "id": 1}])
    ops = Planner(m, fetch).plan([dml(DELETE, [{"id": 1, "day": "2024-01-01", "n": 1}])])
    assert ops == [Delete("y:2024:1")] and "UNION ALL" not in fetch.sql[0] and "date_format" in fetch.sql[0].lower()


def test_reading_back_without_a_source_is_fatal() -> None:
    with pytest.raises(FatalError, match="needs the source database"):
        Planner(mapping(**JOIN), None).plan([dml(INSERT, [{"id": 1, "name": "a", "role_id": 1}])])


def test_ddl_and_other_types_are_ignored() -> None:
    d = Dml("example", None, "shop", "user", "ALTER", is_ddl=True, sql="alter table user add x int")
    assert Planner(mapping(**SINGLE), None).plan([d]) == []


def test_joined_fan_out_is_read_in_keyset_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    from adapter.writers.redis import plan as plan_mod

    monkeypatch.setattr(plan_mod, "FANOUT_PAGE", 2)
    m = mapping(**JOIN)
    page1 = [{"id": 1, "name": "a", "role": "r", "__key0": 1}, {"id": 2, "name": "b", "role": "r", "__key0": 2}]
    page2 = [{"id": 3, "name": "c", "role": "r", "__key0": 3}]
    fetch = FakeFetch(page1, page2)
    ops = list(Planner(m, fetch).iter_plan([dml(UPDATE, [{"id": 7, "name": "r"}], [{"name": "q"}], table="role")]))
    assert [op.key for op in ops] == ["u:1", "u:2", "u:3"]
    assert len(fetch.sql) == 2 and "LIMIT 2" in fetch.sql[0] and "a.`id` > 2" in fetch.sql[1]
