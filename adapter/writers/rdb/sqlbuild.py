"""Statements for one target table, built with SQLAlchemy Core and the target dialect (no SQL strings).

- upsert: MySQL/MariaDB ``INSERT ... ON DUPLICATE KEY UPDATE``, PostgreSQL and SQLite
  ``INSERT ... ON CONFLICT (key) DO UPDATE`` (``DO NOTHING`` when every column is a key column);
  executed with executemany, which the drivers batch (PyMySQL rewrites to one multi-row INSERT,
  psycopg pipelines).
- delete: ``DELETE ... WHERE key IN (...)`` (row-value IN for composite keys), one per chunk.
- truncate: ``TRUNCATE TABLE`` with the dialect's quoting (``DELETE`` on SQLite, which lacks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as my
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as lite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import Executable


def _bind(family: str, col: sa.Column[Any]) -> Any:
    """The bind expression of one column. JSON is sent as its text (the source's exact JSON):
    SQLAlchemy's JSON type would re-encode a string as a JSON string literal."""
    if isinstance(col.type, sa.JSON):
        raw = sa.bindparam(col.name, type_=sa.Text())
        return sa.cast(raw, col.type) if family == "postgresql" else raw
    return sa.bindparam(col.name, type_=col.type)


def upsert(family: str, table: sa.Table, key_cols: Sequence[str], columns: Sequence[str]) -> Executable:
    """An idempotent insert-or-update of ``columns`` (key columns included), by ``key_cols``."""
    values = {c: _bind(family, table.c[c]) for c in columns}
    rest = [c for c in columns if c not in key_cols]
    if family == "mysql":
        mstmt = my.insert(table).values(values)
        # An all-key row has nothing to update; "k = k" keeps the statement a no-op upsert.
        return mstmt.on_duplicate_key_update({c: mstmt.inserted[c] for c in (rest or key_cols[:1])})
    if family == "postgresql":
        pstmt = pg.insert(table).values(values)
        if not rest:
            return pstmt.on_conflict_do_nothing(index_elements=list(key_cols))
        return pstmt.on_conflict_do_update(index_elements=list(key_cols),
                                           set_={c: pstmt.excluded[c] for c in rest})
    lstmt = lite.insert(table).values(values)
    if not rest:
        return lstmt.on_conflict_do_nothing(index_elements=list(key_cols))
    return lstmt.on_conflict_do_update(index_elements=list(key_cols), set_={c: lstmt.excluded[c] for c in rest})


def delete_keys(table: sa.Table, key_cols: Sequence[str], keys: Sequence[tuple[Any, ...]]) -> Executable:
    """Delete rows whose key is in ``keys`` (one statement; callers chunk)."""
    if len(key_cols) == 1:
        return sa.delete(table).where(table.c[key_cols[0]].in_([k[0] for k in keys]))
    return sa.delete(table).where(sa.tuple_(*(table.c[c] for c in key_cols)).in_(list(keys)))


def truncate(dialect: Dialect, table: sa.Table) -> Executable:
    if dialect.name == "sqlite":
        return sa.delete(table)
    return sa.text("TRUNCATE TABLE " + dialect.identifier_preparer.format_table(table))


def count(table: sa.Table) -> Any:
    return sa.select(sa.func.count()).select_from(table)
