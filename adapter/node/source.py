"""Where batches come from: the ``BatchSource`` seam and its canal TCP implementation (direct or via ZooKeeper).

``consumerProperties``: ``canal.tcp.server.host`` set → a direct ``CanalClient``; otherwise
``canal.tcp.zookeeper.hosts`` (or ``canal.conf.zookeeperHosts``) → a ``ClusterCanalClient`` that
follows the running server in ZooKeeper. Every fault surfaces as an exception from these calls;
the worker then disconnects, backs off and reconnects (the server re-delivers what was not acked).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from adapter.errors import ConfigError
from adapter.node.configload import AppConfig, TaskSpec
from adapter.protocol import EntryProtocol_pb2 as pb


class BatchSource(Protocol):
    """canal's CanalMsgConsumer with explicit batch ids."""

    def connect(self) -> None:
        """Connect and subscribe; the server then re-delivers everything not acked (rollback on connect)."""
        ...

    def get(self, batch_size: int, timeout_ms: int) -> tuple[int, list[pb.Entry]]:
        """``(batch_id, entries)``; ``(-1, [])`` when nothing arrived within ``timeout_ms``."""
        ...

    def ack(self, batch_id: int) -> None: ...

    def rollback(self) -> None:
        """Roll back everything not acked (the next get re-delivers it)."""
        ...

    def disconnect(self) -> None:
        """Close without unsubscribing (unsubscribing would drop the server-side cursor)."""
        ...


class ClientSource:
    """Adapts a canal client (``CanalClient`` or ``ClusterCanalClient``) to ``BatchSource``."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def connect(self) -> None:
        self.client.connect()

    def get(self, batch_size: int, timeout_ms: int) -> tuple[int, list[pb.Entry]]:
        batch_id, entries = self.client.get_without_ack(batch_size, timeout_ms)
        return int(batch_id), list(entries)

    def ack(self, batch_id: int) -> None:
        self.client.ack(batch_id)

    def rollback(self) -> None:
        self.client.rollback(0)

    def disconnect(self) -> None:
        self.client.disconnect()


SourceFactory = Callable[[TaskSpec], BatchSource]

SERVER_HOST = "canal.tcp.server.host"
ZK_HOSTS = "canal.tcp.zookeeper.hosts"
SO_TIMEOUT = "canal.tcp.so.timeout"


def batch_size(cfg: AppConfig) -> int:
    raw = cfg.canal.prop("canal.tcp.batch.size")
    try:
        return int(raw) if raw else 500
    except ValueError:
        raise ConfigError(f"expected an integer, got {raw!r}", source=cfg.file,
                          key="canal.conf.consumerProperties.canal.tcp.batch.size") from None


def so_timeout_s(cfg: AppConfig) -> float:
    """``canal.tcp.so.timeout`` (ms, new key; default 30000): a read waiting longer means a dead connection."""
    raw = cfg.canal.prop(SO_TIMEOUT)
    try:
        ms = int(raw) if raw else 30_000
        if ms <= 0:
            raise ValueError
    except ValueError:
        raise ConfigError(f"expected a positive number of milliseconds, got {raw!r}", source=cfg.file,
                          key=f"canal.conf.consumerProperties.{SO_TIMEOUT}") from None
    return ms / 1000.0


def tcp_source_factory(cfg: AppConfig) -> SourceFactory:
    """Build sources for ``cfg``'s tasks; ConfigError when neither a server nor ZooKeeper is configured."""
    so_timeout = so_timeout_s(cfg)
    host = cfg.canal.prop(SERVER_HOST)
    if host:
        h, _, p = host.rpartition(":")
        if not h or not p.isdigit():
            raise ConfigError(f"expected host:port, got {host!r}", source=cfg.file,
                              key=f"canal.conf.consumerProperties.{SERVER_HOST}")

        def direct(task: TaskSpec) -> BatchSource:
            from adapter.client.tcp import CanalClient

            return ClientSource(CanalClient(h, int(p), username=cfg.tcp_username, password=cfg.tcp_password,
                                            client_id=str(task.client_id), destination=task.destination,
                                            so_timeout=so_timeout))

        return direct
    zk_hosts = cfg.canal.prop(ZK_HOSTS) or cfg.canal.zookeeper_hosts
    if not zk_hosts:
        raise ConfigError(f"expected {SERVER_HOST} (ip:port) or {ZK_HOSTS} to find the canal server",
                          source=cfg.file, key=f"canal.conf.consumerProperties.{SERVER_HOST}")

    def cluster(task: TaskSpec) -> BatchSource:
        from adapter.client.cluster import ClusterCanalClient

        # A short retry window: the worker has its own reconnect loop with back-off and must stay stoppable.
        return ClientSource(ClusterCanalClient(zk_hosts, username=cfg.tcp_username, password=cfg.tcp_password,
                                               client_id=task.client_id, destination=task.destination,
                                               so_timeout=so_timeout, retry_window_s=5.0))

    return cluster
