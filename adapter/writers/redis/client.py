"""Connection to the target Redis (standalone, Cluster or Sentinel) and error translation.

Settings come from the ``outerAdapters`` entry (``hosts`` plus ``properties``), see
``RedisSettings.parse``. Every redis-py exception is translated here, at the seam, into the
project's error classes: connection trouble → ``RetriableError``; wrong credentials, missing ACL
permissions, or a key holding another type → ``FatalError`` (``ConfigError`` while opening).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.exceptions as rex
from redis.backoff import NoBackoff
from redis.retry import Retry

from adapter.errors import CanalError, ConfigError, FatalError, RetriableError

log = logging.getLogger(__name__)

STANDALONE, CLUSTER, SENTINEL = "standalone", "cluster", "sentinel"
MODES = (STANDALONE, CLUSTER, SENTINEL)
DEFAULT_PORT, DEFAULT_SENTINEL_PORT = 6379, 26379

_KNOWN = {
    "mode", "hosts", "host", "port", "db", "username", "password",
    "ssl", "ssl.ca", "ssl.cert", "ssl.key", "ssl.verify",
    "sentinel.master", "sentinel.username", "sentinel.password",
    "connectTimeout", "socketTimeout", "transaction", "pipelineMaxCommands",
}  # fmt: skip


def _flatten(props: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    # YAML may nest ("ssl: {ca: x}") or use dotted keys ("ssl.ca: x"); both mean the same
    out: dict[str, Any] = {}
    for k, v in props.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, name + "."))
        else:
            out[name] = v
    if "ssl.enabled" in out:
        out["ssl"] = out.pop("ssl.enabled")
    return out


def _bool(v: Any, key: str, source: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
        return v.strip().lower() in ("true", "yes", "1", "on")
    raise ConfigError(f"expected true or false, got {v!r}", source=source, key=key)


def _num(v: Any, key: str, source: str, *, lo: float = 0) -> float:
    try:
        n = float(v)
    except (TypeError, ValueError):
        raise ConfigError(f"expected a number, got {v!r}", source=source, key=key) from None
    if n < lo:
        raise ConfigError(f"must be >= {lo}, got {v!r}", source=source, key=key)
    return n


def parse_hosts(text: str, default_port: int, source: str, key: str = "hosts") -> tuple[tuple[str, int], ...]:
    """``"h1:6379,h2,[::1]:7000"`` → ((host, port), ...)."""
    out: list[tuple[str, int]] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if part.startswith("["):  # [ipv6]:port
            host, _, rest = part[1:].partition("]")
            port_s = rest[1:] if rest.startswith(":") else ""
        elif part.count(":") == 1:
            host, _, port_s = part.partition(":")
        else:
            host, port_s = part, ""
        try:
            port = int(port_s) if port_s else default_port
        except ValueError:
            raise ConfigError(f"bad port in {part!r} (expected host:port)", source=source, key=key) from None
        if not host or not 0 < port < 65536:
            raise ConfigError(f"bad address {part!r} (expected host:port)", source=source, key=key)
        out.append((host, port))
    if not out:
        raise ConfigError("no host given (expected host:port[,host:port...])", source=source, key=key)
    return tuple(out)


@dataclass(frozen=True)
class RedisSettings:
    """Validated connection settings. ``password`` is never logged (see ``describe``)."""

    mode: str = STANDALONE
    nodes: tuple[tuple[str, int], ...] = (("127.0.0.1", DEFAULT_PORT),)
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    ssl_ca: str | None = None
    ssl_cert: str | None = None
    ssl_key: str | None = None
    ssl_verify: bool = True
    sentinel_master: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    connect_timeout: float = 5.0
    socket_timeout: float = 10.0
    transaction: bool = True
    #: a batch above this many commands is sent as several pipelines (bounded memory)
    pipeline_max_commands: int = 50000

    @classmethod
    def parse(cls, hosts: str | None, properties: Mapping[str, Any], source: str = "application.yml") -> RedisSettings:
        p = _flatten(properties or {})
        unknown = sorted(set(p) - _KNOWN)
        if unknown:
            raise ConfigError(f"unknown redis properties {unknown}; known: {sorted(_KNOWN)}", source=source)
        mode = str(p.get("mode", STANDALONE)).strip().lower()
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}; expected one of {list(MODES)}", source=source, key="mode")
        dport = DEFAULT_SENTINEL_PORT if mode == SENTINEL else DEFAULT_PORT
        text = p.get("hosts") or hosts
        if text:
            nodes = parse_hosts(str(text), dport, source)
        else:
            port = int(_num(p.get("port", dport), "port", source, lo=1))
            nodes = ((str(p.get("host", "127.0.0.1")), port),)
        if mode == STANDALONE and len(nodes) > 1:
            raise ConfigError("standalone mode takes one host; use mode: cluster or sentinel", source=source,
                              key="hosts")
        db = int(_num(p.get("db", 0), "db", source))
        if mode == CLUSTER and db != 0:
            raise ConfigError("Redis Cluster only has db 0", source=source, key="db")
        master = p.get("sentinel.master")
        if mode == SENTINEL and not master:
            raise ConfigError("sentinel mode needs the master name", source=source, key="sentinel.master")
        ssl_on = _bool(p.get("ssl", False), "ssl", source)
        if (p.get("ssl.cert") is None) != (p.get("ssl.key") is None):
            raise ConfigError("ssl.cert and ssl.key go together", source=source, key="ssl.cert")

        def opt(k: str) -> str | None:
            v = p.get(k)
            return None if v is None or v == "" else str(v)

        return cls(
            mode=mode, nodes=nodes, db=db, username=opt("username"), password=opt("password"),
            ssl=ssl_on or any(p.get(k) for k in ("ssl.ca", "ssl.cert")), ssl_ca=opt("ssl.ca"),
            ssl_cert=opt("ssl.cert"), ssl_key=opt("ssl.key"), ssl_verify=_bool(p.get("ssl.verify", True),
                                                                                "ssl.verify", source),
            sentinel_master=opt("sentinel.master"), sentinel_username=opt("sentinel.username"),
            sentinel_password=opt("sentinel.password"),
            connect_timeout=_num(p.get("connectTimeout", 5), "connectTimeout", source, lo=0.001),
            socket_timeout=_num(p.get("socketTimeout", 10), "socketTimeout", source, lo=0.001),
            # MULTI/EXEC cannot span hash slots, so Cluster defaults to plain pipelines
            transaction=_bool(p.get("transaction", mode != CLUSTER), "transaction", source),
            pipeline_max_commands=int(_num(p.get("pipelineMaxCommands", 50000), "pipelineMaxCommands", source, lo=1)),
        )  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """Loggable summary (no secrets)."""
        return {"mode": self.mode, "nodes": [f"{h}:{p}" for h, p in self.nodes], "db": self.db,
                "user": self.username, "ssl": self.ssl, "transaction": self.transaction}  # fmt: skip

    def connection_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "username": self.username, "password": self.password,
            "socket_timeout": self.socket_timeout, "socket_connect_timeout": self.connect_timeout,
            # one quick retry absorbs a stale pooled socket; longer outages go back to the worker
            "retry": Retry(NoBackoff(), 1),
        }  # fmt: skip
        if self.ssl:
            kw.update(ssl=True, ssl_ca_certs=self.ssl_ca, ssl_certfile=self.ssl_cert, ssl_keyfile=self.ssl_key,
                      ssl_cert_reqs="required" if self.ssl_verify else "none", ssl_check_hostname=self.ssl_verify)
        return kw


def build_client(s: RedisSettings) -> Any:
    """A redis-py client for the settings (RedisCluster connects while it is built)."""
    kw = s.connection_kwargs()
    if s.mode == CLUSTER:
        from redis.cluster import ClusterNode, RedisCluster

        nodes = [ClusterNode(h, p) for h, p in s.nodes]  # type: ignore[no-untyped-call]
        return RedisCluster(startup_nodes=nodes, **kw)
    if s.mode == SENTINEL:
        from redis.sentinel import Sentinel

        skw = {k: v for k, v in kw.items() if k not in ("username", "password")}
        skw.update(username=s.sentinel_username, password=s.sentinel_password)
        sentinel = Sentinel(list(s.nodes), sentinel_kwargs=skw, **kw)  # type: ignore[no-untyped-call]
        return sentinel.master_for(s.sentinel_master, db=s.db)  # type: ignore[no-untyped-call]
    host, port = s.nodes[0]
    return redis.Redis(host=host, port=port, db=s.db, **kw)


_FATAL = (rex.AuthenticationError, rex.AuthorizationError, rex.NoPermissionError,
          rex.AuthenticationWrongNumberOfArgsError, rex.ExecAbortError, rex.DataError,
          rex.CrossSlotTransactionError)  # fmt: skip
_RETRIABLE = (rex.ConnectionError, rex.TimeoutError, rex.ReadOnlyError, rex.OutOfMemoryError, rex.ClusterDownError,
              rex.TryAgainError, rex.AskError, rex.ClusterError, rex.SlotNotCoveredError, rex.BusyLoadingError,
              ConnectionError, TimeoutError)  # fmt: skip


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:300] + "..."


def translate(exc: BaseException, what: str) -> CanalError:
    """Map a redis-py (or socket) exception onto the project's error classes."""
    if isinstance(exc, CanalError):
        return exc
    msg = f"redis {what} failed: {_short(exc)}"
    if isinstance(exc, _FATAL):  # checked first: auth errors subclass ConnectionError
        return FatalError(msg)
    if isinstance(exc, _RETRIABLE):
        return RetriableError(msg)
    if isinstance(exc, rex.ResponseError):  # WRONGTYPE, bad script... retrying repeats the same answer
        return FatalError(msg)
    if isinstance(exc, (rex.RedisError, rex.RedisClusterException, OSError)):
        return RetriableError(msg)
    return FatalError(msg)


