"""canal-server configuration: ``<conf>/canal.properties`` + ``<conf>/<destination>/instance.properties``.

Keys are read as canal reads them (instance.properties overrides canal.properties; the environment
overrides both, as canal's ``-e canal.x=...`` docker style). Unknown keys are ignored (debug log);
bad values raise ConfigError naming the file and key. Relative paths are resolved against the conf
directory (canal resolves them against its ``bin/`` working directory, so ``../conf`` is the conf dir).
"""

from __future__ import annotations

import logging
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from adapter.errors import ConfigError
from adapter.protocol.codec import DEFAULT_MAX_FRAME
from adapter.server.events import ParserSettings, SourceAddress
from adapter.server.properties import Layer, Properties, load_properties

log = logging.getLogger(__name__)

#: canal.instance.global.spring.xml basename → meta manager kind
META_KINDS = {"file-instance.xml": "file", "default-instance.xml": "zookeeper", "memory-instance.xml": "memory"}
#: Java charset names (connectionCharset) → MySQL charset names
_CHARSETS = {"utf-8": "utf8mb4", "utf8": "utf8mb4", "utf8mb4": "utf8mb4", "gbk": "gbk", "iso-8859-1": "latin1",
             "latin1": "latin1", "gb2312": "gb2312", "big5": "big5", "us-ascii": "ascii", "ascii": "ascii"}
#: keys this server reads (everything else in canal's files is accepted and ignored)
_USED_PREFIXES = ("canal.ip", "canal.register.ip", "canal.port", "canal.metrics.pull.port", "canal.user",
                  "canal.passwd", "canal.destinations", "canal.conf.dir", "canal.file.", "canal.zkServers",
                  "canal.zookeeper.", "canal.serverMode", "canal.server.", "canal.instance.memory.",
                  "canal.instance.get.ddl.isolation", "canal.instance.global.", "canal.instance.master.",
                  "canal.instance.gtidon", "canal.instance.dbUsername", "canal.instance.dbPassword",
                  "canal.instance.connectionCharset", "canal.instance.mysql.slaveId", "canal.instance.filter.regex",
                  "canal.instance.filter.black.regex", "canal.instance.destination")


@dataclass(frozen=True)
class InstanceConfig:
    """One destination's settings (store, meta, parser)."""

    destination: str
    source_file: str
    source: SourceAddress
    parser: ParserSettings
    meta_kind: str  # file | zookeeper | memory
    lazy: bool
    buffer_size: int
    memunit: int
    batch_mode: str
    data_dir: Path
    file_flush_period_ms: int
    zk_flush_period_ms: int

    @property
    def buffer_bytes(self) -> int:
        return self.buffer_size * self.memunit


@dataclass(frozen=True)
class ServerConfig:
    """The whole server: network, auth, ZooKeeper and the destinations."""

    conf_dir: Path
    ip: str
    register_ip: str
    port: int
    metrics_port: int | None
    user: str
    passwd: str  # hex SHA1(SHA1(password)), lower-case; "" = no password
    zk_servers: str
    max_frame: int
    auth_timeout_ms: int
    destinations: tuple[str, ...]
    lazy: bool = False  # canal.instance.global.lazy (the HA policy takes one flag for all)
    zk_session_timeout_ms: int = 10_000  # canal.zookeeper.session.timeout (ours; canal asks 90 s)
    zk_running_delay_ms: int = 5_000  # canal.zookeeper.running.delay (ours; canal's fixed 5 s)
    instances: dict[str, InstanceConfig] = field(default_factory=dict)


class _Reader:
    """Typed access to one Properties view with errors naming file and key."""

    def __init__(self, props: Properties) -> None:
        self.p = props

    def text(self, key: str, default: str = "") -> str:
        v = self.p.get(key)
        return default if v is None or v == "" else v

    def err(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, source=self.p.source_of(key), key=key)

    def integer(self, key: str, default: int | None, *, low: int | None = None) -> int | None:
        v = self.text(key)
        if v == "":
            return default
        try:
            n = int(v)
        except ValueError:
            raise self.err(key, f"expected an integer, got {v!r}") from None
        if low is not None and n < low:
            raise self.err(key, f"expected an integer >= {low}, got {n}")
        return n

    def req_int(self, key: str, default: int, *, low: int | None = None) -> int:
        n = self.integer(key, default, low=low)
        assert n is not None
        return n

    def boolean(self, key: str, default: bool) -> bool:
        v = self.text(key).lower()
        if v == "":
            return default
        if v not in ("true", "false"):
            raise self.err(key, f"expected true or false, got {v!r}")
        return v == "true"


