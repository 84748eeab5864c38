"""ClusterCanalClient: server discovery, failover with rollback, stale-batch acks, retry window."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from adapter.client.cluster import ClusterCanalClient
from adapter.coordination import paths
from adapter.coordination.session import ZkSession
from adapter.errors import ProtocolError, RetriableError

sys.path.insert(0, str(Path(__file__).parent))
from test_coord_fakezk import FakeZkServer


class Servers:
    """Fake canal servers by address: batches count up per connection; some refuse."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, Any]] = []
        self.refuse: dict[str, int] = {}  # address -> how many more connects to refuse
        self.down: set[str] = set()

    def factory(self, host: str, port: int) -> Any:
        servers, addr = self, f"{host}:{port}"

        class Conn:
            next_id = 1

            def connect(self) -> None:
                if addr in servers.down:
                    raise RetriableError(f"cannot connect to {addr}")
                if servers.refuse.get(addr, 0) > 0:
                    servers.refuse[addr] -= 1
                    raise ProtocolError("destination:example should start first")
                servers.log.append((addr, "connect", None))

            def subscribe(self, filter: str | None = None) -> None:
                servers.log.append((addr, "subscribe", filter))

            def get_without_ack(self, batch_size: int, timeout_ms: int) -> tuple[int, list[Any]]:
                if addr in servers.down:
                    raise RetriableError("connection reset")
                bid, self.next_id = self.next_id, self.next_id + 1
                servers.log.append((addr, "get", bid))
                return bid, [f"{addr}#{bid}"]

            def ack(self, batch_id: int) -> None:
                servers.log.append((addr, "ack", batch_id))

            def rollback(self, batch_id: int = 0) -> None:
                servers.log.append((addr, "rollback", batch_id))

            def disconnect(self) -> None:
                servers.log.append((addr, "disconnect", None))

        return Conn()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, s: float) -> None:
        self.now += s


def setup(running: str | None = "10.0.0.1:11111", cluster: tuple[str, ...] = ("10.0.0.1:11111", "10.0.0.2:11111")):
    server = FakeZkServer()
    admin = server.client()
    for addr in cluster:
        admin.create(paths.destination_cluster_node("example", addr), b"", ephemeral=True, makepath=True)
    if running:
        admin.create(paths.server_running("example"), paths.ServerRunningData(running).to_json(), ephemeral=True)
    servers, clock = Servers(), Clock()
    client = ClusterCanalClient(
        ZkSession(server.client(), spawn=lambda fn, name: fn()),
        destination="example",
        connector_factory=servers.factory,
        sleep=clock.sleep,
        clock=lambda: clock.now,
    )
    return admin, servers, client, clock


def test_connects_to_the_running_server_and_follows_a_failover() -> None:
    admin, servers, client, _ = setup()
    client.connect()
    assert client.address == "10.0.0.1:11111"
    bid, entries = client.get_without_ack(100, -1)
    assert entries == ["10.0.0.1:11111#1"]
    client.ack(bid)
    old, _ = client.get_without_ack(100, -1)  # fetched, written, not yet acked when the failover happens
    admin.set(paths.server_running("example"), paths.ServerRunningData("10.0.0.2:11111").to_json())
    bid, entries = client.get_without_ack(100, -1)
    assert client.address == "10.0.0.2:11111" and entries == ["10.0.0.2:11111#1"]
    assert ("10.0.0.1:11111", "disconnect", None) in servers.log
    assert ("10.0.0.2:11111", "connect", None) in servers.log  # connect = subscribe + rollback(0)
    with pytest.raises(RetriableError, match="previous server connection"):
        client.ack(old)
    client.ack(bid)
    assert servers.log[-1] == ("10.0.0.2:11111", "ack", 1)


def test_no_runner_means_the_first_registered_server() -> None:
    _, _servers, client, _ = setup(running=None, cluster=("10.0.0.9:11111",))
    client.connect()
    assert client.address == "10.0.0.9:11111"


def test_should_start_first_is_retried_with_backoff() -> None:
    _, servers, client, clock = setup()
    servers.refuse["10.0.0.1:11111"] = 2
    client.connect()
    assert client.address == "10.0.0.1:11111" and clock.now > 0


def test_gives_up_after_the_retry_window() -> None:
    _, servers, client, clock = setup()
    servers.down.add("10.0.0.1:11111")
    with pytest.raises(RetriableError, match="connect on example failed"):
        client.connect()
    assert clock.now >= 30


def test_dead_runner_then_new_runner_during_a_get() -> None:
    admin, servers, client, _ = setup()
    client.connect()
    servers.down.add("10.0.0.1:11111")

    def failover(s: float) -> None:
        admin.set(paths.server_running("example"), paths.ServerRunningData("10.0.0.2:11111").to_json())

    client._sleep = failover
    _bid, entries = client.get_without_ack(10, -1)
    assert entries == ["10.0.0.2:11111#1"]


def test_rollback_without_connection_is_a_no_op_and_disconnect_is_idempotent() -> None:
    _, servers, client, _ = setup()
    client.rollback(0)
    client.connect()
    client.rollback(0)
    assert servers.log[-1] == ("10.0.0.1:11111", "rollback", 0)
    client.disconnect()
    client.disconnect()
    assert not client.connected
