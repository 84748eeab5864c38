"""sqlmap's generated SQL runs on MariaDB and means what it should (escaping, keyset, evaluation)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from adapter.sqlmap import SourceDb, etl_condition, parse_mapping_sql, result_key


def test_generated_queries_on_mariadb(mysql_conn: Any, mysql_db: str) -> None:
    with mysql_conn.cursor() as cur:
        cur.execute("CREATE TABLE t (k1 INT, k2 VARCHAR(20), v VARCHAR(50), f DOUBLE, d DATETIME(3), "
                    "PRIMARY KEY (k1, k2))")
        cur.execute("CREATE TABLE s (id INT PRIMARY KEY, t_k1 INT, tag VARCHAR(20))")
        rows = [(1, "a", "it's", 1.5, "2020-01-01 00:00:00.000"), (1, "b\\x", "100%", 2.25, None),
                (2, "a", "p:q", None, "2021-02-03 04:05:06.789")]
        cur.executemany("INSERT INTO t VALUES (%s, %s, %s, %s, %s)", rows)
        cur.execute("INSERT INTO s VALUES (1, 1, 'x'), (2, 1, 'y'), (3, 2, 'z')")
    db = SourceDb(f"mysql+pymysql://app:apppass@127.0.0.1:13306/{mysql_db}")
    m = parse_mapping_sql(
        "select concat(a.k1, '-', a.k2) as _id, a.v, date_format(a.d, '%Y') as y, c.tags "
        "from `t` a left join (select s.t_k1, group_concat(s.tag order by s.tag separator ';') as tags "
        "from s s group by s.t_k1) c on c.t_k1 = a.k1", default_database=mysql_db)
    assert db.primary_key(mysql_db, "t") == ("k1", "k2")
    keys = ["k1", "k2"]
    # keyset pages of 2 over a composite key with a backslash in it
    page1 = db.fetch(m.select_page(keys, None, 2))
    page2 = db.fetch(m.select_page(keys, result_key(page1[-1], 2), 2))
    assert [r["_id"] for r in page1 + page2] == ["1-a", "1-b\\x", "2-a"]
    assert page1[0]["tags"] == "x;y" and page1[0]["y"] == "2020"
    # by keys, with values that need escaping
    got = db.fetch(m.select_by_keys(keys, [(1, "b\\x"), (2, "a")]))
    assert sorted(r["v"] for r in got) == ["100%", "p:q"]
    # affected documents of a sub-query row
    sub = m.table("c")
    assert {r["_id"] for r in db.fetch(m.select_affected(sub, [{"t_k1": 2}], keys) or "")} == {"2-a"}
    # etlCondition with a quote in the param
    cond = etl_condition("where a.v >= {}", ["it's"])
    assert {r["v"] for r in db.fetch(m.select_page(keys, None, 10, cond))} == {"it's", "p:q"}
    assert db.fetch(m.count_sql())[0]["n"] == 3
    # MySQL evaluates what Python will not (float / datetime inside CONCAT)
    f = parse_mapping_sql("select concat(a.f, '|', a.d) as _id from t a")
    images: list[dict[str, Any]] = [{"f": 1.5, "d": dt.datetime(2020, 1, 1, 1, 2, 3)}, {"f": None, "d": None}]
    out = db.fetch(f.evaluate_sql([f.fields[0]], images))
    assert [r["_id"] for r in out] == ["1.5|2020-01-01 01:02:03", None]
    dec = parse_mapping_sql("select a.k1 + 0.5 as x from t a")
    assert db.fetch(dec.evaluate_sql([dec.fields[0]], [{"k1": 1}]))[0]["x"] == Decimal("1.5")
    db.close()


FUNCTIONS = [
    "ifnull(a.n,'x')", "date_format(a.d,'%Y-%m-%d %H:%i')", "from_unixtime(a.i)", "unix_timestamp(a.d)",
    "json_object('k', a.n, 'v', a.i)", "json_array(a.i, a.n)", "json_extract(a.j, '$.k')",
    "convert(a.n using utf8mb4)", "cast(a.i as char)", "cast(a.n as signed)", "substring_index(a.n, ',', 1)",
    "concat_ws(',', a.n, a.i)", "if(a.i > 1, 'y', 'n')", "case a.i when 1 then 'one' else 'other' end", "a.i div 2",
    "a.i % 3", "mod(a.i, 3)", "round(a.f, 1)", "truncate(a.f, 1)", "lpad(a.n, 5, '0')", "left(a.n, 2)",
    "char_length(a.n)", "locate('b', a.n)", "replace(a.n, 'a', 'b')", "trim(a.n)", "date(a.d)",
    "date_add(a.d, interval 1 day)", "datediff(a.d, '2020-01-01')", "timestampdiff(second, a.d, '2020-01-02')",
    "str_to_date('2020-01-02', '%Y-%m-%d')", "a.n regexp '^a'", "a.n like 'a%'", "a.i between 1 and 3",
    "greatest(a.i, 2)", "nullif(a.i, 1)", "hex(a.n)", "md5(a.n)", "concat(a.n, 1.5)", "a.i << 2", "a.i ^ 3",
    "cast(a.d as date)", "json_unquote(json_extract(a.j, '$.k'))", "a.i <=> null", "field(a.n, 'a', 'b')",
    "format(a.f, 2)", "extract(year from a.d)", "convert(a.i, char)", "strcmp(a.n, 'b')",
]
AGGREGATES = ["group_concat(a.n order by a.n separator '|')", "json_arrayagg(a.i)", "count(distinct a.i)",
              "sum(a.f)", "max(a.d)"]


def test_rendered_mapping_sql_means_the_same_on_mariadb(mysql_conn: Any) -> None:
    base = ("(select 'abc,d' as n, 2 as i, 1.25 as f, cast('2020-01-03 04:05:06' as datetime) as d, "
            "'{\"k\": \"v\"}' as j, 1 as id) a")
    differ = []
    with mysql_conn.cursor() as cur:
        for e in FUNCTIONS + AGGREGATES:
            group = " group by a.id" if e in AGGREGATES else ""
            cur.execute(f"select {e} as r from {base}{group}")
            want = cur.fetchall()
            m = parse_mapping_sql(f"select a.id as _id, {e} as r from t a{group}")
            rendered = m.select().replace("FROM t AS a", f"FROM {base}")
            cur.execute(rendered)
            got = tuple((row[1],) for row in cur.fetchall())
            if got != want:
                differ.append((e, want, got, rendered))
    assert differ == []
