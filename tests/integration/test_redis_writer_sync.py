"""Redis writer on the real Redis with MariaDB sources: a mixed workload (inserts, updates, joined-table
changes, key changes, deletes, a replayed tail) leaves exactly the keys and values the mapping SQL yields."""

from __future__ import annotations

import datetime as dt
import pathlib
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from redis_support import Source, actual_state, expected_state, load, make_writer, redis_client, write

from adapter.dml import TRUNCATE, Dml
from adapter.writers.base import Routed
from adapter.writers.redis import RedisMapping, RedisWriter


@pytest.fixture
def src(mysql_conn: Any, mysql_db: str) -> Iterator[Source]:
    s = Source(mysql_conn, mysql_db)
    for t in ("user", "role"):
        s.execute(f"DROP TABLE IF EXISTS `{t}`")
    s.execute("CREATE TABLE role (id INT PRIMARY KEY, name VARCHAR(50), note VARCHAR(50))")
    s.execute("CREATE TABLE user (id INT PRIMARY KEY, email VARCHAR(100), name VARCHAR(50), role_id INT, "
              "price DECIMAL(10,2), born DATE, seen DATETIME(6), wake TIME, avatar VARBINARY(16), flags BIT(3), "
              "active TINYINT, meta JSON)")
    yield s


@pytest.fixture
def writer(mysql_db: str) -> Iterator[RedisWriter]:
    w = make_writer(mysql_db)
    yield w
    w.close()


def mappings(db: str, prefix: str) -> list[RedisMapping]:
    return [
        load(db, "user_hash.yml", {
            "sql": "select a.id, a.name, a.email, a.price, a.born, a.seen, a.wake, a.avatar, a.flags, a.meta, "
                   "b.name as role from user a left join role b on b.id = a.role_id",
            "key": "user:{id}", "prefix": prefix, "ttl": 3600}),
        load(db, "user_json.yml", {"sql": "select a.id, a.email, a.name, a.price, a.seen, a.avatar from user a",
                                   "key": "email:{email}", "prefix": prefix, "type": "json"}),
        load(db, "user_label.yml", {"sql": "select a.id, concat(a.name, '/', a.email) as label from user a",
                                    "key": "label:{id}", "prefix": prefix, "type": "string"}),
        load(db, "user_active.yml", {"sql": "select a.id, a.name from user a where a.active = 1",
                                     "key": "active:{id}", "prefix": prefix}),
        load(db, "user_raw.yml", {"sql": "select a.id, a.avatar from user a", "key": "avatar:{id}",
                                  "prefix": prefix, "type": "string", "binary": "raw"}),
    ]  # fmt: skip


def assert_synced(w: RedisWriter, maps: list[RedisMapping]) -> None:
    r = redis_client()
    for m in maps:
        want, got = expected_state(w, m), actual_state(r, m)
        assert got == want, f"{m.name}: keys only in redis {sorted(set(got) - set(want))[:5]}, " \
                            f"missing {sorted(set(want) - set(got))[:5]}"
        assert w.count(m) == len(want)


