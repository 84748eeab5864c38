"""End to end: MariaDB → canal-server → canal-adapter node → es7 writer → ES-API server.

canal's sample mapping files are used as shipped (only ``_index`` is made unique per test). The
second test runs a REST ETL of 200,000 rows while the stream keeps changing them, and checks that
the index ends equal to the source and that /count matches.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
import services
from es_support import assert_synced, context, load, make_writer
from pipeline import pipeline

from adapter.testing import wait_until
from adapter.writers.es import Es7Writer

ROLES = 2000
COMPAT = pathlib.Path(services.COMPAT) / "adapter-conf"


def compat_text(rel: str, index: str) -> str:
    path = COMPAT / rel
    if not path.exists():
        pytest.skip("compat files not present")
    text = path.read_text()
    old = next(line for line in text.splitlines() if line.strip().startswith("_index:"))
    return text.replace(old, old.split(":")[0] + f": {index}")


def canal_conf(mysql_db: str, es_url: str) -> dict[str, Any]:
    return {
        "srcDataSources": {"defaultDS": {"url": f"jdbc:mysql://127.0.0.1:13306/{mysql_db}?useUnicode=true",
                                         "username": "app", "password": "apppass"}},
        "canalAdapters": [{"instance": "example", "groups": [{"groupId": "g1", "outerAdapters": [
            {"name": "es7", "hosts": es_url.replace("http://", ""),
             "properties": {"mode": "rest", "timezone": "+08:00"}}]}]}],
    }


def synced(w: Any, m: Any) -> bool:
    try:
        assert_synced(w, m)
        return True
    except AssertionError:
        return False


def rest(node: Any, method: str, path: str) -> Any:
    req = urllib.request.Request(f"http://{node.rest_address}{path}", method=method)
    return json.loads(urllib.request.urlopen(req, timeout=600).read())


def sql(conn: Any, *statements: str) -> None:
    with conn.cursor() as cur:
        for s in statements:
            cur.execute(s)


def fresh_tables(conn: Any) -> None:
    """The database is per module: drop what an earlier test of this module created."""
    sql(conn, *(f"DROP TABLE IF EXISTS `{t}`" for t in ("user", "role", "customer", "biz_order")))


@pytest.mark.timeout(300)
def test_compat_mappings_sync_end_to_end(tmp_path: Path, mysql_db: str, mysql_conn: Any, es_url: str,
                                         es_index_prefix: str) -> None:
    fresh_tables(mysql_conn)
    sql(mysql_conn,
        "CREATE TABLE role (id INT PRIMARY KEY, role_name VARCHAR(50))",
        "CREATE TABLE user (id INT PRIMARY KEY, name VARCHAR(50), role_id INT, c_time DATETIME, KEY (role_id))",
        "CREATE TABLE customer (id INT PRIMARY KEY, name VARCHAR(50), email VARCHAR(50), c_time DATETIME)",
        "CREATE TABLE biz_order (id INT PRIMARY KEY, customer_id INT, serial_code VARCHAR(20), c_time DATETIME)")
    ctx = context(mysql_db)
    check = make_writer(Es7Writer, es_url, ctx)
    customer = es_index_prefix + "customer"
    check.client.call("PUT", f"/{customer}", {"mappings": {"properties": {
        "id": {"type": "long"}, "order_time": {"type": "date"}, "order_id": {"type": "long"},
        "customer_order": {"type": "join", "relations": {"customer": "order"}}}}})
    files = {"es7/mytest_user.yml": compat_text("es7/mytest_user.yml", es_index_prefix + "user"),
             "es7/customer.yml": compat_text("es7/customer.yml", customer),
             "es7/biz_order.yml": compat_text("es7/biz_order.yml", customer)}
    import yaml

    maps = {name: load(Es7Writer, ctx, yaml.safe_load(text)["esMapping"], name.split("/")[1])
            for name, text in files.items()}
    with pipeline(tmp_path, mysql_db, canal_conf(mysql_db, es_url), files):
        sql(mysql_conn,
            "INSERT INTO role VALUES (1,'admin'),(2,'dev')",
            "INSERT INTO user VALUES (1,'a',1,'2020-01-01 10:00:00'),(2,'b',2,NOW()),(3,'c',NULL,NULL)",
            "INSERT INTO customer VALUES (1,'c1','a@x',NOW()),(2,'c2','b@x',NOW())",
            "INSERT INTO biz_order VALUES (10,1,'s10',NOW()),(11,1,'s11',NOW())",
            "UPDATE role SET role_name='boss' WHERE id=1",
            "DELETE FROM role WHERE id=2",
            "UPDATE user SET id=20 WHERE id=2",
            "DELETE FROM user WHERE id=3",
            "UPDATE biz_order SET customer_id=2 WHERE id=11",
            "DELETE FROM biz_order WHERE id=10",
            "UPDATE customer SET email='new@x' WHERE id=1")
        for m in maps.values():
            wait_until(lambda m=m: synced(check, m), timeout=120, interval=0.5, what=f"{m.header.task} in sync")
    check.close()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_etl_of_200k_rows_while_streaming(tmp_path: Path, mysql_db: str, mysql_conn: Any, es_url: str,
                                          es_index_prefix: str) -> None:
    rows = int(os.environ.get("ES_E2E_ROWS", "200000"))
    fresh_tables(mysql_conn)
    sql(mysql_conn,
        "CREATE TABLE role (id INT PRIMARY KEY, role_name VARCHAR(50))",
        "CREATE TABLE user (id INT PRIMARY KEY, name VARCHAR(50), role_id INT, c_time DATETIME, KEY (role_id))",
        "INSERT INTO role VALUES " + ",".join(f"({i},'r{i}')" for i in range(ROLES)))
    for start in range(1, rows + 1, 10_000):
        sql(mysql_conn, "INSERT INTO user VALUES " + ",".join(
            f"({i},'u{i}',{i % ROLES},'2024-01-01 00:00:00')" for i in range(start, start + 10_000)))
    ctx = context(mysql_db)
    check = make_writer(Es7Writer, es_url, ctx)
    text = compat_text("es7/mytest_user.yml", es_index_prefix + "big")
    import yaml

    m = load(Es7Writer, ctx, yaml.safe_load(text)["esMapping"], "mytest_user.yml")
    with pipeline(tmp_path, mysql_db, canal_conf(mysql_db, es_url), {"es7/mytest_user.yml": text}) as p:
        done = threading.Event()
        result: list[Any] = []

        def run_etl() -> None:
            try:
                result.append(rest(p.node, "POST", "/etl/es7/mytest_user.yml"))
            finally:
                done.set()

        threading.Thread(target=run_etl, daemon=True).start()
        rnd = random.Random(11)
        next_id = rows + 1
        changes = 0
        while not done.is_set() or changes < 200:
            k = rnd.randint(1, rows)
            op = rnd.random()
            if op < 0.6:
                sql(mysql_conn, f"UPDATE user SET name='v{changes}', role_id={rnd.randint(0, ROLES + 10)} "
                                f"WHERE id={k}")
            elif op < 0.78:
                sql(mysql_conn, f"DELETE FROM user WHERE id={k}")
            elif op < 0.98:
                sql(mysql_conn, f"INSERT INTO user VALUES ({next_id},'new',{rnd.randint(0, ROLES - 1)},NOW())")
                next_id += 1
            else:  # a role change re-indexes the ~100 users of that role
                r = rnd.randint(0, ROLES - 1)
                sql(mysql_conn, f"UPDATE role SET role_name='r{r}-{changes}' WHERE id={r}")
            changes += 1
            time.sleep(0.002)  # a busy but not CPU-starving source (two cores are shared by everything)
        assert result and result[0]["succeeded"] is True, result
        assert result[0]["resultMessage"].startswith("导入ES 数据：")
        # The stream is ordered: once a row inserted last is indexed, every earlier change is applied.
        sql(mysql_conn, "INSERT INTO user VALUES (99999999,'sentinel',NULL,NOW())")  # no role: only its own event
        wait_until(lambda: check.client.call("GET", f"/{m.index}/_doc/99999999", ok=(404,))[0] == 200,
                   timeout=600, interval=1, what="the stream to catch up")
        assert_synced(check, m)
        with mysql_conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM user")
            (n,) = cur.fetchone()
        assert rest(p.node, "GET", "/count/es7/mytest_user.yml")["count"] == n
    check.close()
