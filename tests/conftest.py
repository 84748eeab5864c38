"""Shared fixtures: service probes, per-test isolation (ZK chroot, fresh DB, Redis db, PG schema).

Tests under ``tests/integration`` are marked ``integration``. A missing service skips the test
locally, but fails it when ``CI=true`` so that CI can never turn green by skipping.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# test-support modules (services, pipeline, *_support, server_fakes) import by plain name from any test file
for _d in (Path(__file__).parent, Path(__file__).parent / "integration", Path(__file__).parent / "unit"):
    sys.path.insert(0, str(_d))
import services  # noqa: E402

#: fixtures shared by several test files (``servers``) live in test-support modules
pytest_plugins = ["server_support"]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.integration)


def need(ok: bool, what: str) -> None:
    """Skip (locally) or fail (CI) when a service is not reachable."""
    if ok:
        return
    msg = f"{what} is not reachable; run scripts/services.sh up"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


# ---------------------------------------------------------------- MariaDB
@pytest.fixture(scope="session")
def mariadb_available() -> None:
    need(services.port_open(services.MARIADB["host"], services.MARIADB["port"]), "MariaDB")


def _mysql_connect(**kw: Any) -> Any:
    import pymysql

    return pymysql.connect(charset="utf8mb4", autocommit=True, **{**services.MARIADB_ROOT, **kw})


@pytest.fixture(scope="module")
def mysql_db(mariadb_available: None, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database per test module; dropped afterwards."""
    name = "t_" + uuid.uuid4().hex[:12]
    conn = _mysql_connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    yield name
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


@pytest.fixture
def mysql_conn(mysql_db: str) -> Iterator[Any]:
    conn = _mysql_connect(database=mysql_db)
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def mysql_settings() -> dict[str, Any]:
    """Replication-user connection settings (REPLICATION SLAVE, CLIENT, SELECT)."""
    return dict(services.MARIADB_REPL)


# ---------------------------------------------------------------- ZooKeeper
def _zk_client(hosts: str, chroot: str | None = None, timeout: float = 4.0) -> Any:
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=hosts + (chroot or ""), timeout=timeout)
    zk.start(timeout=10)
    return zk


@pytest.fixture(scope="session")
def zk_available() -> None:
    need(services.port_open(*services.first_hostport(services.ZK_HOSTS)), "ZooKeeper")


@pytest.fixture(scope="session")
def zk_ensemble_available() -> None:
    ok = all(services.port_open(*services.first_hostport(h)) for h in services.ZK_ENSEMBLE_HOSTS.split(","))
    need(ok, "ZooKeeper ensemble")


@pytest.fixture
def zk_chroot(zk_available: None) -> Iterator[str]:
    """A connection string with a fresh chroot (``host:port/zktests-<uuid>``); removed afterwards."""
    root = "/zktests-" + uuid.uuid4().hex[:12]
    admin = _zk_client(services.ZK_HOSTS)
    admin.ensure_path(root)
    yield services.ZK_HOSTS + root
    admin.delete(root, recursive=True)
    admin.stop()
    admin.close()


@pytest.fixture
def zk(zk_chroot: str) -> Iterator[Any]:
    """A started KazooClient inside a fresh chroot."""
    client = _zk_client(zk_chroot)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def zk_ensemble_chroot(zk_ensemble_available: None) -> Iterator[str]:
    root = "/zktests-" + uuid.uuid4().hex[:12]
    admin = _zk_client(services.ZK_ENSEMBLE_HOSTS)
    admin.ensure_path(root)
    yield services.ZK_ENSEMBLE_HOSTS + root
    admin.delete(root, recursive=True)
    admin.stop()
    admin.close()


# ---------------------------------------------------------------- Redis
@pytest.fixture(scope="session")
def redis_available() -> None:
    need(services.port_open(services.REDIS["host"], services.REDIS["port"]), "Redis")


@pytest.fixture
def redis_prefix(redis_available: None) -> Iterator[str]:
    """A unique key prefix; its keys are deleted afterwards."""
    import redis

    prefix = "t" + uuid.uuid4().hex[:10] + ":"
    yield prefix
    r = redis.Redis(**services.REDIS)
    keys = list(r.scan_iter(match=prefix + "*", count=1000))
    if keys:
        r.delete(*keys)
    r.close()


# ---------------------------------------------------------------- PostgreSQL
@pytest.fixture(scope="session")
def pg_available() -> None:
    need(services.port_open("127.0.0.1", 15432), "PostgreSQL")


@pytest.fixture
def pg_schema(pg_available: None) -> Iterator[str]:
    """A fresh PostgreSQL schema; dropped afterwards."""
    import sqlalchemy as sa

    name = "t_" + uuid.uuid4().hex[:12]
    eng = sa.create_engine(services.PG_URL)
    with eng.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    yield name
    with eng.begin() as c:
        c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    eng.dispose()


# ---------------------------------------------------------------- Elasticsearch API
@pytest.fixture(scope="session")
def es_url() -> str:
    """``ES_URL`` (a real cluster) or the local noida-db server."""
    from urllib.parse import urlparse

    u = urlparse(services.ES_URL)
    need(services.port_open(u.hostname or "127.0.0.1", u.port or 9200), f"Elasticsearch API at {services.ES_URL}")
    return services.ES_URL


@pytest.fixture
def es_index_prefix(es_url: str) -> Iterator[str]:
    """A unique index-name prefix; its indices are deleted afterwards."""
    from elasticsearch import Elasticsearch

    prefix = "t" + uuid.uuid4().hex[:10] + "_"
    yield prefix
    es = Elasticsearch(es_url)
    try:
        for name in es.indices.get(index=prefix + "*"):
            es.indices.delete(index=name)
    except Exception:  # cleanup must not mask the test result
        pass
    es.close()