def test_mixed_workload_and_replay_end_exactly_as_the_mapping_sql(
        src: Source, writer: RedisWriter, mysql_db: str, redis_prefix: str) -> None:
    maps = mappings(mysql_db, redis_prefix)
    seen = dt.datetime(2024, 1, 2, 3, 4, 5, 120)
    b1 = [src.insert("role", id=1, name="admin"), src.insert("role", id=2, name="dev")]
    b1 += [src.insert("user", id=i, email=f"u{i}@x", name=f"n{i}", role_id=1 + i % 2, price=Decimal(i) / 4,
                      born=dt.date(1990, 1, i), seen=seen, wake="07:30:00", avatar=bytes([0, i, 255]), flags=5,
                      active=i % 2, meta='{"a": [1, 2]}') for i in range(1, 7)]
    b1.append(src.insert("user", id=7, email=None, name=None, role_id=None))  # NULLs: absent fields, no email key
    write(writer, maps, b1)
    assert_synced(writer, maps)

    r = redis_client()
    h = r.hgetall(f"{redis_prefix}user:1")
    assert h == {b"id": b"1", b"name": b"n1", b"email": b"u1@x", b"price": b"0.25", b"born": b"1990-01-01",
                 b"seen": b"2024-01-02 03:04:05.000120", b"wake": b"07:30:00", b"avatar": b"AAH/", b"flags": b"5",
                 b"meta": b'{"a": [1, 2]}', b"role": b"dev"}
    assert 0 < r.ttl(f"{redis_prefix}user:1") <= 3600
    assert orjson.loads(r.get(f"{redis_prefix}email:u2@x")) == {
        "id": 2, "email": "u2@x", "name": "n2", "price": "0.50", "seen": "2024-01-02 03:04:05.000120",
        "avatar": "AAL/"}
    assert r.get(f"{redis_prefix}label:3") == b"n3/u3@x"
    assert r.get(f"{redis_prefix}avatar:3") == bytes([0, 3, 255])
    assert r.hgetall(f"{redis_prefix}user:7") == {b"id": b"7"}
    assert r.exists(f"{redis_prefix}label:7") == 0

    b2 = [
        src.update("user", 1, name="ann"),  # hash: one field patched; json/string rewritten
        src.update("role", 1, name="root"),  # joined table: every user of role 1 re-read
        src.update("role", 2, note="unused"),  # column outside the mapping: nothing to do
        src.update("user", 2, role_id=None),  # join column: role field removed
        src.update("user", 3, id=30),  # key change: user:3 gone, user:30 written whole
        src.update("user", 4, email="new4@x"),  # json key change
        src.update("user", 5, active=0),  # leaves the filtered mapping
        src.update("user", 6, active=1, price=Decimal("9.99")),  # enters it
        src.update("user", 7, email="u7@x", name="late"),
    ]
    write(writer, maps, b2)
    assert_synced(writer, maps)
    assert r.exists(f"{redis_prefix}user:3", f"{redis_prefix}email:u4@x", f"{redis_prefix}active:5") == 0
    assert r.hget(f"{redis_prefix}user:2", "role") is None
    assert r.hget(f"{redis_prefix}user:4", "role") == b"root"
    assert r.hget(f"{redis_prefix}user:5", "role") == b"dev"

    b3 = [src.delete("user", 30), src.delete("role", 2), src.insert("user", id=3, email="u3@x", name="again"),
          src.update("user", 1, id=100, email="u100@x")]
    write(writer, maps, b3)
    assert_synced(writer, maps)

    # at-least-once: the unacknowledged tail is delivered again, in order; the result must not change
    write(writer, maps, b2)
    write(writer, maps, b3)
    assert_synced(writer, maps)
    write(writer, maps, b3)
    assert_synced(writer, maps)


def test_partial_update_of_an_expired_key_rewrites_it_whole(
        src: Source, writer: RedisWriter, mysql_db: str, redis_prefix: str) -> None:
    single = load(mysql_db, "u.yml", {"sql": "select a.id, a.name, a.email from user a", "key": "u:{id}",
                                      "prefix": redis_prefix, "ttl": 100})
    joined = load(mysql_db, "j.yml", {"sql": "select a.id, a.name, b.name as role from user a "
                                             "left join role b on b.id = a.role_id", "key": "j:{id}",
                                      "prefix": redis_prefix})
    src.insert("role", id=1, name="admin")
    write(writer, [single, joined], [src.insert("user", id=1, email="a@x", name="a", role_id=1)])
    r = redis_client()
    r.delete(f"{redis_prefix}u:1", f"{redis_prefix}j:1")  # as if expired or evicted
    write(writer, [single, joined], [src.update("user", 1, name="b")])
    assert r.hgetall(f"{redis_prefix}u:1") == {b"id": b"1", b"name": b"b", b"email": b"a@x"}
    assert r.ttl(f"{redis_prefix}u:1") > 0
    assert r.exists(f"{redis_prefix}j:1") == 0  # a patch that cannot be completed from the row stays absent
    write(writer, [single, joined], [src.update("role", 1, name="root")])  # a read-back knows the whole value
    assert r.hgetall(f"{redis_prefix}j:1") == {b"id": b"1", b"name": b"b", b"role": b"root"}


