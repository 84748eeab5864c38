"""CanalServer: wires config → (ZooKeeper) → embedded server + running policy → TCP listener → metrics.

With ``canal.zkServers`` set, the ZooKeeper HA policy (adapter.server.ha) decides which server runs a
destination, and default-instance destinations keep cursors in ZooKeeper (adapter.server.meta_zk);
both are imported only then. Without it, StandalonePolicy runs every destination here.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import TYPE_CHECKING, Any

from adapter.errors import ConfigError
from adapter.server.config import ServerConfig
from adapter.server.contracts import RunningPolicy
from adapter.server.embedded import EmbeddedServer, StandalonePolicy, default_meta_factory
from adapter.server.instance import ParserFactory, SourceCheck, default_parser_factory, default_source_check
from adapter.server.metrics import ServerMetrics
from adapter.server.netserver import CanalNetServer

if TYPE_CHECKING:
    from adapter.server.meta_zk import ZkMetaManager

log = logging.getLogger(__name__)


def _host_ip() -> str:
    with contextlib.suppress(OSError):
        return socket.gethostbyname(socket.gethostname())
    return "127.0.0.1"


class CanalServer:
    """The whole canal-server process. ``start()`` raises ConfigError for startup problems."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        parser_factory: ParserFactory = default_parser_factory,
        source_check: SourceCheck | None = default_source_check,
        zk_session_timeout_s: float | None = None,
    ) -> None:
        self.config = config
        self._parser_factory = parser_factory
        self._source_check = source_check
        self._zk_timeout = zk_session_timeout_s
        self.embedded: EmbeddedServer | None = None
        self.net: CanalNetServer | None = None
        self.metrics: ServerMetrics | None = None
        self.policy: RunningPolicy | None = None
        self._zk: Any = None
        self._zk_meta: ZkMetaManager | None = None

    @property
    def port(self) -> int:
        return self.net.port if self.net is not None else 0

    @property
    def address(self) -> str:
        return f"{self.config.register_ip or self.config.ip or _host_ip()}:{self.port}"

    def start(self) -> None:
        cfg = self.config
        try:
            if cfg.zk_servers:
                self._start_zk()
            self.embedded = EmbeddedServer(cfg, meta_factory=default_meta_factory(self._zk_meta),
                                           parser_factory=self._parser_factory, source_check=self._source_check)
            self.net = CanalNetServer(cfg, self.embedded)
            try:
                self.net.start()
            except OSError as e:
                raise ConfigError(f"cannot listen on {cfg.ip or '0.0.0.0'}:{cfg.port}: {e.strerror or e}",
                                  source=str(cfg.conf_dir / "canal.properties"), key="canal.port") from e
            if cfg.metrics_port is not None:
                self.metrics = ServerMetrics(self.embedded)
                self.net.metrics = self.metrics
                try:
                    self.metrics.serve(cfg.metrics_port, cfg.ip or "0.0.0.0")
                except OSError as e:
                    raise ConfigError(f"cannot listen on metrics port {cfg.metrics_port}: {e.strerror or e}",
                                      source=str(cfg.conf_dir / "canal.properties"),
                                      key="canal.metrics.pull.port") from e
            self.policy = self._make_policy()
            self.embedded.start(self.policy)
        except BaseException:
            self.stop()
            raise
        log.info("canal server started", extra={"address": self.address, "destinations": list(cfg.destinations),
                                                "ha": bool(cfg.zk_servers)})

    def _start_zk(self) -> None:
        from adapter.coordination.session import ZkSession
        from adapter.server.meta_zk import ZkMetaManager

        timeout_s = self._zk_timeout if self._zk_timeout is not None else self.config.zk_session_timeout_ms / 1000
        self._zk = ZkSession.connect(self.config.zk_servers, timeout_s=timeout_s)
        zk_dests = [d for d, i in self.config.instances.items() if i.meta_kind == "zookeeper"]
        if zk_dests:
            period = self.config.instances[zk_dests[0]].zk_flush_period_ms
            sources = {d: self.config.instances[d].source for d in zk_dests}
            meta = ZkMetaManager(self._zk, sources, period, destinations=zk_dests)
            meta.start()
            self._zk_meta = meta

    def _make_policy(self) -> RunningPolicy:
        if self._zk is None:
            return StandalonePolicy(self.config)
        from adapter.server.ha import ZkRunningPolicy

        return ZkRunningPolicy(self._zk, self.address, delay_s=self.config.zk_running_delay_ms / 1000,
                               meta=self._zk_meta)

    def stop(self) -> None:
        """Stop serving, stop the instances (flushing their meta), then close ZooKeeper and metrics."""
        steps: list[tuple[str, Any]] = [
            ("instances", self.embedded.stop if self.embedded is not None else None),
            ("listener", self.net.stop if self.net is not None else None),
            ("zookeeper meta", self._zk_meta.stop if self._zk_meta is not None else None),
            ("zookeeper", self._zk.close if self._zk is not None else None),
            ("metrics", self.metrics.stop if self.metrics is not None else None),
        ]
        for name, step in steps:
            if step is None:
                continue
            try:
                step()
            except Exception:  # keep stopping the rest; a failed flush is logged loudly
                log.exception("stopping %s failed", name)
        self.embedded = self.net = self.metrics = None
        self._zk = self._zk_meta = None
        log.info("canal server stopped")
