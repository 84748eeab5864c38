"""The source database seen from the control connection: checks, time zone, binlog files, column types.

``check_source`` refuses (ConfigError with a how-to-fix message) a source the parser cannot read
correctly: binlog off, not ROW, not FULL row image, no FULL row metadata, compressed binlog, or a
user without the replication privileges. ``is_retriable`` sorts connection faults from fatal ones.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import re
import socket
import struct
import threading
import zoneinfo
from collections.abc import Callable, Sequence
from typing import Any

import pymysql

from adapter.errors import ConfigError, RetriableError
from adapter.server.events import LogPosition, ParserSettings

log = logging.getLogger(__name__)

Connect = Callable[..., Any]

#: Client/server error codes that mean "the connection went away": reconnect and retry.
_RETRIABLE_CODES = {1040, 1053, 1152, 1158, 1159, 1160, 1161, 1927, 2002, 2003, 2006, 2013, 2014, 2055}
_OFFSET = re.compile(r"^([+-])(\d{1,2}):(\d{2})$")


def connection_settings(settings: ParserSettings) -> dict[str, Any]:
    """pymysql keyword arguments for ``settings`` (a new dict each call: the library mutates it)."""
    return {
        "host": settings.master_host,
        "port": int(settings.master_port),
        "user": settings.username,
        "password": settings.password,
        "charset": settings.charset or "utf8mb4",
        "connect_timeout": 10,
        "read_timeout": 30,
        "write_timeout": 30,
    }


def is_retriable(exc: BaseException) -> bool:
    """True for faults a reconnect may cure (network, server restart); False for fatal ones."""
    if isinstance(exc, RetriableError):
        return True
    if isinstance(exc, pymysql.err.MySQLError):
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        if isinstance(exc, pymysql.err.InterfaceError):
            return True  # (0, '') on a closed connection
        return code in _RETRIABLE_CODES
    return isinstance(exc, (OSError, EOFError, socket.timeout, ConnectionError, struct.error))


def _where(settings: ParserSettings) -> str:
    return f"{settings.master_host}:{settings.master_port}"


def connect(settings: ParserSettings, connect_fn: Connect = pymysql.connect) -> Any:
    """A control connection. Access denied → ConfigError; unreachable → RetriableError."""
    try:
        return connect_fn(**connection_settings(settings), autocommit=True)
    except pymysql.err.MySQLError as exc:
        if is_retriable(exc):
            raise RetriableError(f"cannot connect to the source {_where(settings)}: {exc}") from exc
        raise ConfigError(
            f"cannot log in to {_where(settings)} as {settings.username!r}: {exc}; check "
            "canal.instance.dbUsername / canal.instance.dbPassword", key="canal.instance.dbUsername") from exc


def _scalar(conn: Any, sql: str) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql)
        row = cur.fetchone()
    return None if row is None else row[0]


def _variable(conn: Any, name: str) -> str | None:
    try:
        value = _scalar(conn, f"SELECT @@GLOBAL.{name}")
    except pymysql.err.MySQLError as exc:
        if exc.args and exc.args[0] == 1193:  # unknown system variable
            return None
        raise
    return None if value is None else str(value)


def master_status(conn: Any) -> LogPosition:
    """The current end of the binlog (SHOW BINARY LOG STATUS, or SHOW MASTER STATUS before 8.4)."""
    row = None
    for sql in ("SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"):
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                row = cur.fetchone()
            break
        except pymysql.err.ProgrammingError:
            continue
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] in (1227, 1142):
                raise ConfigError(
                    f"the user cannot read the binlog position: {exc}; GRANT REPLICATION CLIENT (MariaDB: BINLOG "
                    "MONITOR) ON *.* TO the canal user", key="canal.instance.dbUsername") from exc
            raise
    if not row:
        raise ConfigError("the source has no binary log: enable log_bin in my.cnf [mysqld] and restart it",
                          key="canal.instance.master.address")
    return LogPosition(str(row[0]), int(row[1]))


def binary_logs(conn: Any) -> list[str]:
    """The binlog file names, oldest first."""
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        return [str(r[0]) for r in cur.fetchall()]


def _has_replication_grant(grants: Sequence[str]) -> bool | None:
    """True/False from SHOW GRANTS; None when privileges may come from roles we cannot see."""
    roles = False
    for line in grants:
        m = re.match(r"GRANT (.+?) ON \*\.\* TO ", line)
        if m:
            privs = {p.strip().upper() for p in m.group(1).split(",")}
            if privs & {"ALL PRIVILEGES", "ALL", "REPLICATION SLAVE", "REPLICATION REPLICA"}:
                return True
        elif line.startswith("GRANT `") or (line.startswith("GRANT '") and " ON " not in line):
            roles = True
    return None if roles else False


def check_source(settings: ParserSettings, connect_fn: Connect = pymysql.connect) -> None:
    """Raise ConfigError (with the fix) unless the source can feed a canal parser correctly."""
    conn = connect(settings, connect_fn)
    try:
        _check(conn, settings)
    finally:
        conn.close()


def _need(actual: str | None, expected: str, name: str, how: str) -> None:
    if (actual or "").upper() != expected:
        raise ConfigError(f"the source has {name}={actual!r}, the parser needs {name}={expected}: {how}",
                          key="canal.instance.master.address")


def _check(conn: Any, settings: ParserSettings) -> None:
    version = str(_scalar(conn, "SELECT VERSION()") or "")
    log_bin = _variable(conn, "log_bin")
    if (log_bin or "").upper() not in ("1", "ON"):
        raise ConfigError("the source has no binary log: set log_bin (and server_id) in my.cnf [mysqld] and restart",
                          key="canal.instance.master.address")
    _need(_variable(conn, "binlog_format"), "ROW", "binlog_format",
          "SET GLOBAL binlog_format=ROW and binlog_format=ROW in my.cnf [mysqld]")
    _need(_variable(conn, "binlog_row_image"), "FULL", "binlog_row_image",
          "SET GLOBAL binlog_row_image=FULL and binlog_row_image=FULL in my.cnf [mysqld]")
    metadata = _variable(conn, "binlog_row_metadata")
    if metadata is None:
        raise ConfigError(f"the source ({version}) has no binlog_row_metadata: MariaDB >= 10.5 or MySQL >= 8.0.14 "
                          "is needed, with binlog_row_metadata=FULL", key="canal.instance.master.address")
    _need(metadata, "FULL", "binlog_row_metadata",
          "SET GLOBAL binlog_row_metadata=FULL and binlog_row_metadata=FULL in my.cnf [mysqld] (events written "
          "before the change carry no column names)")
    if (_variable(conn, "log_bin_compress") or "OFF").upper() in ("1", "ON"):
        raise ConfigError("the source compresses its binlog (log_bin_compress=ON), which the parser cannot read: "
                          "SET GLOBAL log_bin_compress=OFF", key="canal.instance.master.address")
    with conn.cursor() as cur:
        cur.execute("SHOW GRANTS FOR CURRENT_USER()")
        grants = [str(r[0]) for r in cur.fetchall()]
    granted = _has_replication_grant(grants)
    if granted is False:
        raise ConfigError(f"user {settings.username!r} lacks REPLICATION SLAVE: GRANT REPLICATION SLAVE, REPLICATION "
                          f"CLIENT, SELECT ON *.* TO the canal user", key="canal.instance.dbUsername")
    master_status(conn)  # needs REPLICATION CLIENT / BINLOG MONITOR


def server_timezone(conn: Any) -> datetime.tzinfo:
    """The source's global time zone (TIMESTAMP values are shown in it)."""
    with conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.time_zone, @@system_time_zone, TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW())")
        tzname, system, diff = cur.fetchone()
    name = str(system if str(tzname).upper() == "SYSTEM" else tzname)
    m = _OFFSET.match(name)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        return datetime.timezone(sign * datetime.timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        log.warning("unknown source time zone %r: using its current offset %ss", name, diff)
        return datetime.timezone(datetime.timedelta(seconds=int(diff or 0)))


class ColumnTypes:
    """information_schema COLUMN_TYPE lookups over one lazily opened control connection."""

    def __init__(self, settings: ParserSettings, connect_fn: Connect = pymysql.connect) -> None:
        self._settings = settings
        self._connect = connect_fn
        self._conn: Any = None
        self._lock = threading.Lock()

    def __call__(self, schema: str, table: str) -> list[tuple[str, str]] | None:
        with self._lock:
            for attempt in (0, 1):
                try:
                    if self._conn is None:
                        self._conn = connect(self._settings, self._connect)
                    with self._conn.cursor() as cur:
                        cur.execute(
                            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s "
                            "AND TABLE_NAME=%s ORDER BY ORDINAL_POSITION", (schema, table))
                        return [(str(n), str(t)) for n, t in cur.fetchall()] or None
                except pymysql.err.MySQLError:
                    self.close_locked()
                    if attempt:
                        raise
        return None

    def close_locked(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close; it is gone anyway
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self.close_locked()
