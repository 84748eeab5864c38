"""RunningMonitor on real ZooKeeper (standalone and the 3-node ensemble): canal's election rules,
release, and the no-split-brain guarantee on session loss."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from adapter.coordination import paths
from adapter.coordination.running import RunningMonitor
from adapter.coordination.scheduler import ThreadScheduler
from adapter.coordination.session import ZkSession

sys.path.insert(0, str(Path(__file__).parent))
from test_coord_support import GateWatcher, Recorder, TcpProxy, wait_for

PATH = paths.server_running("example")


@pytest.fixture(params=["standalone", "ensemble"])
def hosts(request: pytest.FixtureRequest) -> str:
    name = "zk_chroot" if request.param == "standalone" else "zk_ensemble_chroot"
    return str(request.getfixturevalue(name))


class Party:
    def __init__(self, hosts: str, name: str, rec: Recorder, delay_s: float, timeout_s: float = 2.0) -> None:
        self.name = name
        self.session = ZkSession.connect(hosts, timeout_s=timeout_s)
        self.scheduler = ThreadScheduler(name).start()
        self.monitor = RunningMonitor(
            self.session,
            PATH,
            paths.ServerRunningData(name).to_json(),
            address=name,
            scheduler=self.scheduler,
            on_active=rec.active(name),
            on_inactive=rec.inactive(name),
            delay_s=delay_s,
        )

    def close(self) -> None:
        self.monitor.stop()
        self.scheduler.stop()
        self.session.close()


@pytest.fixture
def world(hosts: str) -> Iterator[dict[str, Any]]:
    rec = Recorder()
    admin = KazooClient(hosts=hosts, timeout=4)
    admin.start(10)
    parties: list[Party] = []

    def make(name: str, delay_s: float, via: str | None = None, timeout_s: float = 2.0) -> Party:
        p = Party(via or hosts, name, rec, delay_s, timeout_s)
        parties.append(p)
        return p

    yield {"rec": rec, "admin": admin, "make": make, "hosts": hosts}
    for p in parties:
        p.close()
    admin.stop()
    admin.close()


def owner(admin: KazooClient) -> str | None:
    if not admin.exists(PATH):
        return None
    data, _ = admin.get(PATH)
    return paths.ServerRunningData.from_json(data).address


def test_first_wins_other_standby_then_takes_over(world: dict[str, Any]) -> None:
    rec, admin = world["rec"], world["admin"]
    a = world["make"]("10.0.0.1:11111", 0.2)
    a.monitor.start()
    wait_for(a.monitor.is_active, what="a active")
    b = world["make"]("10.0.0.2:11111", 0.2)
    b.monitor.start()
    assert b.monitor.wait_decided(30)
    assert not b.monitor.is_active()
    assert b.monitor.active_data == b'{"active":true,"address":"10.0.0.1:11111"}'
    data, stat = admin.get(PATH)
    assert data == b'{"active":true,"address":"10.0.0.1:11111"}'
    assert stat.ephemeralOwner == a.session.session_id

    a.monitor.stop()
    assert not a.monitor.is_active()
    wait_for(b.monitor.is_active, what="b takes over")
    assert owner(admin) == "10.0.0.2:11111"
    assert rec.overlaps == []
    assert rec.events == [("10.0.0.1:11111", "on"), ("10.0.0.1:11111", "off"), ("10.0.0.2:11111", "on")]


def test_previous_owner_that_did_not_release_competes_at_once(world: dict[str, Any]) -> None:
    rec, admin = world["rec"], world["admin"]
    a = world["make"]("a:1", 600)
    a.monitor.start()
    wait_for(a.monitor.is_active, what="a active")
    b = world["make"]("b:1", 600)  # a standby that would wait ten minutes
    b.monitor.start()
    assert b.monitor.wait_decided(30)
    admin.delete(PATH)  # e.g. an operator, or a hiccup: the owner did not release
    wait_for(lambda: rec.count("a:1", "on") == 2 and a.monitor.is_active(), what="a re-acquires at once")
    assert owner(admin) == "a:1"
    assert rec.count("b:1", "on") == 0


def test_release_lets_the_others_go_first(world: dict[str, Any]) -> None:
    rec, admin = world["rec"], world["admin"]
    a = world["make"]("a:1", 600)
    a.monitor.start()
    wait_for(a.monitor.is_active, what="a active")
    b = world["make"]("b:1", 0.2)
    b.monitor.start()
    assert b.monitor.wait_decided(30)
    a.monitor.release()
    assert not a.monitor.is_active()
    wait_for(b.monitor.is_active, what="b active after release")
    assert owner(admin) == "b:1"
    assert rec.events.index(("a:1", "off")) < rec.events.index(("b:1", "on"))
    assert rec.overlaps == []


def test_release_alone_takes_it_back_after_the_delay(world: dict[str, Any]) -> None:
    rec = world["rec"]
    a = world["make"]("a:1", 0.3)
    a.monitor.start()
    wait_for(a.monitor.is_active, what="a active")
    a.monitor.release()
    wait_for(lambda: rec.count("a:1", "on") == 2 and a.monitor.is_active(), what="a back after its delay")


def test_active_false_naming_the_owner_makes_it_release(world: dict[str, Any]) -> None:
    rec, admin = world["rec"], world["admin"]
    a = world["make"]("a:1", 600)
    a.monitor.start()
    wait_for(a.monitor.is_active, what="a active")
    admin.set(PATH, paths.ServerRunningData("a:1", active=False).to_json())
    wait_for(lambda: rec.count("a:1", "off") == 1, what="a released")
    wait_for(lambda: admin.exists(PATH) is None, what="node deleted")
    assert not a.monitor.is_active()


def test_session_expiry_stops_the_owner_before_the_standby_starts(world: dict[str, Any]) -> None:
    """A network partition (no FIN/RST) between the owner and ZooKeeper: the owner notices SUSPENDED
    and stops before ZooKeeper expires its session; the standby (delay 0: worst case) starts after."""
    rec, admin, hosts = world["rec"], world["admin"], world["hosts"]
    first, _, chroot = hosts.partition("/")
    h, _, p = first.split(",")[0].partition(":")
    proxy = TcpProxy(h, int(p))
    try:
        a = world["make"]("a:1", 0.0, via=f"{proxy.address}/{chroot}", timeout_s=2.0)
        a.monitor.start()
        wait_for(a.monitor.is_active, what="a active")
        b = world["make"]("b:1", 0.0)
        b.monitor.start()
        assert b.monitor.wait_decided(30)
        gate = GateWatcher({"a": a.monitor.is_active, "b": b.monitor.is_active})
        gate.start()
        proxy.blackhole(True)
        wait_for(b.monitor.is_active, what="b takes over after a's session expired")
        gate.stop()
        assert gate.overlaps == []
        assert rec.overlaps == []
        assert rec.events.index(("a:1", "off")) < rec.events.index(("b:1", "on"))
        proxy.blackhole(False)
        wait_for(lambda: a.session.connected, what="a reconnects (new session)")
        wait_for(lambda: a.monitor.active_data == b'{"active":true,"address":"b:1"}', what="a sees b as owner")
        assert not a.monitor.is_active()
        assert owner(admin) == "b:1"
    finally:
        proxy.stop()


def test_short_disconnect_same_session_holds_again_without_failover(world: dict[str, Any]) -> None:
    rec, admin, hosts = world["rec"], world["admin"], world["hosts"]
    first, _, chroot = hosts.partition("/")
    h, _, p = first.split(",")[0].partition(":")
    proxy = TcpProxy(h, int(p))
    try:
        a = world["make"]("a:1", 0.0, via=f"{proxy.address}/{chroot}", timeout_s=6.0)
        a.monitor.start()
        wait_for(a.monitor.is_active, what="a active")
        b = world["make"]("b:1", 0.0)
        b.monitor.start()
        assert b.monitor.wait_decided(30)
        sid = a.session.session_id
        proxy.drop_connections()  # connection drops (RST): SUSPENDED, then reconnect in the same session
        wait_for(lambda: rec.count("a:1", "off") == 1, what="a stops on SUSPENDED")
        wait_for(lambda: rec.count("a:1", "on") == 2 and a.monitor.is_active(), what="a holds again")
        assert a.session.session_id == sid
        assert admin.get(PATH)[1].ephemeralOwner == sid
        assert rec.count("b:1", "on") == 0
    finally:
        proxy.stop()
