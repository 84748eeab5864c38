"""sqlmap parser: accepted constructs, model contents, and refusals (ConfigError naming file + construct)."""

from __future__ import annotations

import pytest
import services

from adapter.errors import ConfigError
from adapter.sqlmap import ColumnRef, JoinKey, parse_mapping_sql

USER_ROLE = """select a.id as _id, a.name, a.role_id, b.role_name,
        a.c_time from user a
        left join role b on b.id=a.role_id"""

SUBQ = """select a.id as _id, a.name, c.labels from user a
  left join (select u.user_id as uid, group_concat(u.label order by u.label separator ';') as labels
             from label u where u.deleted = 0 group by u.user_id) c on c.uid = a.id"""


def test_main_and_left_join_model() -> None:
    m = parse_mapping_sql(USER_ROLE, default_database="MyTest")
    assert m.main.alias == "a" and m.main.table == "user" and m.main.is_main
    assert m.source_tables() == {("mytest", "user"), ("mytest", "role")}
    b = m.table("b")
    assert b.join_keys == (JoinKey(column="id", other=ColumnRef("a", "role_id"), output="id"),)
    assert b.columns == {"id", "role_name"}
    assert m.main.columns == {"id", "name", "role_id", "c_time"}
    assert [f.name for f in m.fields] == ["_id", "name", "role_id", "role_name", "c_time"]
    assert m.field("_id") is not None and m.field("_id").simple  # type: ignore[union-attr]
    assert m.tables_for("mytest", "ROLE") == (b,)
    assert [f.name for f in m.fields_of("b")] == ["role_name"]


def test_backticks_are_unquoted() -> None:
    m = parse_mapping_sql("select `a`.`id` as `_id`, a.`name` from `mytest`.`user` `a`")
    assert m.source_tables() == {("mytest", "user")}
    assert m.main.database == "mytest" and m.main.table == "user"
    assert [f.name for f in m.fields] == ["_id", "name"]
    assert m.field("name").column == ColumnRef("a", "name")  # type: ignore[union-attr]


def test_table_without_alias_and_unqualified_columns() -> None:
    m = parse_mapping_sql("select id as _id, name from user", default_database="db")
    assert m.main.alias == "user"
    assert m.field("name").columns == {ColumnRef("user", "name")}  # type: ignore[union-attr]


def test_subquery_join() -> None:
    m = parse_mapping_sql(SUBQ, default_database="db")
    c = m.table("c")
    assert c.table == "label" and c.subquery is not None
    assert c.join_keys == (JoinKey(column="user_id", other=ColumnRef("a", "id"), output="uid"),)
    assert c.columns == {"user_id", "label", "deleted"}
    assert m.source_tables() == {("db", "user"), ("db", "label")}
    labels = m.field("labels")
    assert labels is not None and labels.simple and not labels.evaluable  # sub-query output: needs the DB


def test_functions_and_evaluability() -> None:
    sql = """select concat('oid_', t.id) as _id, t.customer_id, t.id as order_id,
        case when t.state = 1 then 'on' else 'off' end as state,
        group_concat(x.tag separator ',') as tags
        from biz_order t left join tag x on x.order_id = t.id group by t.id"""
    m = parse_mapping_sql(sql)
    f = {x.name: x for x in m.fields}
    assert f["_id"].evaluable and not f["_id"].simple
    assert not f["state"].evaluable
    assert f["tags"].columns == {ColumnRef("x", "tag")}
    assert m.main_only(f["_id"]) and not m.main_only(f["tags"])


def test_multi_level_join_and_filters_in_on() -> None:
    sql = """select a.id as _id, b.name as bn, c.name as cn from a a
             left join b b on b.id = a.b_id and b.kind = 'x'
             left join c c on c.id = b.c_id"""
    m = parse_mapping_sql(sql)
    assert m.table("c").join_keys[0].other == ColumnRef("b", "c_id")
    assert m.table("b").columns == {"id", "name", "kind", "c_id"}


def test_composite_join_keys() -> None:
    m = parse_mapping_sql("select a.id as _id, b.v from a a left join b b on b.x = a.x and a.y = b.y")
    keys = m.table("b").join_keys
    assert [(k.column, str(k.other)) for k in keys] == [("x", "a.x"), ("y", "a.y")]