class RedisTarget:
    """Owns the client: built lazily (a target down at start is not a config error), closed once."""

    def __init__(self, settings: RedisSettings, factory: Callable[[RedisSettings], Any] = build_client) -> None:
        self.settings = settings
        self._factory = factory
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                self._client = self._factory(self.settings)
            except Exception as exc:
                raise translate(exc, "connect") from exc
        return self._client

    def check(self) -> None:
        """PING at start: bad credentials → ConfigError; an unreachable target is only logged."""
        try:
            self.client.ping()
        except Exception as exc:
            err = translate(exc, "connect")
            if isinstance(err, FatalError):
                raise ConfigError(f"{err} ({self.settings.describe()})") from exc
            log.warning("redis target not reachable yet; writes will retry",
                        extra={"error": str(err), **self.settings.describe()})

    def execute(self, commands: Sequence[tuple[Any, ...]], *, transaction: bool | None = None) -> list[Any]:
        """Send ``commands`` in one pipeline (MULTI/EXEC when ``transaction``); all-or-error."""
        if not commands:
            return []
        tx = self.settings.transaction if transaction is None else transaction
        try:
            pipe = self.client.pipeline(transaction=tx)
            for cmd in commands:
                pipe.execute_command(*cmd)
            return list(pipe.execute())
        except Exception as exc:
            raise translate(exc, "pipeline") from exc

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception as exc:  # closing must never mask the caller's outcome
                log.debug("redis close failed", extra={"error": _short(exc)})
