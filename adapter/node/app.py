"""The composition root: builds one adapter node (writers, mappings, router, switch, workers, REST) from config.

Only this module knows every part; each part gets what it needs through its constructor. Startup
errors are ``ConfigError`` naming the file and key (``main`` turns them into exit code 2).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from adapter.errors import ConfigError
from adapter.node.configload import AppConfig, TaskSpec
from adapter.node.deadletter import DeadLetters
from adapter.node.etl import EtlLocks, EtlService
from adapter.node.mappings import MappingStore, WriterSlot
from adapter.node.metrics import NodeMetrics
from adapter.node.placement import LeasePlacement, LocalPlacement, Placement
from adapter.node.router import MappingReloader, Router, apply_bindings
from adapter.node.source import SourceFactory, batch_size, tcp_source_factory
from adapter.node.worker import Backoff, Switch, Worker, WorkerSettings
from adapter.writers.base import WriterConfig, WriterContext
from adapter.writers.registry import WriterRegistry

log = logging.getLogger(__name__)


def _default_zk(hosts: str) -> Any:
    from adapter.coordination.session import ZkSession

    return ZkSession.connect(hosts)


class AdapterNode:
    """One canal-adapter process (or one of several in a test process). Implements ``rest.NodeApi``."""

    def __init__(
        self,
        cfg: AppConfig,
        *,
        registry: WriterRegistry | None = None,
        source_factory: SourceFactory | None = None,
        zk_factory: Callable[[str], Any] | None = None,
        mapping_poll_s: float = 3.0,
        rest: bool = True,
        rest_port: int | None = None,
        advertise_host: str | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
        env: Mapping[str, str] | None = None,
        balancer_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.node_id = cfg.node_id
        self.registry = registry or WriterRegistry()
        self.metrics_ = NodeMetrics()
        self.clock = clock
        self.backoff = backoff or Backoff()
        self._zk_factory = zk_factory or _default_zk
        self._rest_enabled = rest
        self._rest_port = cfg.server.port if rest_port is None else rest_port
        self._advertise_host = advertise_host
        self._balancer_options = dict(balancer_options or {})
        self._workers: dict[str, Worker] = {}
        self._wlock = threading.Lock()
        self._server: Any = None
        self._server_thread: threading.Thread | None = None
        self.session: Any = None
        self.rest_address = ""
        self.context = WriterContext(data_sources=cfg.data_sources, conf_dir=cfg.conf_dir, clock=clock)
        self.slots = self._build_writers()
        self.store = MappingStore(cfg.conf_dir, self.slots, self.context, env)
        self.store.load_all()
        self.router = Router(self.slots)
        apply_bindings(self.store, self.router)
        self.reloader = MappingReloader(self.store, self.router, mapping_poll_s)
        self.source_factory = source_factory or tcp_source_factory(cfg)
        self.settings = WorkerSettings(
            batch_size=batch_size(cfg), timeout_ms=cfg.canal.poll_timeout_ms,
            sync_batch_size=cfg.canal.sync_batch_size or 1000, attempts=cfg.canal.attempts,
            on_exhausted=cfg.canal.on_exhausted)
        self.dead_letters = DeadLetters(cfg.dead_letter_dir, clock)
        self._opened: set[int] = set()
        self.switch: Switch
        self.locks: EtlLocks
        self.placement: Placement
        self.etl: EtlService

    # ------------------------------------------------------------ build
    def _build_writers(self) -> list[WriterSlot]:
        slots = []
        for task in self.cfg.tasks:
            for spec in task.writers:
                try:
                    cls = self.registry.load(spec.name)
                except ConfigError as e:
                    raise ConfigError(str(e), source=self.cfg.file, key=f"{spec.key_path}.name") from e
                wc = WriterConfig(spec.name, spec.key if spec.keyed else None, spec.hosts, spec.properties,
                                  task.destination, task.group_id)
                try:
                    writer = cls(wc, self.context)
                except ConfigError as e:
                    raise _located(e, self.cfg.file, spec.key_path) from e
                slots.append(WriterSlot(writer, spec, task))
        return slots

    def _open_writers(self, task: TaskSpec | None = None) -> None:
        """Connect writers (of ``task``, or all). ConfigError → bad settings; other errors → retried later."""
        for s in self.slots:
            if (task is not None and s.task is not task) or id(s.writer) in self._opened:
                continue
            try:
                s.writer.open()
            except ConfigError as e:
                raise _located(e, self.cfg.file, s.spec.key_path) from e
            self._opened.add(id(s.writer))

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Connect coordination, open writers, start REST and the tasks. Raises ConfigError on bad settings."""
        zk_hosts = self.cfg.canal.zookeeper_hosts
        if zk_hosts:
            from adapter.coordination.etl_lock import ZkEtlLock
            from adapter.coordination.switch import ZkSwitch

            self.session = self._zk_factory(zk_hosts)
            self.switch = ZkSwitch(self.session)
            self.locks = ZkEtlLock(self.session, self.node_id)
        else:
            from adapter.coordination.etl_lock import LocalEtlLock
            from adapter.coordination.switch import LocalSwitch

            self.switch = LocalSwitch()
            self.locks = LocalEtlLock()
        for s in self.slots:  # a target that is down now is retried by its worker
            try:
                self._open_writers(s.task)
            except ConfigError:
                raise
            except Exception as e:
                log.warning("writer not reachable yet; its worker will retry", extra={
                    "writer": s.name, "key": s.spec.key, "error": f"{type(e).__name__}: {e}"})
        if self._rest_enabled:
            self._start_rest()
        host = self._advertise_host or self.cfg.server.advertise_address or _host_ip(self.cfg.server.address)
        self.rest_address = f"{host}:{self._bound_port()}"
        if zk_hosts:
            self.placement = LeasePlacement(self.session, self.node_id, self.rest_address, self.cfg.tasks,
                                            self._start_task, self._stop_task, **self._balancer_options)
        else:
            self.placement = LocalPlacement(self.cfg.tasks, self._start_task, self._stop_task)
        self.etl = EtlService(self.store, self.locks, self.placement)
        self.reloader.start()
        self.placement.start()
        log.info("canal-adapter node started", extra={"node": self.node_id, "rest": self.rest_address,
                                                      "tasks": len(self.cfg.tasks), "zookeeper": bool(zk_hosts)})

    def stop(self) -> None:
        """Stop tasks (each finishes or rolls back its batch), then REST, writers and ZooKeeper."""
        placement = getattr(self, "placement", None)
        if placement is not None:
            placement.stop()
        with self._wlock:
            workers = list(self._workers.values())
            self._workers.clear()
        for w in workers:
            w.stop()
        self.reloader.stop()
        if self._server is not None:
            self._server.should_exit = True
            if self._server_thread is not None:
                self._server_thread.join(timeout=30)
        for s in self.slots:
            try:
                s.writer.close()
            except Exception as e:
                log.warning("writer close failed", extra={"writer": s.name, "error": str(e)})
        if self.session is not None:
            stop = getattr(self.session, "close", None) or getattr(self.session, "stop", None)
            if stop is not None:
                stop()
        log.info("canal-adapter node stopped", extra={"node": self.node_id})

    def _start_task(self, task: TaskSpec) -> None:
        worker = Worker(task, self.source_factory(task), self.router, self.switch, settings=self.settings,
                        backoff=self.backoff, dead_letters=self.dead_letters, metrics=self.metrics_,
                        clock=self.clock, prepare=lambda: self._open_writers(task))
        with self._wlock:
            old = self._workers.pop(task.task_id, None)
            self._workers[task.task_id] = worker
        if old is not None:
            old.stop()
        worker.start()

    def _stop_task(self, task: TaskSpec) -> None:
        with self._wlock:
            worker = self._workers.pop(task.task_id, None)
        if worker is not None:
            worker.stop()

    # ------------------------------------------------------------ REST
    def _start_rest(self) -> None:
        import uvicorn

        from adapter.node.rest import create_app

        config = uvicorn.Config(create_app(self), host=self.cfg.server.address, port=self._rest_port,
                                log_config=None, access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # main owns signals
        self._server_thread = threading.Thread(target=self._server.run, name="rest", daemon=True)
        self._server_thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._server_thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"cannot serve REST on {self.cfg.server.address}:{self._rest_port} "
                                  f"(port in use?)", source=self.cfg.file, key="server.port")
            time.sleep(0.05)

    def _bound_port(self) -> int:
        if self._server is not None and self._server.servers:
            return int(self._server.servers[0].sockets[0].getsockname()[1])
        return self._rest_port

    # ------------------------------------------------------------ NodeApi
    def destinations(self) -> list[str]:
        return self.cfg.destinations

    def workers(self) -> dict[str, Worker]:
        with self._wlock:
            return dict(self._workers)

    def health(self) -> dict[str, Any]:
        zk_ok = self.session is None or bool(getattr(getattr(self.session, "client", self.session),
                                                     "connected", True))
        held = self.placement.held() if hasattr(self, "placement") else []
        workers = self.workers()
        dead = [t for t, w in workers.items() if not w.alive]
        return {"status": "ok" if zk_ok and not dead else "degraded", "node": self.node_id,
                "rest": self.rest_address, "zookeeper": None if self.session is None else zk_ok,
                "tasks": held, "stoppedWorkers": dead,
                "pausedTasks": sorted(t for t, w in workers.items() if w.paused),
                "destinations": {d: ("on" if self.switch.is_on(d) else "off") for d in self.destinations()}}

    def metrics(self) -> bytes:
        return self.metrics_.render()


def _located(e: ConfigError, file: str, key_path: str) -> ConfigError:
    """A writer's ConfigError placed in application.yml (its key becomes relative to the writer's entry)."""
    if e.source:
        return e
    msg = str(e)
    if e.key:
        msg = msg.removeprefix(f"key '{e.key}': ")
    return ConfigError(msg, source=file, key=f"{key_path}.{e.key}" if e.key else key_path)


def _host_ip(bind: str) -> str:
    if bind not in ("0.0.0.0", "::", ""):
        return bind
    try:  # the address other hosts reach us on (no packet is sent)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"