def test_outer_where_and_group_by_on_main_table_are_allowed() -> None:
    m = parse_mapping_sql("select a.id as _id, group_concat(b.n) as ns from a a left join b b on b.a_id = a.id "
                          "where a.deleted = 0 group by a.id")
    assert m.main.columns >= {"deleted", "id"}


def test_self_join() -> None:
    m = parse_mapping_sql("select a.id as _id, p.name as parent from user a left join user p on p.id = a.parent_id",
                          default_database="d")
    assert [t.alias for t in m.tables_for("d", "user")] == ["a", "p"]


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("select * from user a", "SELECT *"),
        ("select a.* from user a", "SELECT *"),
        ("select a.id from user a; select 1", "exactly one"),
        ("update user set x=1", "plain SELECT"),
        ("select a.id from user a union select b.id from b b", "plain SELECT"),
        ("select distinct a.id from user a", "DISTINCT"),
        ("select a.id from user a order by a.id", "ORDER BY"),
        ("select a.id from user a limit 5", "LIMIT"),
        ("select a.id from user a group by a.id having count(*) > 1", "HAVING"),
        ("select a.id from (select id from user) a", "main (FROM) table"),
        ("select a.id, b.x from user a join b b on b.id = a.id", "only LEFT JOIN"),
        ("select a.id, b.x from user a inner join b b on b.id = a.id", "only LEFT JOIN"),
        ("select a.id, b.x from user a right join b b on b.id = a.id", "only LEFT JOIN"),
        ("select a.id, b.x from user a, b b", "only LEFT JOIN"),
        ("select a.id, b.x from user a left join b b using (id)", "USING"),
        ("select a.id, b.x from user a left join b b on b.id > a.id", "equalities"),
        ("select a.id, b.x from user a left join b b on b.id = a.id or b.k = a.k", "equalities"),
        ("select a.id, b.x from user a left join b b on b.k = 1", "at least one equality"),
        ("select a.id, b.x from user a left join b b on b.id = c.id left join c c on c.id = a.id", "later"),
        ("select a.id, z.x from user a", "unknown table alias"),
        ("select id, b.x from user a left join b b on b.id = a.id", "qualify column"),
        ("select a.id, a.id from user a", "twice"),
        ("select a.id, concat(a.x, 'y') from user a", "alias"),
        ("select a.id, (select max(x) from t) as m from user a", "sub-queries are not supported"),
        ("select a.id, row_number() over (order by a.id) as r from user a", "window"),
        ("select a.id, c.n from user a left join (select x.id, y.n from x x left join y y on y.id = x.id) c"
         " on c.id = a.id", "single table"),
        ("select a.id, c.n from user a left join (select x.id, x.n from x x limit 3) c on c.id = a.id", "LIMIT"),
        ("select a.id, c.n from user a left join (select x.id + 1 as k, x.n from x x) c on c.k = a.id",
         "plain column"),
        ("select a.id, c.zz from user a left join (select x.id, x.n from x x) c on c.id = a.id",
         "not an output"),
        ("select a.id, b.x from user a left join b b on b.id = a.id where b.x = 1", "main-table columns"),
        ("select a.id, count(b.x) as n from user a left join b b on b.id = a.id", "GROUP BY"),
        ("select a.id, b.x from user a left join b b on b.id = a.id left join b b on b.id = a.id", "twice"),
        ("select from where", "parse"),
        ("", "non-empty"),
    ],
)
def test_refusals_name_the_file_and_the_construct(sql: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_mapping_sql(sql, source="conf/es7/x.yml", key="esMapping.sql")
    msg = str(info.value)
    assert "conf/es7/x.yml" in msg and "esMapping.sql" in msg
    assert fragment.lower() in msg.lower(), msg
    assert info.value.source == "conf/es7/x.yml"


def test_compat_files_parse() -> None:
    import pathlib

    import yaml

    root = pathlib.Path(services.COMPAT) / "adapter-conf"
    if not root.exists():
        pytest.skip("compat files not present")
    for path in sorted(root.glob("es*/*.yml")):
        raw = yaml.safe_load(path.read_text())
        m = parse_mapping_sql(raw["esMapping"]["sql"], source=str(path), default_database="mytest")
        assert m.source_tables()