def _path(conf_dir: Path, value: str) -> Path:
    p = Path(value)
    return (p if p.is_absolute() else conf_dir / p).resolve()


def _hostport(r: _Reader, key: str, default_port: int) -> SourceAddress:
    v = r.text(key)
    if not v:
        raise r.err(key, "expected host:port of the MySQL/MariaDB master")
    host, sep, port = v.rpartition(":")
    if not sep:
        return SourceAddress(v, default_port)
    if not port.isdigit() or not host:
        raise r.err(key, f"expected host:port, got {v!r}")
    return SourceAddress(host, int(port))


def _meta_kind(r: _Reader, key: str) -> str:
    v = r.text(key, "classpath:spring/file-instance.xml")
    base = re.split(r"[/:\\]", v)[-1]
    if base not in META_KINDS:
        raise r.err(key, f"unsupported instance spring xml {v!r}: expected one of {', '.join(META_KINDS)}")
    return META_KINDS[base]


def _charset(value: str) -> str:
    return _CHARSETS.get(value.lower(), value.lower().replace("-", ""))


def _warn_unknown(layer: Layer) -> None:
    for key in layer.values:
        if not key.startswith(_USED_PREFIXES):
            log.debug("ignoring unsupported key", extra={"file": layer.source, "key": key})


def load_instance(props: Properties, conf_dir: Path, destination: str, server: dict[str, object]) -> InstanceConfig:
    """Build one destination's config from ``<conf>/<destination>/instance.properties``."""
    path = conf_dir / destination / "instance.properties"
    layer = Layer(str(path), {**load_properties(path), "canal.instance.destination": destination})
    _warn_unknown(layer)
    r = _Reader(props.with_layer(layer))
    source = _hostport(r, "canal.instance.master.address", 3306)
    buffer_size = r.req_int("canal.instance.memory.buffer.size", 16384, low=1)
    if buffer_size & (buffer_size - 1):
        raise r.err("canal.instance.memory.buffer.size", f"expected a power of 2, got {buffer_size}")
    batch_mode = r.text("canal.instance.memory.batch.mode", "MEMSIZE").upper()
    if batch_mode not in ("MEMSIZE", "ITEMSIZE"):
        raise r.err("canal.instance.memory.batch.mode", f"expected MEMSIZE or ITEMSIZE, got {batch_mode!r}")
    slave_id = r.integer("canal.instance.mysql.slaveId", None, low=0)
    if not slave_id:  # canal >= 1.0.26 generates one; ours is stable per server and destination
        who = f"{server['register_ip']}:{server['port'] or os.getpid()}/{destination}"  # port 0: any free port
        slave_id = 1000 + zlib.crc32(who.encode()) % 2**30
    parser = ParserSettings(
        destination=destination,
        master_host=source.host,
        master_port=source.port,
        username=r.text("canal.instance.dbUsername"),
        password=r.text("canal.instance.dbPassword"),
        slave_id=slave_id,
        charset=_charset(r.text("canal.instance.connectionCharset", "UTF-8")),
        journal_name=r.text("canal.instance.master.journal.name"),
        position=r.integer("canal.instance.master.position", None, low=0),
        timestamp=r.integer("canal.instance.master.timestamp", None, low=0),
        gtid=r.text("canal.instance.master.gtid"),
        gtid_on=r.boolean("canal.instance.gtidon", False),
        filter_regex=r.text("canal.instance.filter.regex", ".*\\..*"),
        black_regex=r.text("canal.instance.filter.black.regex"),
        ddl_isolation=r.boolean("canal.instance.get.ddl.isolation", False),
    )
    lazy_key = f"canal.instance.{destination}.lazy"
    lazy = r.boolean(lazy_key, False) if r.text(lazy_key) else r.boolean("canal.instance.global.lazy", False)
    xml_key = f"canal.instance.{destination}.spring.xml"
    meta_kind = _meta_kind(r, xml_key if r.text(xml_key) else "canal.instance.global.spring.xml")
    mode = r.text("canal.instance.global.mode", "spring")
    if mode != "spring":
        raise r.err("canal.instance.global.mode", f"only 'spring' (local files) is supported, got {mode!r}")
    return InstanceConfig(
        destination=destination,
        source_file=str(path),
        source=source,
        parser=parser,
        meta_kind=meta_kind,
        lazy=lazy,
        buffer_size=buffer_size,
        memunit=r.req_int("canal.instance.memory.buffer.memunit", 1024, low=1),
        batch_mode=batch_mode,
        data_dir=_path(conf_dir, r.text("canal.file.data.dir", str(conf_dir))),
        file_flush_period_ms=r.req_int("canal.file.flush.period", 1000, low=1),
        zk_flush_period_ms=r.req_int("canal.zookeeper.flush.period", 1000, low=1),
    )


