"""sqlmap query builders and Python evaluation (pure; the SQL text is checked by re-parsing it)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlglot
from sqlglot import exp

from adapter.errors import ConfigError
from adapter.sqlmap import NotEvaluable, etl_condition, evaluate, literal, lower_row, parse_mapping_sql, result_key

SQL = """select a.id as _id, a.name, b.role_name, c.labels from `user` a
  left join role b on b.id = a.role_id
  left join (select u.user_id, group_concat(u.label separator ';') as labels from label u group by u.user_id) c
  on c.user_id = a.id
  group by a.id"""


def where_of(sql: str) -> str:
    tree = sqlglot.parse_one(sql, read="mysql")
    where = tree.args.get("where")
    return where.this.sql("mysql") if where is not None else ""


def test_select_by_keys_keeps_group_by_after_where_and_adds_key_columns() -> None:
    m = parse_mapping_sql(SQL)
    sql = m.select_by_keys(["id"], [(1,), (2,), (1,), (None,)])
    assert where_of(sql) == "a.`id` IN (1, 2)"
    assert sql.endswith("WHERE a.`id` IN (1, 2) GROUP BY a.id")
    assert "a.`id` AS `__key0`" in sql
    assert "AS `_id`" in sql and "AS `labels`" in sql


def test_composite_keys_use_or_of_ands() -> None:
    m = parse_mapping_sql("select a.k1 as _id, a.v from t a")
    sql = m.select_by_keys(["k1", "k2"], [(1, "x"), (2, "y")])
    assert where_of(sql) == "(a.`k1` = 1 AND a.`k2` = 'x') OR (a.`k1` = 2 AND a.`k2` = 'y')"


def test_affected_condition_is_pushed_onto_the_referencing_column() -> None:
    m = parse_mapping_sql(SQL)
    b = m.table("b")
    cond = m.affected_condition(b, [{"id": 5, "role_name": "x"}, {"id": 5}, {"id": 7}])
    assert cond is not None and cond.sql("mysql") == "a.`role_id` IN (5, 7)"
    c = m.table("c")
    cond = m.affected_condition(c, [{"user_id": 3, "label": "q"}])
    assert cond is not None and cond.sql("mysql") == "a.`id` IN (3)"
    assert m.affected_condition(b, [{"id": None}]) is None
    assert m.affected_condition(m.main, [{"id": 1}]) is None
    assert m.select_affected(b, [{"id": 5}], ["id"]) is not None


def test_keyset_page_and_condition() -> None:
    m = parse_mapping_sql("select a.id as _id, a.c_time from user a")
    cond = etl_condition("where a.c_time>={}", ["2020-01-01 00:00:00"])
    first = m.select_page(["id"], None, 100, cond)
    assert where_of(first) == "a.c_time >= '2020-01-01 00:00:00'"
    assert first.endswith("ORDER BY a.`id` LIMIT 100")
    nxt = m.select_page(["k1", "k2"], (3, "b"), 10)
    assert where_of(nxt) == "a.`k1` > 3 OR (a.`k1` = 3 AND a.`k2` > 'b')"


def test_etl_condition_rules() -> None:
    assert etl_condition("where a.x = {}", []) is None
    assert etl_condition(None, ["1"]) is None
    cond = etl_condition("a.x = {} and a.y = {}", ["it's", "2"])
    assert cond is not None and cond.sql("mysql") == "a.x = 'it''s' AND a.y = '2'"
    with pytest.raises(ConfigError, match="placeholders"):
        etl_condition("a.x = {}", ["1", "2"], source="f.yml")


def test_count_and_evaluate_sql() -> None:
    m = parse_mapping_sql("select concat('oid_', t.id) as _id, t.customer_id from biz_order t")
    assert m.count_sql().startswith("SELECT COUNT(*) AS `n` FROM (SELECT")
    f = m.field("_id")
    assert f is not None
    sql = m.evaluate_sql([f], [{"id": 1}, {"id": "x'y"}])
    assert "SELECT 0 AS `__n`, 1 AS `id` UNION ALL SELECT 1 AS `__n`, 'x''y' AS `id`" in sql
    assert sql.endswith("AS `t` ORDER BY `__n`")
    j = parse_mapping_sql("select a.id as _id, b.x from a a left join b b on b.id = a.id")
    with pytest.raises(ValueError):
        j.evaluate_sql([j.field("x")], [{"id": 1}])  # type: ignore[list-item]


def test_literals() -> None:
    def sql(v: object) -> str:
        return str(literal(v).sql("mysql"))

    assert sql(None) == "NULL"
    assert sql(True) == "1"
    assert sql(Decimal("1.50")) == "1.50"
    assert sql(b"\x00\xff") == "x'00ff'"
    assert sql("a\\b'c") == "'a\\\\b''c'"
    assert sql(dt.datetime(2020, 1, 2, 3, 4, 5, 6)) == "'2020-01-02 03:04:05.000006'"
    assert sql(dt.date(2020, 1, 2)) == "'2020-01-02'"
    assert sql(dt.timedelta(hours=-1, minutes=-2)) == "'-01:02:00'"


def test_result_key() -> None:
    assert result_key({"__key0": 1, "__key1": "a", "x": 2}, 2) == (1, "a")


def _expr(sql: str) -> exp.Expr:
    return sqlglot.parse_one(f"select {sql} from t a", read="mysql").expressions[0]


@pytest.mark.parametrize(
    ("sql", "row", "expected"),
    [
        ("a.id", {"ID": 3}, 3),
        ("concat('oid_', a.id)", {"id": 3}, "oid_3"),
        ("concat('x', a.n)", {"n": None}, None),
        ("concat_ws('-', a.x, a.n, a.y)", {"x": "a", "n": None, "y": Decimal("1.50")}, "a-1.50"),
        ("ifnull(a.n, 'z')", {"n": None}, "z"),
        ("coalesce(a.n, a.x)", {"n": None, "x": 1}, 1),
        ("upper(a.x)", {"x": "ab"}, "AB"),
        ("a.x * 2 + 1", {"x": 4}, 9),
        ("-a.x", {"x": 4}, -4),
        ("concat(a.d, '')", {"d": dt.date(2020, 1, 2)}, "2020-01-02"),
        ("null", {}, None),
    ],
)
def test_evaluate(sql: str, row: dict[str, object], expected: object) -> None:
    assert evaluate(_expr(sql), lower_row(row), "a") == expected


@pytest.mark.parametrize(
    ("sql", "row"),
    [
        ("b.id", {"id": 1}),
        ("a.missing", {"id": 1}),
        ("concat(a.f, '')", {"f": 1.5}),
        ("concat(a.t, '')", {"t": dt.datetime(2020, 1, 1)}),
        ("a.x + 1", {"x": Decimal("1.5")}),
        ("date_format(a.t, '%Y')", {"t": dt.datetime(2020, 1, 1)}),
    ],
)
def test_not_evaluable(sql: str, row: dict[str, object]) -> None:
    with pytest.raises(NotEvaluable):
        evaluate(_expr(sql), lower_row(row), "a")


def test_key_predicate_is_repeated_inside_a_grouped_subquery() -> None:
    m = parse_mapping_sql("select a.id as _id, c.labels from user a left join (select l.user_id, "
                          "group_concat(l.label) as labels from label l where l.x = 1 or l.y = 2 group by l.user_id) c "
                          "on c.user_id = a.id")
    sql = m.select_by_keys(["id"], [(1,), (2,)])
    assert "WHERE (l.x = 1 OR l.y = 2) AND l.`user_id` IN (1, 2) GROUP BY l.user_id" in sql
    assert sql.endswith("WHERE a.`id` IN (1, 2)")
    assert "l.`user_id` IN" not in m.select_page(["id"], (5,), 10)  # keyset pages are left alone
