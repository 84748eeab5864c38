"""``SourceDb``: runs mapping back-queries on a source database through SQLAlchemy (batched reads)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from adapter.errors import FatalError, RetriableError

EngineFactory = Callable[[str], sa.Engine]


def _default_engine(url: str) -> sa.Engine:
    return sa.create_engine(url, pool_pre_ping=True, pool_recycle=3600)


class SourceDb:
    """A lazily created SQLAlchemy engine for one ``srcDataSources`` URL.

    Queries from :class:`MappingSql` carry their values inline, so :meth:`fetch` runs them on a
    raw DB-API cursor without parameters: a ``%`` or ``:`` in the mapping SQL is never taken
    for a placeholder. Driver errors become ``RetriableError`` (connection/operational) or
    ``FatalError`` (the SQL itself is wrong), so writers can decide by class.
    """

    def __init__(self, url: str, *, engine_factory: EngineFactory = _default_engine) -> None:
        self.url = url
        self._factory = engine_factory
        self._engine: sa.Engine | None = None
        self._lock = threading.Lock()
        self._pk_cache: dict[tuple[str, str], tuple[str, ...]] = {}

    @property
    def engine(self) -> sa.Engine:
        with self._lock:
            if self._engine is None:
                self._engine = self._factory(self.url)
            return self._engine

    @property
    def database(self) -> str:
        """The database named in the URL ("" when none)."""
        return sa.make_url(self.url).database or ""

    def fetch(self, sql: str) -> list[dict[str, Any]]:
        """Run one query; rows as dicts keyed by result column name."""
        try:
            with self.engine.connect() as conn:
                cursor = conn.connection.cursor()
                try:
                    cursor.execute(sql)
                    names = [d[0] for d in cursor.description or ()]
                    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
                finally:
                    cursor.close()
        except Exception as e:  # translate driver errors at the seam
            raise _translate(e, sql) from e

    def primary_key(self, database: str, table: str) -> tuple[str, ...]:
        """Primary-key column names of ``database.table`` in key order (cached); () when it has none."""
        cache_key = (database.lower(), table.lower())
        if cache_key not in self._pk_cache:
            db = database or self.database
            sql = (
                "SELECT COLUMN_NAME AS c FROM information_schema.KEY_COLUMN_USAGE "
                f"WHERE CONSTRAINT_NAME = 'PRIMARY' AND TABLE_SCHEMA = {_str(db)} AND TABLE_NAME = {_str(table)} "
                "ORDER BY ORDINAL_POSITION"
            )
            self._pk_cache[cache_key] = tuple(str(r["c"]) for r in self.fetch(sql))
        return self._pk_cache[cache_key]

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


def _str(value: str) -> str:
    from adapter.sqlmap.dialect import DIALECT
    from adapter.sqlmap.queries import literal

    return str(literal(value).sql(DIALECT))


def _translate(e: Exception, sql: str) -> Exception:
    short = sql if len(sql) <= 300 else sql[:300] + "..."
    if isinstance(e, DBAPIError) and e.connection_invalidated:
        return RetriableError(f"source database connection lost: {e.orig}")
    orig = getattr(e, "orig", e)
    name = type(orig).__name__
    if name in ("ProgrammingError", "IntegrityError", "DataError", "NotSupportedError"):
        return FatalError(f"source query failed ({name}: {orig}); SQL: {short}")
    if isinstance(e, (SQLAlchemyError, OSError)) or name in ("OperationalError", "InterfaceError", "InternalError"):
        return RetriableError(f"source query failed ({name}: {orig})")
    return FatalError(f"source query failed ({name}: {e}); SQL: {short}")
