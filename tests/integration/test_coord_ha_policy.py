"""ZkRunningPolicy on real ZooKeeper with a recording instance controller (the runtime's part is
exercised end to end in test_ha_server.py): registration, election, lazy start, release, expiry."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from adapter.coordination import paths
from adapter.coordination.session import ZkSession
from adapter.server.ha import ZkRunningPolicy

sys.path.insert(0, str(Path(__file__).parent))
from test_coord_support import GateWatcher, Recorder, TcpProxy, wait_for

RUNNING = paths.server_running("example")


class Controller:
    """Records start/stop in a shared Recorder; can be told to fail starting."""

    def __init__(self, name: str, rec: Recorder) -> None:
        self.name, self.rec = name, rec
        self.running: set[str] = set()
        self.fail = False
        self.refreshed_before_start: list[bool] = []
        self.meta_refreshed = threading.Event()
        self.flushed_after_stop: bool | None = None

    def refresh(self, destination: str) -> None:  # plays the meta manager too
        self.meta_refreshed.set()

    def flush(self) -> None:
        self.flushed_after_stop = not self.running

    def start_instance(self, destination: str) -> None:
        self.refreshed_before_start.append(self.meta_refreshed.is_set())
        self.meta_refreshed.clear()
        if self.fail:
            raise RuntimeError("bad instance config")
        self.running.add(destination)
        self.rec.active(self.name)()

    def stop_instance(self, destination: str) -> None:
        self.running.discard(destination)
        self.rec.inactive(self.name)()

    def is_running(self, destination: str) -> bool:
        return destination in self.running


@pytest.fixture(params=["standalone", "ensemble"])
def hosts(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("zk_chroot" if request.param == "standalone" else "zk_ensemble_chroot"))


@pytest.fixture
def world(hosts: str) -> Iterator[dict[str, Any]]:
    rec = Recorder()
    admin = KazooClient(hosts=hosts, timeout=4)
    admin.start(10)
    made: list[tuple[ZkRunningPolicy, ZkSession]] = []

    def make(address: str, delay_s: float = 0.2, lazy: bool = False, via: str | None = None) -> Any:
        session = ZkSession.connect(via or hosts, timeout_s=2.0)
        ctl = Controller(address, rec)
        policy = ZkRunningPolicy(session, address, delay_s=delay_s, meta=ctl)
        policy.start(ctl, ["example"], lazy)
        made.append((policy, session))
        return policy, ctl, session

    yield {"rec": rec, "admin": admin, "make": make, "hosts": hosts}
    for policy, session in made:
        policy.stop()
        session.close()
    admin.stop()
    admin.close()


def running_owner(admin: KazooClient) -> str | None:
    if admin.exists(RUNNING) is None:
        return None
    return paths.ServerRunningData.from_json(admin.get(RUNNING)[0]).address


def test_two_servers_register_and_exactly_one_runs(world: dict[str, Any]) -> None:
    admin, rec = world["admin"], world["rec"]
    a, actl, _ = world["make"]("127.0.0.1:11111")
    wait_for(lambda: a.is_serving("example"), what="a serving")
    b, bctl, _ = world["make"]("127.0.0.1:22222")
    wait_for(lambda: len(admin.get_children(paths.destination_cluster("example"))) == 2, what="both registered")
    assert sorted(admin.get_children(paths.CLUSTER_ROOT)) == ["127.0.0.1:11111", "127.0.0.1:22222"]
    assert admin.get(paths.server_cluster_node("127.0.0.1:11111"))[0] == b""
    assert admin.get(RUNNING)[0] == b'{"active":true,"address":"127.0.0.1:11111"}'
    assert not b.is_serving("example") and bctl.running == set()
    wait_for(lambda: b.running_address("example") == "127.0.0.1:11111", what="b knows the runner")
    assert actl.refreshed_before_start == [True]

    a.stop()
    wait_for(lambda: b.is_serving("example"), what="b takes over")
    assert running_owner(admin) == "127.0.0.1:22222"
    assert admin.get_children(paths.CLUSTER_ROOT) == ["127.0.0.1:22222"]
    assert admin.get_children(paths.destination_cluster("example")) == ["127.0.0.1:22222"]
    assert rec.overlaps == []


def test_lazy_destination_competes_on_first_subscribe(world: dict[str, Any]) -> None:
    admin = world["admin"]
    a, actl, _ = world["make"]("127.0.0.1:11111", lazy=True)
    wait_for(lambda: admin.exists(paths.destination_cluster_node("example", "127.0.0.1:11111")), what="registered")
    assert admin.exists(RUNNING) is None and actl.running == set()
    a.on_subscribe("example")  # returns once decided
    assert a.is_serving("example") and actl.running == {"example"}
    assert running_owner(admin) == "127.0.0.1:11111"


def test_last_unsubscribe_releases_to_the_other_server(world: dict[str, Any]) -> None:
    admin, rec = world["admin"], world["rec"]
    a, actl, _ = world["make"]("127.0.0.1:11111", delay_s=600)
    wait_for(lambda: a.is_serving("example"), what="a serving")
    b, _, _ = world["make"]("127.0.0.1:22222", delay_s=0.2)
    wait_for(lambda: b.running_address("example"), what="b standby")
    a.on_last_unsubscribe("example")
    assert not a.is_serving("example") and actl.running == set()
    assert actl.flushed_after_stop is True
    wait_for(lambda: b.is_serving("example"), what="b takes over")
    assert running_owner(admin) == "127.0.0.1:22222"
    assert rec.events.index(("127.0.0.1:11111", "off")) < rec.events.index(("127.0.0.1:22222", "on"))


def test_failed_instance_start_gives_the_destination_to_the_other(world: dict[str, Any]) -> None:
    admin = world["admin"]
    b, _, _ = world["make"]("127.0.0.1:22222", delay_s=0.2, lazy=True)
    a, actl, _ = world["make"]("127.0.0.1:11111", delay_s=600)
    actl.fail = True
    a.on_subscribe("example")
    assert not a.is_serving("example")
    b.on_subscribe("example")
    wait_for(lambda: b.is_serving("example"), what="b runs it")
    assert running_owner(admin) == "127.0.0.1:22222"


def test_cluster_node_comes_back_if_deleted(world: dict[str, Any]) -> None:
    admin = world["admin"]
    _a, _, _ = world["make"]("127.0.0.1:11111")
    node = paths.server_cluster_node("127.0.0.1:11111")
    wait_for(lambda: admin.exists(node), what="registered")
    admin.delete(node)
    wait_for(lambda: admin.exists(node), what="re-registered")


def test_partitioned_runner_stops_before_the_standby_starts_then_registers_again(world: dict[str, Any]) -> None:
    admin, rec, hosts = world["admin"], world["rec"], world["hosts"]
    first, _, chroot = hosts.partition("/")
    h, _, p = first.split(",")[0].partition(":")
    proxy = TcpProxy(h, int(p))
    try:
        a, actl, asession = world["make"]("127.0.0.1:11111", via=f"{proxy.address}/{chroot}")
        wait_for(lambda: a.is_serving("example"), what="a serving")
        b, _, _ = world["make"]("127.0.0.1:22222", delay_s=0.0)
        wait_for(lambda: b.running_address("example"), what="b standby")
        gate = GateWatcher({"a": lambda: a.is_serving("example"), "b": lambda: b.is_serving("example")})
        gate.start()
        proxy.blackhole(True)
        wait_for(lambda: b.is_serving("example"), what="b takes over")
        gate.stop()
        assert gate.overlaps == [] and rec.overlaps == []
        assert actl.running == set()
        assert rec.events.index(("127.0.0.1:11111", "off")) < rec.events.index(("127.0.0.1:22222", "on"))
        proxy.blackhole(False)
        wait_for(lambda: asession.connected, what="a reconnects")
        node = paths.destination_cluster_node("example", "127.0.0.1:11111")
        wait_for(lambda: admin.exists(node), what="a registered again on its new session")
        wait_for(lambda: admin.exists(paths.server_cluster_node("127.0.0.1:11111")), what="server node back")
        assert not a.is_serving("example")
        assert running_owner(admin) == "127.0.0.1:22222"
    finally:
        proxy.stop()
