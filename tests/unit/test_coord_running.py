"""RunningMonitor rules with an in-memory ZooKeeper and a manual clock: delays, release, session events."""

from __future__ import annotations

import sys
from pathlib import Path

from adapter.coordination import paths
from adapter.coordination.running import RunningMonitor
from adapter.coordination.session import ZkSession

sys.path.insert(0, str(Path(__file__).parent))
from test_coord_fakezk import FakeZk, FakeZkServer, ManualScheduler

PATH = paths.server_running("example")


class Party:
    def __init__(self, server: FakeZkServer, sched: ManualScheduler, name: str, delay: float = 5.0) -> None:
        self.name = name
        self.zk: FakeZk = server.client()
        self.session = ZkSession(self.zk, spawn=lambda fn, name: fn())
        self.events: list[str] = []
        self.gate_open = True
        self.fail_start = False
        self.monitor = RunningMonitor(
            self.session,
            PATH,
            paths.ServerRunningData(name).to_json(),
            address=name,
            scheduler=sched,
            on_active=self._on,
            on_inactive=lambda: self.events.append("off"),
            delay_s=delay,
            gate=lambda: self.gate_open,
        )

    def _on(self) -> None:
        if self.fail_start:
            raise RuntimeError("instance failed to start")
        self.events.append("on")


def setup(delay_b: float = 5.0) -> tuple[FakeZkServer, ManualScheduler, Party, Party]:
    server, sched = FakeZkServer(), ManualScheduler()
    a, b = Party(server, sched, "a:1"), Party(server, sched, "b:1", delay_b)
    a.monitor.start()
    sched.run()
    b.monitor.start()
    sched.run()
    return server, sched, a, b


def owner(server: FakeZkServer) -> str | None:
    node = server.nodes.get(PATH)
    return paths.ServerRunningData.from_json(node[0]).address if node else None


def test_creator_is_active_other_is_standby_with_active_data() -> None:
    server, _, a, b = setup()
    assert a.monitor.is_active() and a.events == ["on"]
    assert not b.monitor.is_active() and b.events == []
    assert b.monitor.wait_decided(0)
    assert b.monitor.active_data == b'{"active":true,"address":"a:1"}'
    assert server.nodes[PATH][1].ephemeralOwner == a.zk.session


def test_others_wait_the_delay_after_the_owner_dies() -> None:
    server, sched, a, b = setup()
    a.zk.crash()
    sched.run()
    assert owner(server) is None
    sched.advance(4.9)
    assert not b.monitor.is_active()
    sched.advance(0.2)
    assert b.monitor.is_active() and owner(server) == "b:1"


def test_expired_owner_that_did_not_release_competes_at_once() -> None:
    server, sched, a, b = setup()
    a.zk.expire()  # SUSPENDED, ephemerals gone, LOST, new session
    sched.run()
    assert a.events == ["on", "off", "on"]
    assert owner(server) == "a:1" and server.nodes[PATH][1].ephemeralOwner == a.zk.session
    sched.advance(10)
    assert not b.monitor.is_active() and b.events == []


def test_suspend_closes_the_gate_synchronously_and_resume_holds_again() -> None:
    _server, sched, a, b = setup()
    a.zk.suspend()
    assert not a.monitor.is_active()  # before the scheduler ran anything
    sched.run()
    assert a.events == ["on", "off"]
    a.zk.resume()
    sched.run()
    assert a.events == ["on", "off", "on"] and a.monitor.is_active()
    sched.advance(10)
    assert b.events == []


def test_release_stops_first_then_lets_others_go_first() -> None:
    server, sched, a, b = setup(delay_b=1.0)
    a.monitor.release()
    assert a.events == ["on", "off"] and owner(server) is None
    sched.advance(1.0)
    assert b.monitor.is_active()
    sched.advance(10)
    assert a.events == ["on", "off"]  # a's delayed attempt found b's node


def test_release_alone_takes_it_back_after_the_delay() -> None:
    server, sched, a, b = setup()
    b.monitor.stop()
    a.monitor.release()
    sched.advance(4.9)
    assert owner(server) is None
    sched.advance(0.2)
    assert a.monitor.is_active() and a.events == ["on", "off", "on"]


def test_active_false_naming_us_releases() -> None:
    server, sched, a, _b = setup()
    admin = server.client()
    admin.set(PATH, paths.ServerRunningData("a:1", active=False).to_json())
    sched.run()
    assert a.events == ["on", "off"] and owner(server) is None


def test_node_recreated_by_another_makes_us_inactive() -> None:
    server, sched, a, _b = setup(delay_b=0.0)
    # The owner's node vanishes and someone else's appears before we look (we never see the gap).
    admin = server.client()
    del server.nodes[PATH]
    admin.create(PATH, paths.ServerRunningData("c:1").to_json(), ephemeral=True)
    sched.run()
    assert a.events == ["on", "off"] and not a.monitor.is_active()


def test_gate_closed_means_no_attempt_and_poke_applies_changes() -> None:
    server, sched = FakeZkServer(), ManualScheduler()
    a = Party(server, sched, "a:1")
    a.gate_open = False
    a.monitor.start()
    sched.run()
    assert owner(server) is None and a.monitor.wait_decided(0)
    a.gate_open = True
    a.monitor.poke()
    sched.run()
    assert a.monitor.is_active()
    a.gate_open = False
    a.monitor.poke()
    sched.run()
    assert a.events == ["on", "off"] and owner(server) is None
    sched.advance(60)
    assert owner(server) is None


def test_on_active_failure_gives_the_node_up() -> None:
    server, sched = FakeZkServer(), ManualScheduler()
    a = Party(server, sched, "a:1")
    a.fail_start = True
    a.monitor.start()
    sched.run()
    assert not a.monitor.is_active() and owner(server) is None
    a.fail_start = False
    sched.advance(5)
    assert a.monitor.is_active()


def test_stop_deletes_own_node_and_stays_out() -> None:
    server, sched, a, b = setup(delay_b=1.0)
    a.monitor.stop()
    assert a.events == ["on", "off"]
    sched.advance(1)
    assert b.monitor.is_active()
    b.monitor.stop()
    sched.advance(60)
    assert owner(server) is None and a.events == ["on", "off"]


def test_update_data_rewrites_our_node() -> None:
    server, sched, a, _ = setup()
    a.monitor.update_data(paths.ClientRunningData("10.1.1.1:5555", 1001).to_json())
    sched.run()
    assert server.nodes[PATH][0] == b'{"active":true,"address":"10.1.1.1:5555","clientId":1001}'
    assert a.monitor.is_active()
