"""Sync switch and ETL lock: local variants, and the ZooKeeper variants on the in-memory ZooKeeper."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from adapter.coordination import paths
from adapter.coordination.etl_lock import LocalEtlLock, ZkEtlLock, hold
from adapter.coordination.switch import LocalSwitch, Switch, ZkSwitch

sys.path.insert(0, str(Path(__file__).parent))
from test_coord_fakezk import FakeZkServer


def test_local_switch_defaults_on_and_waits() -> None:
    sw = LocalSwitch()
    stop = threading.Event()
    assert sw.is_on("example")
    assert sw.wait_on("example", stop, 0)
    sw.set("example", False)
    assert not sw.is_on("example") and sw.is_on("other")
    assert not sw.wait_on("example", stop, 0.05)
    threading.Timer(0.05, lambda: sw.set("example", True)).start()
    assert sw.wait_on("example", stop, 30)


def test_wait_on_returns_false_when_stopped() -> None:
    sw = LocalSwitch()
    sw.set("example", False)
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    assert not sw.wait_on("example", stop, None)


def test_zk_switch_node_and_sharing() -> None:
    server = FakeZkServer()
    a, b = ZkSwitch(server.client()), ZkSwitch(server.client())
    assert a.is_on("example") and b.is_on("example")  # missing node = on
    a.set("example", False)
    assert server.nodes[paths.sync_switch("example")][0] == b"off"
    assert not b.is_on("example")
    b.set("example", True)
    assert a.is_on("example") and server.nodes[paths.sync_switch("example")][0] == b"on"


@pytest.mark.parametrize("make", [LocalSwitch, lambda: ZkSwitch(FakeZkServer().client())])
def test_both_switches_satisfy_the_protocol(make: object) -> None:
    sw: Switch = make()  # type: ignore[operator]
    sw.set("d", False)
    assert not sw.is_on("d")


def test_local_etl_lock_refuses_a_second() -> None:
    locks = LocalEtlLock()
    assert locks.try_acquire("es7-example")
    assert not locks.try_acquire("es7-example")
    assert locks.try_acquire("rdb-example")
    locks.release("es7-example")
    with hold(locks, "es7-example") as got:
        assert got
        with hold(locks, "es7-example") as second:
            assert not second
    assert locks.try_acquire("es7-example")


def test_zk_etl_lock_refuses_across_clients_and_in_process() -> None:
    server = FakeZkServer()
    a, b = ZkEtlLock(server.client()), ZkEtlLock(server.client())
    assert a.try_acquire("es7-example")
    assert not a.try_acquire("es7-example")
    assert not b.try_acquire("es7-example")
    a.release("es7-example")
    assert b.try_acquire("es7-example")
    assert any(p.startswith(paths.sync_etl("es7", "example")) for p in server.nodes)