def load_config(conf_dir: Path | str, env: dict[str, str] | None = None) -> ServerConfig:
    """Load and validate everything; raises ConfigError (file + key) on the first bad value."""
    conf = Path(conf_dir).resolve()
    main_file = conf / "canal.properties"
    base = Layer(str(main_file), load_properties(main_file))
    _warn_unknown(base)
    props = Properties([base], env)
    r = _Reader(props)
    # canal.conf.dir names the conf directory; canal's relative default (../conf, from bin/) is --conf.
    conf_value = r.text("canal.conf.dir")
    conf_root = Path(conf_value) if conf_value and Path(conf_value).is_absolute() else conf
    props = Properties([base, Layer("<derived>", {"canal.conf.dir": str(conf_root)})], env)
    r = _Reader(props)
    mode = r.text("canal.serverMode", "tcp")
    if mode.lower() != "tcp":
        raise r.err("canal.serverMode", f"only 'tcp' is supported, got {mode!r}")
    user, passwd = r.text("canal.user"), r.text("canal.passwd").lstrip("*").lower()
    if user and not passwd:
        raise r.err("canal.passwd", "canal.user is set but canal.passwd is not (canal refuses to start too)")
    if passwd and not re.fullmatch(r"[0-9a-f]{40}", passwd):
        raise r.err("canal.passwd", "expected 40 hex digits: SHA1(SHA1(password)), MySQL PASSWORD() without '*'")
    ip = r.text("canal.ip")
    port = r.req_int("canal.port", 11111, low=0)
    metrics = r.integer("canal.metrics.pull.port", None, low=0)
    dests = tuple(d.strip() for d in r.text("canal.destinations").split(",") if d.strip())
    for d in dests:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", d) or d in (".", ".."):
            raise r.err("canal.destinations", f"bad destination name {d!r}")
    cfg = ServerConfig(
        conf_dir=conf_root,
        ip=ip,
        register_ip=r.text("canal.register.ip", ip),
        port=port,
        metrics_port=metrics,
        user=user,
        passwd=passwd,
        zk_servers=r.text("canal.zkServers"),
        max_frame=r.req_int("canal.server.max.frame.bytes", DEFAULT_MAX_FRAME, low=1024),
        auth_timeout_ms=r.req_int("canal.server.auth.timeout", 60_000, low=1),
        destinations=dests,
        lazy=r.boolean("canal.instance.global.lazy", False),
        zk_session_timeout_ms=r.req_int("canal.zookeeper.session.timeout", 10_000, low=1000),
        zk_running_delay_ms=r.req_int("canal.zookeeper.running.delay", 5_000, low=0),
    )
    server = {"register_ip": cfg.register_ip, "port": port}
    for d in dests:
        inst = load_instance(props, conf_root, d, server)
        if inst.meta_kind == "zookeeper" and not cfg.zk_servers:
            raise ConfigError("default-instance.xml keeps cursors in ZooKeeper: set canal.zkServers",
                              source=str(main_file), key="canal.zkServers")
        cfg.instances[d] = inst
    return cfg
