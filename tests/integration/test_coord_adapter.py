"""Adapter-side primitives on real ZooKeeper: the shared sync switch, the ETL lock, and the LeaseBalancer
(3 nodes x 6 tasks, a node partitioned away, a node joining), on standalone and on the ensemble."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from adapter.coordination import paths
from adapter.coordination.balancer import LeaseBalancer, TaskKey
from adapter.coordination.etl_lock import ZkEtlLock
from adapter.coordination.session import ZkSession
from adapter.coordination.switch import ZkSwitch

sys.path.insert(0, str(Path(__file__).parent))
from test_coord_support import TcpProxy, wait_for

TASKS = [TaskKey(d, c) for d in ("example", "other") for c in (1001, 1002, 1003)]


@pytest.fixture(params=["standalone", "ensemble"])
def hosts(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("zk_chroot" if request.param == "standalone" else "zk_ensemble_chroot"))


@pytest.fixture
def clients(hosts: str) -> Iterator[Any]:
    made: list[KazooClient] = []

    def make() -> KazooClient:
        c = KazooClient(hosts=hosts, timeout=4)
        c.start(10)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()
        c.close()


def test_switch_off_on_seen_by_another_client(clients: Any) -> None:
    a, b, admin = ZkSwitch(clients()), ZkSwitch(clients()), clients()
    assert a.is_on("example") and b.is_on("example")
    stop = threading.Event()
    a.set("example", False)
    assert admin.get(paths.sync_switch("example"))[0] == b"off"
    wait_for(lambda: not b.is_on("example"), what="b sees off")
    waiter = threading.Thread(target=lambda: results.append(b.wait_on("example", stop, 60)))
    results: list[bool] = []
    waiter.start()
    a.set("example", True)
    waiter.join(60)
    assert results == [True]
    assert admin.get(paths.sync_switch("example"))[0] == b"on"
    admin.set(paths.sync_switch("example"), b"off")  # e.g. canal-admin or a Java adapter
    wait_for(lambda: not a.is_on("example") and not b.is_on("example"), what="both see an external off")


def test_etl_lock_refuses_a_second_etl_anywhere(clients: Any) -> None:
    a, b = ZkEtlLock(clients(), "node-a"), ZkEtlLock(clients(), "node-b")
    assert a.try_acquire("es7-example")
    assert not b.try_acquire("es7-example")
    assert not a.try_acquire("es7-example")
    assert b.try_acquire("rdb-example")
    a.release("es7-example")
    assert b.try_acquire("es7-example")
    b.release("es7-example")
    b.release("rdb-example")


def test_etl_lock_respects_a_java_adapters_curator_mutex(clients: Any) -> None:
    java = clients()  # Curator's InterProcessMutex: ephemeral sequential _c_<uuid>-lock-
    node = java.create(paths.sync_etl("es7", "example") + "/_c_0f8e-lock-", b"", ephemeral=True, sequence=True,
                       makepath=True)
    ours = ZkEtlLock(clients(), "node-a")
    assert not ours.try_acquire("es7-example")
    java.delete(node)
    assert ours.try_acquire("es7-example")
    ours.release("es7-example")


class TaskLog:
    """Start/stop events of every node per task; detects two nodes running one task at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: dict[TaskKey, str] = {}
        self.by_node: dict[str, set[TaskKey]] = {}
        self.overlaps: list[tuple[TaskKey, str, str]] = []

    def node(self, name: str) -> tuple[Any, Any]:
        self.by_node[name] = set()

        def start(t: TaskKey) -> None:
            with self.lock:
                if t in self.running:
                    self.overlaps.append((t, self.running[t], name))
                self.running[t] = name
                self.by_node[name].add(t)

        def stop(t: TaskKey) -> None:
            with self.lock:
                if self.running.get(t) == name:
                    del self.running[t]
                self.by_node[name].discard(t)

        return start, stop

    def counts(self, names: list[str]) -> list[int]:
        with self.lock:
            return sorted(len(self.by_node[n]) for n in names)


