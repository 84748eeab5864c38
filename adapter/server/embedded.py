"""EmbeddedServer: the destinations' instances in this process (canal's CanalServerWithEmbedded).

It implements ``InstanceController`` for a ``RunningPolicy`` and serves the session's requests.
Every request checks ``policy.is_serving(dest)`` and that the instance runs here, else it fails
with canal's "destination:X should start first". ``StandalonePolicy`` is the policy without
ZooKeeper: non-lazy destinations start at boot, lazy ones on their first SUB.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from adapter.errors import ConfigError, ProtocolError
from adapter.server.config import InstanceConfig, ServerConfig
from adapter.server.contracts import ClientIdentity, InstanceController, MetaManager, RunningPolicy
from adapter.server.events import Event
from adapter.server.instance import (
    CanalInstance,
    ParserFactory,
    SourceCheck,
    default_parser_factory,
    default_source_check,
)
from adapter.server.meta import FileMetaManager, MemoryMetaManager

log = logging.getLogger(__name__)

MetaFactory = Callable[[InstanceConfig], tuple[MetaManager, bool]]  # (manager, owned by the instance)


def default_meta_factory(shared_zk_meta: MetaManager | None = None) -> MetaFactory:
    """file → FileMetaManager, memory → MemoryMetaManager, zookeeper → the shared ZkMetaManager."""

    def make(cfg: InstanceConfig) -> tuple[MetaManager, bool]:
        if cfg.meta_kind == "file":
            return FileMetaManager(cfg.data_dir, cfg.destination, cfg.source, cfg.file_flush_period_ms), True
        if cfg.meta_kind == "memory":
            return MemoryMetaManager(cfg.destination), True
        if shared_zk_meta is None:
            raise RuntimeError(f"destination {cfg.destination}: ZooKeeper meta requested but not wired")
        return shared_zk_meta, False

    return make


class EmbeddedServer:
    """Holds the running instances; thread-safe."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        meta_factory: MetaFactory | None = None,
        parser_factory: ParserFactory = default_parser_factory,
        source_check: SourceCheck | None = default_source_check,
    ) -> None:
        self.config = config
        self._meta_factory = meta_factory or default_meta_factory()
        self._parser_factory = parser_factory
        self._source_check = source_check
        self._instances: dict[str, CanalInstance] = {}
        self._locks = {d: threading.Lock() for d in config.instances}
        self._lock = threading.Lock()
        self.policy: RunningPolicy | None = None

    def start(self, policy: RunningPolicy) -> None:
        self.policy = policy
        policy.start(self, list(self.config.destinations), self.config.lazy)

    def stop(self) -> None:
        """Stop the policy (which stops what it started), then anything still running."""
        if self.policy is not None:
            self.policy.stop()
        for dest in list(self._instances):
            self.stop_instance(dest)

    # ------------------------------------------------------------ InstanceController
    def start_instance(self, destination: str) -> None:
        cfg = self.config.instances.get(destination)
        if cfg is None:
            raise ProtocolError(f"destination:{destination} is not configured (canal.destinations)")
        with self._locks[destination]:
            if destination in self._instances:
                return
            meta, owned = self._meta_factory(cfg)
            inst = CanalInstance(cfg, meta, own_meta=owned, parser_factory=self._parser_factory,
                                 source_check=self._source_check)
            inst.start()
            with self._lock:
                self._instances[destination] = inst

    def stop_instance(self, destination: str) -> None:
        lock = self._locks.get(destination)
        if lock is None:
            return
        with lock:
            with self._lock:
                inst = self._instances.pop(destination, None)
            if inst is not None:
                inst.stop()

    def is_running(self, destination: str) -> bool:
        with self._lock:
            return destination in self._instances

    def instance(self, destination: str) -> CanalInstance | None:
        with self._lock:
            return self._instances.get(destination)

    def running(self) -> dict[str, CanalInstance]:
        with self._lock:
            return dict(self._instances)

    # ------------------------------------------------------------ requests
    def _serving(self, destination: str) -> CanalInstance:
        policy = self.policy
        inst = self.instance(destination)
        if inst is None or policy is None or not policy.is_serving(destination):
            raise ProtocolError(f"destination:{destination} should start first")
        return inst

    def subscribe(self, client: ClientIdentity) -> None:
        if client.destination not in self.config.instances:
            raise ProtocolError(f"destination:{client.destination} should start first")
        if not self.is_running(client.destination) and self.policy is not None:
            self.policy.on_subscribe(client.destination)  # lazy start (standalone) or election (HA)
        self._serving(client.destination).subscribe(client)

    def unsubscribe(self, client: ClientIdentity) -> None:
        if self._serving(client.destination).unsubscribe(client) and self.policy is not None:
            self.policy.on_last_unsubscribe(client.destination)

    def get(self, client: ClientIdentity, fetch_size: int, timeout: float | None,
            cancel: Callable[[], bool] | None = None) -> tuple[int, list[Event]]:
        return self._serving(client.destination).get(client, fetch_size, timeout, cancel)

    def ack(self, client: ClientIdentity, batch_id: int) -> None:
        self._serving(client.destination).ack(client, batch_id)

    def rollback(self, client: ClientIdentity, batch_id: int) -> None:
        self._serving(client.destination).rollback(client, batch_id)


class StandalonePolicy:
    """RunningPolicy without ZooKeeper: this server always serves its destinations."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._controller: InstanceController | None = None

    def start(self, controller: InstanceController, destinations: list[str], lazy: bool) -> None:
        self._controller = controller
        for dest in destinations:
            if not self.config.instances[dest].lazy:
                controller.start_instance(dest)  # at boot a bad config stops the server (exit 2)

    def _start(self, dest: str) -> None:
        assert self._controller is not None
        try:
            self._controller.start_instance(dest)
        except Exception as e:  # a failed lazy start must not take the server or other destinations down
            log.error("instance failed to start", extra={"destination": dest, "error": str(e)},
                      exc_info=not isinstance(e, ProtocolError | ConfigError))

    def on_subscribe(self, destination: str) -> None:
        if self._controller is not None and not self._controller.is_running(destination):
            self._start(destination)

    def on_last_unsubscribe(self, destination: str) -> None:
        # canal stops the instance; we keep a non-lazy one parsing (a lazy one stops until the next SUB)
        cfg = self.config.instances.get(destination)
        if cfg is not None and cfg.lazy and self._controller is not None:
            self._controller.stop_instance(destination)

    def is_serving(self, destination: str) -> bool:
        return destination in self.config.instances

    def stop(self) -> None:
        if self._controller is not None:
            for dest in self.config.destinations:
                self._controller.stop_instance(dest)
