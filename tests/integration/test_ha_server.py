"""HA acceptance: two real ``canal-server`` processes sharing ZooKeeper (canal's default-instance layout),
MariaDB as the source, a ClusterCanalClient consuming through every failover.

- exactly one server runs the destination; both are registered in the cluster;
- kill -9 of the runner: the other takes over (after session timeout + delay) and the consumer gets
  every row written before, during and after; five successive failovers under continuous writes;
- the cursor node holds canal's JSON (``@type`` first, ``postion``);
- a runner cut off from ZooKeeper stops serving before the standby starts.

Each server talks to ZooKeeper through its own TCP proxy, so one can be partitioned from ZooKeeper
while its canal port stays reachable.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from kazoo.client import KazooClient

from adapter.client.cluster import ClusterCanalClient
from adapter.client.tcp import CanalClient
from adapter.coordination import paths
from adapter.errors import CanalError
from adapter.protocol import EntryProtocol_pb2 as pb

sys.path.insert(0, str(Path(__file__).parent))
import services
from test_coord_support import TcpProxy, wait_for

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent / "canal-server"
FAILOVER_WAIT = 120.0  # generous: session timeout (10 s) + delay (5 s) + instance start, on a busy machine


def _port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])


class Server:
    """One canal-server process with its conf dir; ZooKeeper reached through a proxy."""

    def __init__(self, base: Path, name: str, port: int, zk_proxy: TcpProxy, chroot: str, db: str) -> None:
        self.name, self.port, self.proxy = name, port, zk_proxy
        self.address = f"127.0.0.1:{port}"
        self.conf = base / name / "conf"
        (self.conf / "example").mkdir(parents=True)
        (self.conf / "canal.properties").write_text(
            "canal.ip = 127.0.0.1\ncanal.register.ip = 127.0.0.1\n"
            f"canal.port = {port}\ncanal.metrics.pull.port =\n"
            f"canal.zkServers = {zk_proxy.address}{chroot}\ncanal.zookeeper.flush.period = 1000\n"
            "canal.destinations = example\n"
            "canal.instance.global.spring.xml = classpath:spring/default-instance.xml\n"
            "canal.instance.global.lazy = false\n"
        )
        m = services.MARIADB_REPL
        (self.conf / "example" / "instance.properties").write_text(
            f"canal.instance.master.address={m['host']}:{m['port']}\n"
            # no start position: canal starts at the master's current position (a configured one makes the
            # parser scan the shared, very busy binlog for the transaction start, which can take minutes)
            "canal.instance.master.journal.name=\ncanal.instance.master.position=\n"
            f"canal.instance.dbUsername={m['user']}\ncanal.instance.dbPassword={m['password']}\n"
            "canal.instance.connectionCharset=UTF-8\ncanal.instance.gtidon=false\n"
            f"canal.instance.filter.regex={db}\\\\..*\n"
        )
        self.log = base / name / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([str(BIN), "--conf", str(self.conf)], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
            self.proc = None


def _ids(entries: list[Any], table: str) -> list[int]:
    out = []
    for e in entries:
        if e.entryType != pb.ROWDATA or e.header.tableName != table:
            continue
        rc = pb.RowChange.FromString(e.storeValue)
        if rc.eventType != pb.INSERT:
            continue
        for row in rc.rowDatas:
            out += [int(c.value) for c in row.afterColumns if c.name == "id"]
    return out


class Consumer(threading.Thread):
    """Consumes through ClusterCanalClient, acking after 'writing' (recording) each batch."""

    def __init__(self, zk_hosts: str) -> None:
        super().__init__(daemon=True)
        self.client = ClusterCanalClient(zk_hosts, destination="example", client_id=1001, retry_window_s=30,
                                         so_timeout=10)
        self.ids: set[int] = set()
        self.received = 0
        self.errors: list[str] = []
        self.servers: list[str] = []
        self.trace: list[tuple[str | None, int, int, int, int]] = []  # (server, batch, min id, max id, rows)
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                if not self.client.connected:
                    self.client.connect()
                batch_id, entries = self.client.get_without_ack(200, 200)
                if self.client.address and (not self.servers or self.servers[-1] != self.client.address):
                    self.servers.append(self.client.address)
                ids = _ids(entries, "t")
                if ids:
                    self.trace.append((self.client.address, batch_id, min(ids), max(ids), len(ids)))
                self.ids.update(ids)
                self.received += len(ids)
                self.client.ack(batch_id)
            except CanalError as e:
                self.errors.append(str(e))
                time.sleep(0.2)
        self.client.disconnect()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(60)


class Writer(threading.Thread):
    """Inserts rows with ascending ids, one transaction each, until stopped."""

    def __init__(self, db: str, first: int) -> None:
        super().__init__(daemon=True)
        self.conn = pymysql.connect(autocommit=True, database=db, **services.MARIADB_ROOT)
        self.next = first
        self.stop_event = threading.Event()

    def insert(self, n: int) -> None:
        with self.conn.cursor() as cur:
            for _ in range(n):
                cur.execute("INSERT INTO t (id, v) VALUES (%s, %s)", (self.next, f"row {self.next}"))
                self.next += 1

    def run(self) -> None:
        while not self.stop_event.wait(0.05):
            self.insert(1)

    def stop(self) -> int:
        self.stop_event.set()
        self.join(30)
        return self.next - 1


@pytest.fixture
def cluster(tmp_path: Path, zk_chroot: str, mysql_db: str, mysql_conn: Any) -> Iterator[dict[str, Any]]:
    if not BIN.exists():
        pytest.fail(f"{BIN} missing: pip install -e . to get the canal-server script")
    zk_host, _, chroot = zk_chroot.partition("/")
    with mysql_conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(64))")
    h, _, p = zk_host.partition(":")
    servers = []
    for name, pref in (("a", 11111), ("b", 22222)):
        proxy = TcpProxy(h, int(p))
        servers.append(Server(tmp_path, name, _port(pref), proxy, "/" + chroot, mysql_db))
    admin = KazooClient(hosts=zk_chroot, timeout=4)
    admin.start(10)
    yield {"servers": servers, "admin": admin, "zk": zk_chroot, "db": mysql_db}
    for s in servers:
        s.stop()
        s.proxy.stop()
    admin.stop()
    admin.close()
    keep = os.environ.get("HA_TEST_KEEP_LOGS")
    for s in servers:  # show the servers' logs when something failed
        if keep and s.log.exists():
            Path(keep).mkdir(parents=True, exist_ok=True)
            (Path(keep) / f"{s.name}.log").write_bytes(s.log.read_bytes())
        if s.log.exists():
            sys.stderr.write(f"---- {s.name} log tail ----\n" + s.log.read_text(errors="replace")[-4000:])


def _missing(consumer: Consumer, last: int) -> str:
    gaps = sorted(set(range(1, last + 1)) - consumer.ids)
    return (f"missing {len(gaps)} of {last}: {gaps[:20]}...; servers followed {consumer.servers}; "
            f"last errors {consumer.errors[-5:]}")


def _all_rows(consumer: Consumer, last: int, what: str) -> None:
    try:
        wait_for(lambda: set(range(1, last + 1)) <= consumer.ids, timeout=FAILOVER_WAIT, what=what)
    except AssertionError as e:
        raise AssertionError(f"{e}: {_missing(consumer, last)}") from None


def _children(admin: KazooClient, path: str) -> list[str]:
    try:
        return sorted(admin.get_children(path))
    except Exception:
        return []


def _runner(admin: KazooClient) -> str | None:
    try:
        data, _ = admin.get(paths.server_running("example"))
    except Exception:
        return None
    return paths.ServerRunningData.from_json(data).address


def test_two_servers_failover_under_writes_and_partition(cluster: dict[str, Any]) -> None:
    servers, admin, db = cluster["servers"], cluster["admin"], cluster["db"]
    by_addr = {s.address: s for s in servers}
    for s in servers:
        s.start()
    wait_for(lambda: _children(admin, paths.CLUSTER_ROOT) == sorted(by_addr), timeout=60,
             what="both servers registered")
    wait_for(lambda: _runner(admin) in by_addr, timeout=60, what="one server runs example")
    wait_for(lambda: _children(admin, paths.destination_cluster("example")) == sorted(by_addr), timeout=60,
             what="both servers registered for example")
    assert len([c for c in admin.get_children(paths.destination("example")) if c == "running"]) == 1

    writer = Writer(db, 1)
    consumer = Consumer(cluster["zk"])
    consumer.start()
    try:
        # subscribed means the runner's instance (and its parser's start position) is up
        wait_for(lambda: consumer.client.connected, timeout=FAILOVER_WAIT, what="consumer subscribed")
        writer.insert(50)  # before
        wait_for(lambda: set(range(1, 51)) <= consumer.ids, timeout=90, what="rows written before")
        cursor = paths.client_cursor("example", 1001)
        wait_for(lambda: admin.exists(cursor), timeout=30, what="cursor flushed to ZooKeeper")
        raw = admin.get(cursor)[0]
        assert raw.startswith(b'{"@type":"com.alibaba.otter.canal.protocol.position.LogPosition",')
        body = json.loads(raw)
        assert set(body) == {"@type", "identity", "postion"}
        assert body["identity"]["sourceAddress"] == {"address": "127.0.0.1", "port": services.MARIADB["port"]}
        assert body["postion"]["journalName"].startswith("mysql-bin.")

        writer.start()  # during: continuous writes through five failovers
        for _ in range(5):
            old = _runner(admin)
            assert old in by_addr
            other = next(a for a in by_addr if a != old)
            by_addr[old].kill9()
            wait_for(lambda other=other: _runner(admin) == other, timeout=FAILOVER_WAIT, what=f"{other} takes over")
            by_addr[old].start()  # comes back as the standby
            wait_for(lambda old=old: old in _children(admin, paths.destination_cluster("example")), timeout=60,
                     what=f"{old} registered again")
            seen = len(consumer.ids)
            wait_for(lambda seen=seen: len(consumer.ids) > seen + 5, timeout=FAILOVER_WAIT,
                     what="consumer follows the new runner")
            # the new runner persists the acks (periodic flush); killing it earlier only adds duplicates
            version = admin.exists(cursor).version
            wait_for(lambda version=version: admin.exists(cursor).version > version + 1, timeout=60,
                     what="the new runner flushes the cursor")
        last = writer.stop()
        writer.insert(20)  # after
        last += 20
        _all_rows(consumer, last, "every row before, during and after the failovers")
        assert len(consumer.servers) >= 5  # it really followed the runner around

        # A runner partitioned from ZooKeeper stops serving before the standby starts.
        old = _runner(admin)
        other = next(a for a in by_addr if a != old)
        t_standby: list[float] = []

        def on_running(data: bytes | None, stat: Any) -> None:
            if data and not t_standby and paths.ServerRunningData.from_json(data).address == other:
                t_standby.append(time.monotonic())

        admin.DataWatch(paths.server_running("example"), on_running)
        probe = CanalClient("127.0.0.1", by_addr[old].port, client_id="1002", destination="example", so_timeout=10)
        probe.connect()
        t_refused: list[float] = []
        probe_stop = threading.Event()

        def poll() -> None:
            while not probe_stop.is_set():
                try:
                    bid, _ = probe.get_without_ack(100, -1)
                    probe.ack(bid)
                except CanalError:
                    t_refused.append(time.monotonic())
                    return
                time.sleep(0.05)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        by_addr[old].proxy.blackhole(True)
        wait_for(lambda: t_standby, timeout=FAILOVER_WAIT, what="standby takes over from the partitioned runner")
        probe_stop.set()
        poller.join(30)
        assert t_refused, "the partitioned runner kept serving"
        assert t_refused[0] < t_standby[0]
        by_addr[old].proxy.blackhole(False)
        wait_for(lambda: old in _children(admin, paths.destination_cluster("example")), timeout=60,
                 what="partitioned server rejoins as standby")
        assert _runner(admin) == other
        writer.insert(10)
        last += 10
        _all_rows(consumer, last, "rows after the partition")
        probe.disconnect()
    finally:
        writer.stop_event.set()
        consumer.stop()
    if os.environ.get("HA_TEST_VERBOSE"):
        print("servers followed:", consumer.servers, "duplicates:", consumer.received - len(consumer.ids))
        for t in consumer.trace:
            print(t)
