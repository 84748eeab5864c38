"""End to end: MariaDB → canal-server → canal-adapter node → redis writer → Redis.

Changes are made with SQL on MariaDB only; the server reads the binlog and the node applies it. A
"marker" row inserted last tells when the stream has caught up (batches are applied in order), then
Redis must hold exactly what the mapping SQL yields. Includes an ETL of 200,000 rows over REST while
the stream keeps changing them, and a private Redis restarted while the stream flows.
"""

from __future__ import annotations

import json
import pathlib
import random
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import services
from pipeline import pipeline
from redis_support import PrivateRedis, actual_state, expected_state, load, make_writer, redis_client

ETL_ROWS = 200_000


def canal_conf(db: str, redis_hosts: str | None = None) -> dict[str, Any]:
    m = services.MARIADB_ROOT
    return {
        "srcDataSources": {"defaultDS": {"url": f"jdbc:mysql://{m['host']}:{m['port']}/{db}?useUnicode=true",
                                         "username": m["user"], "password": m["password"]}},
        "canalAdapters": [{"instance": "example", "groups": [{"groupId": "g1", "outerAdapters": [
            {"name": "redis", "key": "redis1",
             "hosts": redis_hosts or f"{services.REDIS['host']}:{services.REDIS['port']}"}]}]}],
    }


def mapping_yml(body: dict[str, Any]) -> str:
    return json.dumps({"dataSourceKey": "defaultDS", "destination": "example", "groupId": "g1",
                       "outerAdapterKey": "redis1", "redisMapping": body})  # JSON is YAML


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def rest(node: Any, method: str, path: str, timeout: float = 900) -> Any:
    req = urllib.request.Request(f"http://{node.rest_address}{path}", method=method)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def sql(conn: Any, stmt: str, args: Any = None) -> None:
    with conn.cursor() as cur:
        cur.execute(stmt, args)


def caught_up(conn: Any, r: Any, prefix: str, n: int) -> None:
    """Insert marker n and wait until the stream has written it (so everything before it is applied)."""
    sql(conn, "INSERT INTO marker VALUES (%s)", [n])
    wait_until(lambda: r.exists(f"{prefix}marker:{n}") == 1, 300, f"marker {n} to stream through")


BODIES = {
    "user": {"sql": "select a.id, a.name, a.email, a.price, a.c_time, b.name as role from user a "
                    "left join role b on b.id = a.role_id", "key": "user:{id}", "ttl": 86400},
    "email": {"sql": "select a.id, a.email, a.name from user a", "key": "email:{email}", "type": "json"},
    "marker": {"sql": "select m.id from marker m", "key": "marker:{id}", "type": "string", "value": "id"},
}


def retries(node: Any) -> float:
    text = node.metrics().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("canal_adapter_retries_total"))


def setup_tables(conn: Any) -> None:
    sql(conn, "DROP TABLE IF EXISTS role, user, marker")  # mysql_db is per module
    sql(conn, "CREATE TABLE role (id INT PRIMARY KEY, name VARCHAR(50))")
    sql(conn, "CREATE TABLE user (id INT PRIMARY KEY, name VARCHAR(50), email VARCHAR(100), role_id INT, "
              "price DECIMAL(10,2), c_time DATETIME(3), KEY (role_id))")
    sql(conn, "CREATE TABLE marker (id INT PRIMARY KEY)")


def mappings_for(prefix: str, bodies: dict[str, dict[str, Any]] = BODIES) -> dict[str, str]:
    return {f"redis/{name}.yml": mapping_yml({**b, "prefix": prefix}) for name, b in bodies.items()}


def assert_matches_sql(db: str, prefix: str, r: Any, names: tuple[str, ...] = ("user", "email")) -> None:
    w = make_writer(db)
    try:
        for name in names:
            m = load(db, f"{name}.yml", {**BODIES[name], "prefix": prefix})
            want, got = expected_state(w, m), actual_state(r, m)
            assert got == want, f"{name}: only in redis {sorted(set(got) - set(want))[:5]}, " \
                                f"missing {sorted(set(want) - set(got))[:5]}, " \
                                f"differ {[k for k in want if k in got and got[k] != want[k]][:5]}"
    finally:
        w.close()


def test_stream_end_to_end(mysql_conn: Any, mysql_db: str, redis_prefix: str, tmp_path: pathlib.Path) -> None:
    setup_tables(mysql_conn)
    r = redis_client()
    with pipeline(tmp_path, mysql_db, canal_conf(mysql_db), mappings_for(redis_prefix)):
        sql(mysql_conn, "INSERT INTO role VALUES (1, 'admin'), (2, 'dev')")
        sql(mysql_conn, "INSERT INTO user VALUES " + ", ".join(
            f"({i}, 'n{i}', 'u{i}@x', {1 + i % 2}, {i}.25, '2024-01-02 03:04:05.{i % 1000:03d}')"
            for i in range(1, 301)))
        sql(mysql_conn, "UPDATE user SET name = CONCAT(name, '!') WHERE id % 3 = 0")
        sql(mysql_conn, "UPDATE role SET name = 'root' WHERE id = 1")  # fans out to 150 users
        sql(mysql_conn, "UPDATE user SET id = id + 1000 WHERE id BETWEEN 10 AND 19")  # key changes
        sql(mysql_conn, "UPDATE user SET email = CONCAT('x', email) WHERE id BETWEEN 20 AND 29")
        sql(mysql_conn, "DELETE FROM user WHERE id BETWEEN 30 AND 59")
        sql(mysql_conn, "UPDATE user SET role_id = NULL, price = NULL WHERE id BETWEEN 60 AND 69")
        sql(mysql_conn, "DELETE FROM role WHERE id = 2")
        caught_up(mysql_conn, r, redis_prefix, 1)
        assert_matches_sql(mysql_db, redis_prefix, r)
        assert r.hget(f"{redis_prefix}user:1010", "name") == b"n10"
        assert r.exists(f"{redis_prefix}user:10", f"{redis_prefix}user:30") == 0


