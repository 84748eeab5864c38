"""Each test service proves itself with a real round trip."""

from __future__ import annotations

import time
from typing import Any

import pytest
import services


def test_mariadb_binlog_row_with_column_names(mysql_conn: Any, mysql_db: str, mysql_settings: dict[str, Any]) -> None:
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import WriteRowsEvent

    with mysql_conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        log_file, log_pos = cur.fetchone()[:2]
        cur.execute("CREATE TABLE probe (id INT PRIMARY KEY, name VARCHAR(20))")
        cur.execute("INSERT INTO probe VALUES (1, 'hello')")
    stream = BinLogStreamReader(
        connection_settings=dict(mysql_settings), server_id=9001, blocking=False, resume_stream=True,
        log_file=log_file, log_pos=log_pos, only_events=[WriteRowsEvent], only_schemas=[mysql_db],
    )
    rows = [(ev.table, row["values"]) for ev in stream for row in ev.rows]
    stream.close()
    assert rows == [("probe", {"id": 1, "name": "hello"})]


@pytest.mark.parametrize("which", ["standalone", "ensemble"])
def test_zookeeper_ephemeral_vanishes_when_session_closes(which: str, request: pytest.FixtureRequest) -> None:
    from kazoo.client import KazooClient

    hosts = request.getfixturevalue("zk_chroot" if which == "standalone" else "zk_ensemble_chroot")
    owner = KazooClient(hosts=hosts, timeout=4)
    owner.start(timeout=10)
    watcher = KazooClient(hosts=hosts, timeout=4)
    watcher.start(timeout=10)
    owner.create("/probe", b"x", ephemeral=True)
    assert watcher.exists("/probe")
    owner.stop()
    owner.close()
    deadline = time.monotonic() + 10
    while watcher.exists("/probe") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert watcher.exists("/probe") is None
    watcher.stop()
    watcher.close()


def test_redis_set_get(redis_prefix: str) -> None:
    import redis

    r = redis.Redis(**services.REDIS)
    r.set(redis_prefix + "k", "v")
    assert r.get(redis_prefix + "k") == b"v"
    r.close()


def test_postgresql_through_sqlalchemy(pg_schema: str) -> None:
    import sqlalchemy as sa

    eng = sa.create_engine(services.PG_URL)
    with eng.begin() as c:
        c.execute(sa.text(f'CREATE TABLE "{pg_schema}".t (id int primary key, v text)'))
        c.execute(sa.text(f'INSERT INTO "{pg_schema}".t VALUES (1, :v)'), {"v": "é😀"})
        assert c.execute(sa.text(f'SELECT v FROM "{pg_schema}".t')).scalar() == "é😀"
    eng.dispose()


def test_sqlite_through_sqlalchemy(tmp_path: Any) -> None:
    import sqlalchemy as sa

    eng = sa.create_engine(f"sqlite:///{tmp_path}/x.db")
    with eng.begin() as c:
        c.execute(sa.text("CREATE TABLE t (id int primary key, v text)"))
        c.execute(sa.text("INSERT INTO t VALUES (1, 'x')"))
        assert c.execute(sa.text("SELECT v FROM t")).scalar() == "x"
    eng.dispose()


def test_elasticsearch_index_refresh_search(es_url: str, es_index_prefix: str) -> None:
    from elasticsearch import Elasticsearch

    es = Elasticsearch(es_url)
    idx = es_index_prefix + "probe"
    es.index(index=idx, id="1", document={"name": "hello"})
    es.indices.refresh(index=idx)
    res = es.search(index=idx, query={"match": {"name": "hello"}})
    assert res["hits"]["total"]["value"] == 1
    es.close()
