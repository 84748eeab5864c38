"""Driver/SQLAlchemy exceptions → the project's error classes (decided by class and error code).

Connection and operational faults (target down, restarted, deadlock, lock timeout, SQLite busy)
are ``RetriableError``: the batch is rolled back and retried, never dropped. Integrity, data and
programming errors cannot be fixed by retrying: ``FatalError``. Messages carry the driver's error
text (no SQL parameters, which may hold personal data, and no connection secrets).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from adapter.errors import CanalError, ConfigError, FatalError, RetriableError

#: MySQL/MariaDB error numbers that PyMySQL raises as OperationalError but that retrying cannot fix.
_MYSQL_FATAL = frozenset({
    1044, 1045, 1049,  # access denied / unknown database
    1048, 1054, 1136, 1142, 1143, 1364,  # null into NOT NULL, unknown column, count mismatch, denied, no default
    1264, 1265, 1292, 1366, 1406,  # out of range, truncated, bad value, too long
})


def driver_message(exc: BaseException, limit: int = 300) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = f"{type(orig).__name__}: {orig}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _mysql_errno(exc: sa.exc.DBAPIError) -> int | None:
    args: Any = getattr(exc.orig, "args", ())
    if args and isinstance(args[0], int):
        return int(args[0])
    return None


_DEADLOCK_MYSQL = frozenset({1205, 1213})  # lock wait timeout, deadlock
_DEADLOCK_PG = frozenset({"40001", "40P01"})  # serialization failure, deadlock detected


def is_deadlock(exc: BaseException) -> bool:
    """A lock conflict between concurrent transactions: retrying the same transaction fixes it."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if getattr(exc.orig, "sqlstate", None) in _DEADLOCK_PG:
        return True
    return _mysql_errno(exc) in _DEADLOCK_MYSQL


def is_retriable(exc: BaseException) -> bool:
    """True for faults a retry may fix (connection loss, target down, deadlock, busy)."""
    if isinstance(exc, RetriableError):
        return True
    if isinstance(exc, (sa.exc.TimeoutError, sa.exc.DisconnectionError, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.InternalError)):
            return _mysql_errno(exc) not in _MYSQL_FATAL
    return False


def is_constraint(exc: BaseException) -> bool:
    """An integrity/data error: the rows, not the connection, are the problem."""
    if isinstance(exc, (sa.exc.IntegrityError, sa.exc.DataError)):
        return True
    return isinstance(exc, sa.exc.OperationalError) and _mysql_errno(exc) in _MYSQL_FATAL


def translate(exc: BaseException, where: str) -> CanalError:
    """Wrap ``exc`` (raised while working on ``where``, e.g. a table name) in the class that says what to do."""
    if isinstance(exc, (FatalError, RetriableError, ConfigError)):
        return exc
    if is_retriable(exc):
        return RetriableError(f"rdb: {where}: target unavailable, will retry: {driver_message(exc)}")
    return FatalError(f"rdb: {where}: {driver_message(exc)}")
