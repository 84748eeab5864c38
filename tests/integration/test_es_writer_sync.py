"""ES writers against the ES-API server and MariaDB: the compat files' scenarios end equal to the mapping SQL.

Each test changes source tables, hands the writer the Dmls canal would deliver, refreshes
explicitly and compares every document with what the mapping SQL yields for the source.
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import services
from es_support import Source, assert_synced, context, load, make_writer, write

from adapter.writers.es import Es6Writer, Es7Writer, Es8Writer

COMPAT = pathlib.Path(services.COMPAT) / "adapter-conf"


def compat_body(rel: str, index: str) -> dict[str, Any]:
    path = COMPAT / rel
    if not path.exists():
        pytest.skip("compat files not present")
    body = dict(yaml.safe_load(path.read_text())["esMapping"])
    body["_index"] = index
    return body


@pytest.fixture
def src(mysql_conn: Any, mysql_db: str) -> Iterator[Source]:
    s = Source(mysql_conn, mysql_db)
    for t in ("user", "role", "label", "customer", "biz_order"):
        s.execute(f"DROP TABLE IF EXISTS `{t}`")
    s.execute("CREATE TABLE role (id INT PRIMARY KEY, role_name VARCHAR(50), note VARCHAR(50))")
    s.execute("CREATE TABLE user (id INT PRIMARY KEY, name VARCHAR(50), role_id INT, c_time DATETIME, "
              "flag TINYINT(1), tags VARCHAR(100), attrs JSON, price DECIMAL(10,2), pic BLOB, KEY (role_id))")
    s.execute("CREATE TABLE label (id INT PRIMARY KEY AUTO_INCREMENT, user_id INT, label VARCHAR(20), KEY (user_id))")
    s.execute("CREATE TABLE customer (id INT PRIMARY KEY, name VARCHAR(50), email VARCHAR(50), c_time DATETIME)")
    s.execute("CREATE TABLE biz_order (id INT PRIMARY KEY, customer_id INT, serial_code VARCHAR(20), "
              "c_time DATETIME)")
    yield s


def test_compat_user_role_join(src: Source, mysql_db: str, es_url: str, es_index_prefix: str) -> None:
    ctx = context(mysql_db)
    w = make_writer(Es7Writer, es_url, ctx)
    m = load(Es7Writer, ctx, compat_body("es7/mytest_user.yml", es_index_prefix + "user"), "mytest_user.yml")
    write(w, m, src.insert("role", "(1,'admin',''),(2,'dev','')", "1=1"))
    write(w, m, src.insert("user", "(1,'a',1,'2020-01-01 10:00:00',1,'x;y',NULL,1.50,NULL),"
                                   "(2,'b',2,'2020-01-02 00:00:00',0,NULL,NULL,NULL,NULL),"
                                   "(3,'c',NULL,NULL,NULL,NULL,NULL,NULL,NULL)", "1=1"))
    assert_synced(w, m)
    # joined table: update, irrelevant update, key-changing update, delete (fields cleared)
    write(w, m, src.update("role", "role_name='boss'", "id=1"))
    write(w, m, src.update("role", "note='n'", "id=2"))
    assert_synced(w, m)
    write(w, m, src.delete("role", "id=2"))
    assert_synced(w, m)
    write(w, m, src.update("role", "id=3", "id=1", after_where="id=3"))
    assert_synced(w, m)
    # main table: foreign-key change, primary-key change (moves the document), delete
    write(w, m, src.update("user", "role_id=3", "id=2"))
    write(w, m, src.update("user", "id=20", "id=2", after_where="id=20"))
    assert_synced(w, m)
    write(w, m, src.delete("user", "id=3"))
    assert_synced(w, m)
    assert w.count(m) == 2
    w.close()


def test_replayed_batch_converges(src: Source, mysql_db: str, es_url: str, es_index_prefix: str) -> None:
    ctx = context(mysql_db)
    w = make_writer(Es8Writer, es_url, ctx)
    m = load(Es8Writer, ctx, compat_body("es7/mytest_user.yml", es_index_prefix + "replay"))
    batch = [src.insert("role", "(1,'r','')", "id=1"),
             src.insert("user", "(1,'a',1,NULL,NULL,NULL,NULL,NULL,NULL),(2,'b',1,NULL,NULL,NULL,NULL,NULL,NULL)",
                        "1=1"),
             src.update("user", "name='z'", "id=2"),
             src.delete("user", "id=1")]
    write(w, m, *batch)
    write(w, m, *batch)  # at-least-once delivery: the same batch again
    assert_synced(w, m)
    w.close()


def test_subquery_group_concat_and_obj_fields(src: Source, mysql_db: str, es_url: str, es_index_prefix: str) -> None:
    ctx = context(mysql_db)
    w = make_writer(Es7Writer, es_url, ctx)
    index = es_index_prefix + "labels"
    w.client.call("PUT", f"/{index}", {"mappings": {"properties": {
        "flag": {"type": "boolean"}, "c_time": {"type": "date"}, "attrs": {"type": "object"},
        "price": {"type": "double"}, "pic": {"type": "binary"}, "labels": {"type": "keyword"},
        "tags": {"type": "keyword"}}}})
    m = load(Es7Writer, ctx, {
        "_index": index, "_id": "_id", "objFields": {"labels": "array:;", "tags": "array:;", "attrs": "json"},
        "sql": "select a.id as _id, a.name, a.flag, a.c_time, a.attrs, a.price, a.pic, a.tags, c.labels "
               "from `user` a left join (select l.user_id, group_concat(l.label order by l.label separator ';') "
               "as labels from `label` l group by l.user_id) c on c.user_id = a.id"})
    write(w, m, src.insert("user", "(1,'a',NULL,'2020-01-01 10:00:00',1,'p;q','{\"k\": [1, 2]}',2.50,x'00ff'),"
                                   "(2,'b',NULL,NULL,0,NULL,NULL,NULL,NULL)", "1=1"))
    write(w, m, src.insert("label", "(NULL,1,'red'),(NULL,1,'blue'),(NULL,2,'x')", "1=1"))
    assert_synced(w, m)
    docs = {k: v for k, (_, v) in __import__("es_support").actual(w, m).items()}
    assert docs["1"]["labels"] == ["blue", "red"] and docs["1"]["attrs"] == {"k": [1, 2]}
    assert docs["1"]["flag"] is True and docs["1"]["c_time"] == "2020-01-01T10:00:00+08:00"
    assert docs["1"]["pic"] == "AP8=" and docs["1"]["tags"] == ["p", "q"]
    write(w, m, src.update("label", "user_id=2", "label='red'"))
    write(w, m, src.delete("label", "label='x'"))
    assert_synced(w, m)
    write(w, m, src.delete("label", "user_id=1"))  # the last joined row goes: the field is cleared
    assert_synced(w, m)
    w.close()


def test_parent_child_relations(src: Source, mysql_db: str, es_url: str, es_index_prefix: str) -> None:
    ctx = context(mysql_db)
    w = make_writer(Es7Writer, es_url, ctx)
    index = es_index_prefix + "customer"
    w.client.call("PUT", f"/{index}", {"mappings": {"properties": {
        "id": {"type": "long"}, "name": {"type": "text"}, "email": {"type": "text"},
        "order_id": {"type": "long"}, "order_serial": {"type": "text"}, "order_time": {"type": "date"},
        "customer_order": {"type": "join", "relations": {"customer": "order"}}}}})
    cust = load(Es7Writer, ctx, compat_body("es7/customer.yml", index), "customer.yml")
    order = load(Es7Writer, ctx, compat_body("es7/biz_order.yml", index), "biz_order.yml")
    write(w, cust, src.insert("customer", "(1,'c1','a@x',NOW()),(2,'c2','b@x',NOW())", "1=1"))
    write(w, order, src.insert("biz_order", "(10,1,'s10','2021-05-06 07:08:09'),(11,1,'s11',NOW())", "1=1"))
    assert_synced(w, cust)
    assert_synced(w, order)
    assert all(r == "1" for r, _ in __import__("es_support").actual(w, order).values())
    write(w, order, src.update("biz_order", "customer_id=2", "id=11"))  # moves to another parent (routing)
    write(w, order, src.update("biz_order", "serial_code='S10'", "id=10"))
    assert_synced(w, order)
    write(w, order, src.delete("biz_order", "id=10"))  # computed _id deleted, with its routing
    write(w, cust, src.update("customer", "email='new@x'", "id=1"))
    assert_synced(w, order)
    assert_synced(w, cust)
    assert w.count(order) == 1 and w.count(cust) == 2
    w.close()


def test_es6_single_table_file(src: Source, mysql_db: str, es_url: str, es_index_prefix: str) -> None:
    ctx = context(mysql_db)
    w = make_writer(Es6Writer, es_url, ctx)
    m = load(Es6Writer, ctx, compat_body("es6/mytest_user_single.yml", es_index_prefix + "single"))
    assert m.direct and m.type == "_doc"
    write(w, m, src.insert("user", "(1,'a',1,'2020-01-01 10:00:00',NULL,NULL,NULL,NULL,NULL),"
                                   "(2,'b',2,NULL,NULL,NULL,NULL,NULL,NULL)", "1=1"))
    write(w, m, src.update("user", "name='aa'", "id=1"), src.update("user", "id=3", "id=2", after_where="id=3"))
    write(w, m, src.delete("user", "id=1"))
    assert_synced(w, m)
    w.close()


def test_pk_mode_creates_updates_and_deletes(src: Source, mysql_db: str, es_url: str, es_index_prefix: str) -> None:
    ctx = context(mysql_db)
    w = make_writer(Es7Writer, es_url, ctx)
    m = load(Es7Writer, ctx, {"_index": es_index_prefix + "pk", "pk": "id",
                              "sql": "select a.id, a.name, b.role_name from user a "
                                     "left join role b on b.id = a.role_id"})
    write(w, m, src.insert("role", "(1,'r1','')", "1=1"))
    write(w, m, src.insert("user", "(1,'a',1,NULL,NULL,NULL,NULL,NULL,NULL),(2,'b',1,NULL,NULL,NULL,NULL,NULL,NULL)",
                           "1=1"))
    write(w, m, src.update("role", "role_name='r1b'", "id=1"), src.delete("user", "id=2"))
    assert_synced(w, m)
    w.close()


def test_etl_and_count(src: Source, mysql_db: str, es_url: str, es_index_prefix: str) -> None:
    ctx = context(mysql_db)
    w = make_writer(Es7Writer, es_url, ctx)
    m = load(Es7Writer, ctx, {**compat_body("es7/mytest_user.yml", es_index_prefix + "etl"), "commitBatch": 7})
    src.execute("INSERT INTO role VALUES (1,'r','')")
    values = ",".join(f"({i},'n{i}',{1 if i % 2 else 'NULL'},'2020-01-{1 + i % 28:02d} 00:00:00',NULL,NULL,NULL,"
                      "NULL,NULL)" for i in range(1, 51))
    src.execute(f"INSERT INTO user VALUES {values}")
    progress: list[int] = []
    result = w.etl(m, [], progress.append)  # type: ignore[attr-defined]
    assert result.succeeded and result.rows == 50 and progress[-1] == 50
    assert_synced(w, m)
    w.client.refresh(m.index)
    assert w.count(m) == 50
    assert w.count_info(m) == {"esIndex": m.index, "count": 50}  # type: ignore[attr-defined]
    # etlCondition with params: only rows from the 15th on are (re)loaded
    partial = w.etl(m, ["2020-01-15 00:00:00"], lambda n: None)  # type: ignore[attr-defined]
    assert partial.succeeded and 0 < partial.rows < 50
    w.close()


def test_truncate_of_the_main_table(src: Source, mysql_db: str, es_url: str, es_index_prefix: str) -> None:
    ctx = context(mysql_db)
    w = make_writer(Es7Writer, es_url, ctx)
    m = load(Es7Writer, ctx, compat_body("es7/mytest_user.yml", es_index_prefix + "trunc"))
    before = src.insert("user", "(1,'a',NULL,NULL,NULL,NULL,NULL,NULL,NULL)", "1=1")
    src.execute("TRUNCATE TABLE user")
    after = src.insert("user", "(2,'b',NULL,NULL,NULL,NULL,NULL,NULL,NULL)", "1=1")
    write(w, m, before, src.dml("user", "TRUNCATE", []), after)  # one batch: insert, truncate, insert
    assert_synced(w, m)
    assert set(__import__("es_support").actual(w, m)) == {"2"}
    w.close()