def test_lease_balancer_three_nodes_kill_one_then_a_fourth_joins(hosts: str, clients: Any) -> None:
    admin = clients()
    log = TaskLog()
    first, _, chroot = hosts.partition("/")
    h, _, p = first.split(",")[0].partition(":")
    proxy = TcpProxy(h, int(p))
    made: list[tuple[LeaseBalancer, ZkSession]] = []

    def node(name: str, via: str | None = None) -> LeaseBalancer:
        session = ZkSession.connect(via or hosts, timeout_s=2.0)
        start, stop = log.node(name)
        lb = LeaseBalancer(session, name, TASKS, start, stop, address=f"{name}:8081")
        made.append((lb, session))
        lb.start()
        return lb

    try:
        victim = node("n0", via=f"{proxy.address}/{chroot}")
        node("n1")
        node("n2")
        wait_for(lambda: log.counts(["n0", "n1", "n2"]) == [2, 2, 2], what="2/2/2")
        holders = Counter(
            paths.ClientRunningData.from_json(admin.get(paths.client_running(t.destination, t.client_id))[0]).address
            for t in TASKS
        )
        assert sorted(holders.values()) == [2, 2, 2]
        assert sorted(admin.get_children(paths.ADAPTER_MEMBERS_ROOT)) == ["n0", "n1", "n2"]

        proxy.blackhole(True)  # n0 is cut off: it stops its tasks, then its session expires
        wait_for(lambda: log.counts(["n1", "n2"]) == [3, 3], what="n0's tasks moved")
        assert victim.held() == set()
        assert log.by_node["n0"] == set()

        node("n3")
        wait_for(lambda: log.counts(["n1", "n2", "n3"]) == [2, 2, 2], what="rebalanced onto n3")
        proxy.blackhole(False)  # n0 comes back with a new session and joins again
        wait_for(lambda: log.counts(["n0", "n1", "n2", "n3"]) == [1, 1, 2, 2], what="four-way balance")
        assert log.overlaps == []
    finally:
        for lb, session in made:
            lb.stop()
            session.close()
        proxy.stop()


def test_lease_balancer_node_killed_and_its_session_closed(hosts: str, clients: Any) -> None:
    """A node dies (cut off: it can never answer again) and its session is closed at once by another
    connection using the same session id and password (kazoo's expire trick): its tasks move to the
    survivor without waiting for the session timeout."""
    log = TaskLog()
    first, _, chroot = hosts.partition("/")
    h, _, p = first.split(",")[0].partition(":")
    proxy = TcpProxy(h, int(p))
    sessions = [ZkSession.connect(f"{proxy.address}/{chroot}", timeout_s=30.0), ZkSession.connect(hosts, timeout_s=4.0)]
    lbs = []
    for i, s in enumerate(sessions):
        start, stop = log.node(f"n{i}")
        lb = LeaseBalancer(s, f"n{i}", TASKS, start, stop)
        lb.start()
        lbs.append(lb)
    try:
        wait_for(lambda: log.counts(["n0", "n1"]) == [3, 3], what="3/3")
        sid, pw = sessions[0].client.client_id
        proxy.blackhole(True)  # the process is gone: it never talks to ZooKeeper again
        with log.lock:  # ... and neither do its tasks
            for t in log.by_node["n0"]:
                log.running.pop(t, None)
            log.by_node["n0"] = set()
        thief = KazooClient(hosts=hosts, client_id=(sid, pw), timeout=4)
        thief.start(10)
        thief.stop()  # closes the session: its ephemeral leases and member node go now
        thief.close()
        wait_for(lambda: log.counts(["n1"]) == [6], what="all on n1")
        assert log.overlaps == []
    finally:
        for lb, s in zip(lbs, sessions, strict=True):
            lb.stop()
            s.close()
        proxy.stop()