@pytest.mark.slow
def test_etl_of_200k_rows_while_the_stream_keeps_changing_them(
        mysql_conn: Any, mysql_db: str, redis_prefix: str, tmp_path: pathlib.Path) -> None:
    setup_tables(mysql_conn)
    sql(mysql_conn, "INSERT INTO role VALUES " + ", ".join(f"({i}, 'r{i}')" for i in range(50)))
    for start in range(1, ETL_ROWS + 1, 10_000):
        sql(mysql_conn, "INSERT INTO user VALUES " + ", ".join(
            f"({i}, 'n{i}', 'u{i}@x', {i % 50}, {i % 1000}.5, '2024-01-01 00:00:00.000')"
            for i in range(start, start + 10_000)))
    r = redis_client()
    bodies = {**BODIES, "user": {**BODIES["user"], "commitBatch": 2000}}
    with pipeline(tmp_path, mysql_db, canal_conf(mysql_db), mappings_for(redis_prefix, bodies)) as p:
        stop = threading.Event()
        errors: list[BaseException] = []
        conn2 = __import__("pymysql").connect(autocommit=True, database=mysql_db, **services.MARIADB_ROOT)

        def churn() -> None:  # the source keeps changing rows the ETL is copying
            rnd = random.Random(5)
            next_id = ETL_ROWS + 1
            try:
                while not stop.is_set():
                    k = rnd.randint(1, ETL_ROWS)
                    op = rnd.random()
                    if op < 0.5:
                        sql(conn2, "UPDATE user SET name = %s, price = price + 1 WHERE id = %s", [f"v{k}", k])
                    elif op < 0.65:
                        sql(conn2, "DELETE FROM user WHERE id = %s", [k])
                    elif op < 0.75:
                        sql(conn2, "UPDATE user SET id = %s WHERE id = %s", [next_id, k])
                        next_id += 1
                    elif op < 0.97:
                        sql(conn2, "INSERT INTO user VALUES (%s, 'new', 'n%s@x', %s, 1.5, NOW(3))",
                            [next_id, next_id, rnd.randint(0, 49)])
                        next_id += 1
                    else:
                        sql(conn2, "UPDATE role SET name = %s WHERE id = %s", [f"r{k}", rnd.randint(0, 49)])
                    time.sleep(0.005)
            except BaseException as e:
                errors.append(e)

        t = threading.Thread(target=churn)
        t.start()
        try:
            res = rest(p.node, "POST", "/etl/redis/redis1/user.yml")
        finally:
            stop.set()
            t.join(60)
        assert not errors, errors
        assert res["succeeded"] is True, res
        caught_up(mysql_conn, r, redis_prefix, 1)
        assert_matches_sql(mysql_db, redis_prefix, r, names=("user",))
        count = rest(p.node, "GET", "/count/redis/redis1/user.yml")
        with mysql_conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM user")
            assert count["count"] == cur.fetchone()[0] > ETL_ROWS // 2
        conn2.close()


@pytest.mark.skipif(not PrivateRedis.available(), reason="redis-server binary not installed")
def test_private_redis_restarted_while_streaming_loses_no_row(
        mysql_conn: Any, mysql_db: str, tmp_path: pathlib.Path) -> None:
    setup_tables(mysql_conn)
    srv = PrivateRedis(tmp_path / "redis")
    srv.start()
    prefix = "e2e:"
    r = redis_client(srv.port)
    try:
        with pipeline(tmp_path, mysql_db, canal_conf(mysql_db, f"127.0.0.1:{srv.port}"), mappings_for(prefix)) as p:
            for b in range(6):
                sql(mysql_conn, "INSERT INTO user VALUES " + ", ".join(
                    f"({b * 100 + i}, 'n', 'e{b * 100 + i}@x', NULL, 1.5, NULL)" for i in range(100)))
                sql(mysql_conn, "UPDATE user SET name = %s WHERE id < %s", [f"b{b}", b * 100])
                if b == 2:
                    caught_up(mysql_conn, r, prefix, 1)
                    srv.stop()  # the stream keeps coming; batches fail and are retried
                if b == 4:  # batches failed against the stopped server and were rolled back for a retry
                    wait_until(lambda: retries(p.node) > 0, 120, "a failed batch to be retried")
                    srv.start()
                    r = redis_client(srv.port)
            caught_up(mysql_conn, r, prefix, 2)
            assert_matches_sql(mysql_db, prefix, r)
            assert len(actual_state(r, load(mysql_db, "user.yml", {**BODIES["user"], "prefix": prefix}))) == 600
    finally:
        srv.stop()
