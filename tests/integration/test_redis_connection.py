"""Redis writer connections on PRIVATE redis-servers (never the shared one): a restart while streaming
loses no row, ACL user/password, mutual TLS, Redis Cluster and Sentinel."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from redis_support import (
    PrivateRedis,
    Source,
    actual_state,
    expected_state,
    free_port,
    load,
    make_writer,
    redis_client,
    write_retrying,
)

from adapter.errors import ConfigError, FatalError
from adapter.writers.base import Routed
from adapter.writers.redis import RedisMapping, RedisWriter

pytestmark = pytest.mark.skipif(not PrivateRedis.available(), reason="redis-server binary not installed")

SQL = "select a.id, a.name, a.email from user a"


@pytest.fixture
def src(mysql_conn: Any, mysql_db: str) -> Source:
    s = Source(mysql_conn, mysql_db)
    s.execute("DROP TABLE IF EXISTS user")
    s.execute("CREATE TABLE user (id INT PRIMARY KEY, name VARCHAR(50), email VARCHAR(100))")
    return s


@pytest.fixture
def servers() -> Iterator[list[PrivateRedis]]:
    started: list[PrivateRedis] = []
    yield started
    for s in started:
        s.stop()


def mapping(db: str) -> RedisMapping:
    return load(db, "u.yml", {"sql": SQL, "key": "u:{id}", "prefix": "conn:"})


def test_restart_while_streaming_loses_no_row(src: Source, mysql_db: str, tmp_path: pathlib.Path,
                                              servers: list[PrivateRedis]) -> None:
    srv = PrivateRedis(tmp_path / "r")
    servers.append(srv)
    srv.start()
    w = make_writer(mysql_db, host=f"127.0.0.1:{srv.port}", socketTimeout=2, connectTimeout=1)
    m = mapping(mysql_db)
    failed = threading.Event()
    down = threading.Event()
    errors: list[BaseException] = []
    stats = {"failures": 0}

    def stream() -> None:  # the worker: every batch retried until it lands, in order
        try:
            for b in range(40):
                items = [Routed(m, src.insert("user", id=b * 10 + i, name=f"n{b}", email=f"{b}.{i}@x"))
                         for i in range(10)]
                if b > 0:
                    items.append(Routed(m, src.update("user", (b - 1) * 10, name=f"upd{b}")))
                if b == 10:
                    down.set()
                    while srv.pid is not None and not failed.is_set():
                        try:
                            w.write(items)  # keeps failing while the server is down
                        except Exception:
                            failed.set()
                n = write_retrying(w, items, deadline_s=120)
                stats["failures"] += n
        except BaseException as e:  # surfaced by the main thread
            errors.append(e)

    t = threading.Thread(target=stream)
    t.start()
    assert down.wait(120)
    srv.stop()
    assert failed.wait(120)
    srv.start()
    t.join(300)
    assert not t.is_alive() and not errors, errors
    r = redis_client(srv.port)
    want = expected_state(w, m)
    assert len(want) == 400 and actual_state(r, m) == want
    w.close()
    r.close()


def test_acl_user_password_and_permission_errors(src: Source, mysql_db: str, tmp_path: pathlib.Path,
                                                 servers: list[PrivateRedis]) -> None:
    srv = PrivateRedis(tmp_path / "acl", "--user", "default", "off", "--user", "app", "on", ">s3cret", "~*", "+@all",
                       "--user", "ro", "on", ">s3cret", "~*", "+@read", "+ping", persist=False)
    servers.append(srv)
    srv.start(client_kw={"username": "app", "password": "s3cret"})
    host = f"127.0.0.1:{srv.port}"
    m = mapping(mysql_db)
    w = make_writer(mysql_db, host=host, username="app", password="s3cret")
    w.write([Routed(m, src.insert("user", id=1, name="a", email="a@x"))])
    assert redis_client(srv.port, username="app", password="s3cret").hgetall("conn:u:1")[b"name"] == b"a"
    w.close()

    with pytest.raises(ConfigError, match=r"AuthenticationError|WRONGPASS|invalid username-password"):
        make_writer(mysql_db, host=host, username="app", password="wrong")
    ro = make_writer(mysql_db, host=host, username="ro", password="s3cret")
    with pytest.raises(FatalError, match=r"NOPERM|NoPermission|permission"):
        ro.write([Routed(m, src.insert("user", id=2, name="b", email="b@x"))])
    ro.close()


def _openssl(*args: str, cwd: pathlib.Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def test_mutual_tls(src: Source, mysql_db: str, tmp_path: pathlib.Path, servers: list[PrivateRedis]) -> None:
    d = tmp_path / "tls"
    d.mkdir()
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=test-ca", cwd=d)
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", "-extfile", "san.ext", cwd=d)
    port = free_port()
    srv = PrivateRedis(tmp_path / "tlsdata", "--port", "0", "--tls-port", str(port), "--tls-cert-file",
                       str(d / "server.crt"), "--tls-key-file", str(d / "server.key"), "--tls-ca-cert-file",
                       str(d / "ca.crt"), "--tls-auth-clients", "yes", port=port, persist=False)
    servers.append(srv)
    tls = {"ssl": True, "ssl_ca_certs": str(d / "ca.crt"), "ssl_certfile": str(d / "client.crt"),
           "ssl_keyfile": str(d / "client.key")}
    srv.start(client_kw=tls)
    files = {"ssl.ca": str(d / "ca.crt"), "ssl.cert": str(d / "client.crt"), "ssl.key": str(d / "client.key")}
    w = make_writer(mysql_db, host=f"127.0.0.1:{port}", ssl=True, **files)
    m = mapping(mysql_db)
    w.write([Routed(m, src.insert("user", id=1, name="t", email="t@x"))])
    assert redis_client(port, **tls).hget("conn:u:1", "name") == b"t"
    assert w.count(m) == 1
    w.close()


def test_cluster(src: Source, mysql_db: str, tmp_path: pathlib.Path, servers: list[PrivateRedis]) -> None:
    nodes = [PrivateRedis(tmp_path / f"c{i}", "--cluster-enabled", "yes", "--cluster-config-file",
                          str(tmp_path / f"c{i}" / "nodes.conf"), port=free_port(cluster=True), persist=False)
             for i in range(3)]
    for n in nodes:
        servers.append(n)
        n.start()
    subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes],
                    "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
    end = time.monotonic() + 60
    while any(b"cluster_state:ok" not in redis_client(n.port).execute_command("CLUSTER", "INFO") for n in nodes):
        assert time.monotonic() < end, "cluster did not become ok"
        time.sleep(0.2)
    w = make_writer(mysql_db, host=f"127.0.0.1:{nodes[0].port}", mode="cluster")
    assert w.settings.transaction is False
    m = mapping(mysql_db)
    w.write([Routed(m, src.insert("user", id=i, name=f"n{i}", email=f"{i}@x")) for i in range(1, 51)])
    w.write([Routed(m, src.update("user", 1, name="x")), Routed(m, src.update("user", 2, id=200)),
             Routed(m, src.delete("user", 3))])
    from redis.cluster import RedisCluster

    rc = RedisCluster(host="127.0.0.1", port=nodes[0].port)
    want = expected_state(w, m)
    assert actual_state(rc, m) == want  # type: ignore[arg-type]
    assert w.count(m) == len(want) == 49
    w.close()
    rc.close()


def test_sentinel(src: Source, mysql_db: str, tmp_path: pathlib.Path, servers: list[PrivateRedis]) -> None:
    master = PrivateRedis(tmp_path / "m", persist=False)
    servers.append(master)
    master.start()
    sdir = tmp_path / "s"
    sdir.mkdir()
    conf = sdir / "sentinel.conf"
    conf.write_text(f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
                    "sentinel down-after-milliseconds mymaster 5000\n")
    sentinel = PrivateRedis(sdir, "--sentinel", conf=conf, persist=False)
    servers.append(sentinel)
    sentinel.start()
    w = make_writer(mysql_db, host=f"127.0.0.1:{sentinel.port}", mode="sentinel",
                    sentinel={"master": "mymaster"})
    m = mapping(mysql_db)
    w.write([Routed(m, src.insert("user", id=1, name="s", email="s@x"))])
    assert redis_client(master.port).hget("conn:u:1", "name") == b"s"
    w.close()


def test_unreachable_target_does_not_block_open(mysql_db: str) -> None:
    w: RedisWriter = make_writer(mysql_db, host=f"127.0.0.1:{free_port()}", connectTimeout=0.5)
    w.close()