def test_truncate_removes_the_mappings_keys(src: Source, writer: RedisWriter, mysql_db: str,
                                            redis_prefix: str) -> None:
    m = load(mysql_db, "u.yml", {"sql": "select a.id, a.name from user a", "key": "u:{id}", "prefix": redis_prefix})
    write(writer, m, [src.insert("user", id=i, name="x") for i in range(1, 40)])
    assert writer.count(m) == 39
    src.execute("TRUNCATE TABLE user")
    writer.write([Routed(m, Dml("example", "g1", mysql_db, "user", TRUNCATE, is_ddl=True, sql="TRUNCATE user"))])
    assert writer.count(m) == 0


def test_etl_loads_every_row_in_keyset_pages_with_progress(
        src: Source, writer: RedisWriter, mysql_db: str, redis_prefix: str) -> None:
    src.execute("INSERT INTO role VALUES (1, 'admin', NULL)")
    values = ", ".join(f"({i}, 'e{i}@x', 'n{i}', {i % 3 or 'NULL'}, {i}.5)" for i in range(1, 2501))
    src.execute(f"INSERT INTO user (id, email, name, role_id, price) VALUES {values}")
    m = load(mysql_db, "etl.yml", {"sql": "select a.id, a.name, a.price, b.name as role from user a "
                                          "left join role b on b.id = a.role_id", "key": "e:{id}",
                                   "prefix": redis_prefix, "commitBatch": 400, "etlCondition": "where a.id > {}"})
    seen: list[int] = []
    res = writer.etl(m, [], seen.append)
    assert res.succeeded and res.rows == 2500 and "2500" in res.result_message
    assert seen[-1] == 2500 and len(seen) == 7
    assert_synced(writer, [m])
    res = writer.etl(m, ["2400"], lambda n: None)  # canal's etlCondition with params
    assert res.succeeded and res.rows == 100
    bad = writer.etl(m, ["1", "2"], lambda n: None)
    assert not bad.succeeded and "placeholders" in (bad.error_message or "")


def test_subquery_and_multi_level_joins_follow_every_table(
        src: Source, writer: RedisWriter, mysql_db: str, redis_prefix: str) -> None:
    for t in ("tag", "dept", "company"):
        src.execute(f"DROP TABLE IF EXISTS `{t}`")
    src.execute("CREATE TABLE company (id INT PRIMARY KEY, name VARCHAR(50))")
    src.execute("CREATE TABLE dept (id INT PRIMARY KEY, name VARCHAR(50), company_id INT)")
    src.execute("CREATE TABLE tag (id INT PRIMARY KEY, user_id INT, tag VARCHAR(20))")
    src.execute("ALTER TABLE user ADD COLUMN dept_id INT")
    sql = ("select a.id, a.name, d.name as dept, c.name as company, t.tags from user a "
           "left join dept d on d.id = a.dept_id left join company c on c.id = d.company_id "
           "left join (select user_id, group_concat(tag order by tag) as tags from tag group by user_id) t "
           "on t.user_id = a.id")
    m = [load(mysql_db, "deep.yml", {"sql": sql, "key": "deep:{id}", "prefix": redis_prefix, "type": "json"}),
         load(mysql_db, "deeph.yml", {"sql": sql, "key": "deeph:{id}", "prefix": redis_prefix})]
    batch = [src.insert("company", id=1, name="acme"), src.insert("company", id=2, name="globex"),
             src.insert("dept", id=10, name="ops", company_id=1)]
    batch += [src.insert("user", id=i, name=f"u{i}", dept_id=10) for i in range(1, 5)]
    batch += [src.insert("tag", id=i, user_id=1 + i % 3, tag=f"t{i}") for i in range(1, 7)]
    write(writer, m, batch)
    assert_synced(writer, m)
    write(writer, m, [src.update("company", 1, name="acme2"),  # two levels up
                      src.update("dept", 10, company_id=2),  # re-targets the company of every user
                      src.delete("tag", 1), src.update("tag", 2, user_id=4),  # sub-query rows move
                      src.update("user", 3, dept_id=None)])
    assert_synced(writer, m)
    r = redis_client()
    assert orjson.loads(r.get(f"{redis_prefix}deep:1"))["company"] == "globex"
    assert orjson.loads(r.get(f"{redis_prefix}deep:3"))["company"] is None
    assert r.hget(f"{redis_prefix}deeph:2", "company") == b"globex" and r.hget(f"{redis_prefix}deeph:3", "dept") is None
