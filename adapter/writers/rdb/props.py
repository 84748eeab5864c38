"""The rdb writer's adapter properties: canal's ``jdbc.*`` keys or a SQLAlchemy URL, threads, sizes, engine.

canal reads ``jdbc.url``/``jdbc.username``/``jdbc.password`` (plus ``jdbc.driverClassName`` and
``druid.*``, meaningless here), ``threads`` (default 3) and ignores ``commitSize``. Here ``url`` (a
SQLAlchemy URL) may replace ``jdbc.url``, and ``commitSize`` bounds the rows per statement.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from adapter.errors import ConfigError
from adapter.jdbc import jdbc_to_url

__all__ = ["jdbc_to_url"]

#: Keys canal knows that mean nothing to a Python driver (accepted silently).
_IGNORED = frozenset({"jdbc.driverClassName", "druid.stat.enable", "druid.stat.slowSqlMillis", "skipDupException"})
_KNOWN = frozenset({"url", "jdbc.url", "jdbc.username", "jdbc.password", "username", "password", "threads",
                    "commitSize", "timezone", "poolSize"}) | _IGNORED

EngineFactory = Callable[[URL, int], Engine]
_MYSQL_INIT = ("SET time_zone = '+00:00', "
               "sql_mode = CONCAT_WS(',', NULLIF(@@session.sql_mode, ''), 'NO_AUTO_VALUE_ON_ZERO')")


@dataclass(frozen=True)
class RdbProps:
    """Validated properties of one rdb writer instance."""

    url: URL
    threads: int = 3
    commit_size: int = 1000
    #: Zone of naive DATETIME values written into time-zone-aware target columns.
    timezone: str = "UTC"
    pool_size: int = 0  # 0 = threads + 2

    @property
    def family(self) -> str:
        """"mysql", "postgresql" or "sqlite" (the SQLAlchemy backend name)."""
        backend = self.url.get_backend_name()
        return "mysql" if backend == "mariadb" else backend


def zone(name: str) -> dt.tzinfo:
    """An IANA zone; UTC needs no tz database (absent on some slim images)."""
    return dt.timezone.utc if name.upper() in ("UTC", "Z", "+00:00") else zoneinfo.ZoneInfo(name)


def _int(props: Mapping[str, Any], name: str, default: int, lo: int, source: str | None) -> int:
    raw = props.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"expected an integer >= {lo}, got {raw!r}", source=source, key=name) from None
    if value < lo:
        raise ConfigError(f"expected an integer >= {lo}, got {value}", source=source, key=name)
    return value


def parse_props(props: Mapping[str, Any], *, source: str | None = None) -> RdbProps:
    """Validate the ``properties`` of an ``outerAdapters`` entry named rdb."""
    unknown = sorted(k for k in props if k not in _KNOWN)
    if unknown:
        raise ConfigError(f"unknown rdb properties {unknown}; known: {sorted(_KNOWN)}", source=source, key=unknown[0])
    raw = props.get("url") or props.get("jdbc.url")
    if not raw:
        raise ConfigError("expected the target database URL in 'jdbc.url' (JDBC) or 'url' (SQLAlchemy)",
                          source=source, key="jdbc.url")
    key = "url" if props.get("url") else "jdbc.url"
    user = props.get("jdbc.username") or props.get("username")
    password = props.get("jdbc.password") or props.get("password")
    url = jdbc_to_url(str(raw), str(user) if user else None, str(password) if password is not None else None,
                      source=source, key=key)
    if url.get_backend_name() not in ("mysql", "mariadb", "postgresql", "sqlite"):
        raise ConfigError(f"unsupported target database {url.get_backend_name()!r}; expected mysql, mariadb, "
                          "postgresql or sqlite", source=source, key=key)
    tz = str(props.get("timezone") or "UTC")
    try:
        zone(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {tz!r} (expected an IANA name such as UTC or Asia/Shanghai)",
                          source=source, key="timezone") from None
    threads = _int(props, "threads", 3, 1, source)
    if url.get_backend_name() == "sqlite":
        threads = 1  # SQLite has one writer at a time: parallel partitions would only lock each other out
    return RdbProps(url=url, threads=threads, commit_size=_int(props, "commitSize", 1000, 1, source),
                    timezone=tz, pool_size=_int(props, "poolSize", 0, 0, source))


def default_engine(url: URL, pool_size: int) -> Engine:
    """Build the engine: pre-ping (a restarted target is noticed), UTC sessions on MySQL."""
    kw: dict[str, Any] = {"pool_pre_ping": True}
    if url.get_backend_name() != "sqlite":
        kw.update(pool_size=pool_size, max_overflow=2, pool_recycle=3600)
    else:
        kw["connect_args"] = {"timeout": 30}
    if url.get_backend_name() in ("mysql", "mariadb"):
        # READ COMMITTED: keyed writes need no gap locks, which would make parallel partitions deadlock.
        kw["isolation_level"] = "READ COMMITTED"
        # UTC sessions: TIMESTAMP values are read and written as UTC instants. NO_AUTO_VALUE_ON_ZERO:
        # a replicated id 0 must stay 0, not draw a new AUTO_INCREMENT value.
        kw["connect_args"] = {"connect_timeout": 10, "init_command": _MYSQL_INIT}
    elif url.get_backend_name() == "postgresql":
        kw["connect_args"] = {"connect_timeout": 10}
    return sa.create_engine(url, **kw)
