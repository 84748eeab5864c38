"""End-to-end test support: an in-process canal-server for one MariaDB database plus canal-adapter node(s).

Small API (tests/ is on ``sys.path``, so ``from pipeline import ...``)::

    with canal_server(tmp_path, mysql_db) as server:            # filter: that database only
        with adapter_node(tmp_path / "conf", server, canal_conf, mappings={"rdb/t.yml": "..."}) as node:
            ...  # write to MariaDB, then wait_until(...) on the target

    with pipeline(tmp_path, mysql_db, canal_conf, mappings) as p:   # both at once; p.server, p.node

- ``canal_conf`` is the ``canal.conf`` mapping of application.yml. ``consumerProperties``
  ``canal.tcp.server.host`` is filled in with the server's address unless given; ``server.port`` is 0
  (any free port); ``canalAdapters`` defaults to instance ``example`` with one group ``g1`` and a
  ``logger`` writer. Mapping files are ``{"<writer folder>/<file>.yml": yaml text}``.
- Writers ``recording``, ``recording_mapped`` and ``failing`` (``adapter.testing``) are available by
  name in addition to every installed entry point.
- The server starts from the database's current binlog position, so create tables before or after:
  only changes made after ``canal_server`` returned are delivered.
"""

from __future__ import annotations

import contextlib
import random
import socket
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).parent))
import services

from adapter.node.app import AdapterNode
from adapter.node.configload import load_config
from adapter.testing import FailingWriter, RecordingMappedWriter, RecordingWriter, wait_until
from adapter.writers.registry import WriterRegistry

TEST_WRITERS = {"recording": RecordingWriter, "recording_mapped": RecordingMappedWriter, "failing": FailingWriter}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerHandle:
    """A running in-process canal-server: ``address`` is ``127.0.0.1:<port>``."""

    server: Any
    conf_dir: Path
    destination: str
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop()


def write_server_conf(base: Path, database: str, *, destination: str = "example", port: int | None = None,
                      zk_hosts: str | None = None, extra: Mapping[str, str] | None = None) -> tuple[Path, int]:
    """canal's server conf layout under ``base/server-conf`` for ``database`` (file meta, or ZooKeeper meta)."""
    conf = base / "server-conf"
    (conf / destination).mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    props = {
        "canal.ip": "127.0.0.1",
        "canal.port": str(port),
        "canal.metrics.pull.port": str(free_port()),
        "canal.destinations": destination,
        "canal.conf.dir": str(conf),
        "canal.file.data.dir": str(base / "server-data"),
        "canal.instance.global.spring.xml": "classpath:spring/"
                                            + ("default-instance.xml" if zk_hosts else "file-instance.xml"),
        "canal.file.flush.period": "200",
        **({"canal.zkServers": zk_hosts, "canal.zookeeper.flush.period": "200"} if zk_hosts else {}),
        **(extra or {}),
    }
    (conf / "canal.properties").write_text("".join(f"{k} = {v}\n" for k, v in props.items()))
    db = services.MARIADB_REPL
    inst = {
        "canal.instance.master.address": f"{db['host']}:{db['port']}",
        "canal.instance.dbUsername": str(db["user"]),
        "canal.instance.dbPassword": str(db["password"]),
        "canal.instance.mysql.slaveId": str(random.randint(10_000, 2_000_000_000)),
        "canal.instance.connectionCharset": "UTF-8",
        "canal.instance.filter.regex": f"{database}\\\\..*",
    }
    (conf / destination / "instance.properties").write_text("".join(f"{k} = {v}\n" for k, v in inst.items()))
    return conf, port


def _launch_server(conf: Path) -> Any:
    """Start the runtime engineer's server in-process from a conf dir; returns an object with ``stop()``."""
    from adapter.server.config import load_config as load_server_config
    from adapter.server.runtime import CanalServer

    server = CanalServer(load_server_config(conf))
    server.start()
    return server


@contextlib.contextmanager
def canal_server(base: Path, database: str, *, destination: str = "example", zk_hosts: str | None = None,
                 port: int | None = None) -> Iterator[ServerHandle]:
    """A canal-server serving ``destination`` for ``database`` on a free port; stopped on exit."""
    conf, port = write_server_conf(base, database, destination=destination, port=port, zk_hosts=zk_hosts)
    handle = ServerHandle(_launch_server(conf), conf, destination, port)
    try:
        # With ZooKeeper the instance starts after the election; either way, only return once it runs
        # (its binlog start position is then fixed, so every later change is delivered).
        wait_until(lambda: handle.server.embedded is not None and handle.server.embedded.is_running(destination),
                   timeout=60, what=f"canal-server instance {destination} running")
        yield handle
    finally:
        handle.stop()


def application_yml(canal_conf: Mapping[str, Any], server: ServerHandle | None) -> dict[str, Any]:
    cc: dict[str, Any] = {"canalAdapters": [{"instance": server.destination if server else "example",
                                             "groups": [{"groupId": "g1", "outerAdapters": [{"name": "logger"}]}]}],
                          **canal_conf}
    props = dict(cc.get("consumerProperties") or {})
    if server is not None and not props.get("canal.tcp.server.host") and not props.get("canal.tcp.zookeeper.hosts"):
        props["canal.tcp.server.host"] = server.address
    cc["consumerProperties"] = props
    cc.setdefault("retries", -1)
    return {"server": {"port": 0, "address": "127.0.0.1"}, "canal.conf": cc}


@contextlib.contextmanager
def adapter_node(conf_dir: Path, server: ServerHandle | None, canal_conf: Mapping[str, Any],
                 mappings: Mapping[str, str] | None = None, *, node_id: str | None = None,
                 **node_options: Any) -> Iterator[AdapterNode]:
    """An adapter node (REST on a free port) from a ``canal.conf`` mapping and mapping files; stopped on exit."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    app = application_yml(canal_conf, server)
    app["canal.conf"].setdefault("nodeId", node_id or f"node-{uuid.uuid4().hex[:6]}")
    (conf_dir / "application.yml").write_text(yaml.safe_dump(app, sort_keys=False, allow_unicode=True))
    for rel, text in (mappings or {}).items():
        p = conf_dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    node_options.setdefault("registry", WriterRegistry(extra=TEST_WRITERS))
    node_options.setdefault("advertise_host", "127.0.0.1")
    node = AdapterNode(load_config(conf_dir), **node_options)
    node.start()
    try:
        yield node
    finally:
        node.stop()


@dataclass
class Pipeline:
    server: ServerHandle
    node: AdapterNode


@contextlib.contextmanager
def pipeline(base: Path, database: str, canal_conf: Mapping[str, Any], mappings: Mapping[str, str] | None = None,
             *, destination: str = "example", **node_options: Any) -> Iterator[Pipeline]:
    """``canal_server`` + ``adapter_node`` (conf dir ``base/adapter-conf``)."""
    with canal_server(base, database, destination=destination) as server, \
            adapter_node(base / "adapter-conf", server, canal_conf, mappings, **node_options) as node:
        yield Pipeline(server, node)
