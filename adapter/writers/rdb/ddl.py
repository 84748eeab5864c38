"""Running DDL on the target: mirrorDb replay, ``ddl: addColumns`` for mapAll targets, replay safety.

- mirrorDb, MySQL-family target whose schema has the source's name: the DDL text runs verbatim
  (canal's behaviour) in that schema. Otherwise it is translated with sqlglot (``ddlxlate``).
- Each statement runs in its own transaction; "already exists"/"does not exist" errors (by MySQL
  error number or PostgreSQL SQLSTATE) are ignored, so a replayed DDL event changes nothing.
- Unsupported DDL for a target is logged and skipped; the stream goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from adapter.dml import Dml
from adapter.errors import CanalError
from adapter.writers.rdb.binding import TableBinding
from adapter.writers.rdb.dberrors import driver_message, translate
from adapter.writers.rdb.ddlxlate import DdlPlan, add_column, translate_ddl
from adapter.writers.rdb.mapping import RdbMapping

log = logging.getLogger(__name__)

#: "exists already" / "does not exist" errors: a replayed DDL meets the state it created.
_MYSQL_ALREADY = frozenset({1007, 1008, 1050, 1051, 1060, 1061, 1068, 1091, 1146, 1826})
_PG_ALREADY = frozenset({"42P07", "42701", "42P01", "42703", "42704", "42P06", "42710", "42P16"})


def _already(exc: BaseException) -> bool:
    orig: Any = getattr(exc, "orig", None)
    if orig is None:
        return False
    if getattr(orig, "sqlstate", None) in _PG_ALREADY:
        return True
    args: Any = getattr(orig, "args", ())
    return bool(args) and isinstance(args[0], int) and args[0] in _MYSQL_ALREADY


class DdlRunner:
    """Executes planned DDL on one engine."""

    def __init__(self, engine: Engine, family: str) -> None:
        self.engine = engine
        self.family = family

    def columns_of(self, schema: str | None, table: str) -> set[str] | None:
        with self.engine.connect() as conn:
            insp = sa.inspect(conn)
            if not insp.has_table(table, schema=schema):
                return None
            return {str(c["name"]).lower() for c in insp.get_columns(table, schema=schema)}

    def run(self, statements: Sequence[str], where: str, use_schema: str | None = None) -> None:
        for stmt in statements:
            try:
                with self.engine.connect() as conn:
                    if use_schema:
                        self._use(conn, use_schema)
                    try:
                        conn.exec_driver_sql(stmt)
                        conn.commit()
                    finally:
                        if use_schema:
                            conn.invalidate()  # never hand a connection with another default schema back to the pool
                log.info("rdb: DDL applied", extra={"target": where, "sql": stmt[:500]})
            except CanalError:
                raise
            except Exception as e:
                if _already(e):
                    log.info("rdb: DDL already applied; skipped", extra={"target": where, "sql": stmt[:500],
                                                                          "error": driver_message(e)})
                    continue
                raise translate(e, f"DDL on {where}: {stmt[:200]}") from e

    def _use(self, conn: Connection, schema: str) -> None:
        conn.exec_driver_sql("USE " + self.engine.dialect.identifier_preparer.quote_identifier(schema))

    # ------------------------------------------------------------------ policies
    def mirror(self, mapping: RdbMapping, dml: Dml, target_schema: str | None) -> set[str]:
        """Apply a mirrorDb DDL; return the lower-cased source tables whose bindings are stale."""
        src_db = dml.database or mapping.database
        if self.family == "mysql" and (target_schema or "").lower() == src_db.lower():
            self.run([dml.sql], f"{target_schema}", use_schema=target_schema)
            return {dml.table.lower()} if dml.table else {"*"}

        def target_of(db: str | None, table: str) -> tuple[str | None, str] | None:
            return (target_schema, table) if (db or src_db).lower() == src_db.lower() else None

        plan = translate_ddl(dml.sql, source_db=src_db, family=self.family, target_of=target_of,
                             columns_of=self.columns_of)
        self._report(plan, dml)
        self.run(plan.statements, f"{target_schema or ''}.{dml.table}")
        return plan.tables or {"*"}

    def add_columns_from_ddl(self, binding: TableBinding, dml: Dml) -> bool:
        """``ddl: addColumns``: apply the ADD COLUMN parts of a source ALTER to the target. True if any."""
        m = binding.mapping
        schema, name = binding.table.schema, binding.table.name

        def target_of(db: str | None, table: str) -> tuple[str | None, str] | None:
            same = (db or dml.database).lower() == m.database.lower() and table.lower() == dml.table.lower()
            return (schema, name) if same else None

        plan = translate_ddl(dml.sql, source_db=dml.database, family=self.family, target_of=target_of,
                             columns_of=self.columns_of, only_add_columns=True)
        self.run(plan.statements, binding.name)
        return bool(plan.statements)

    def add_columns_from_rows(self, binding: TableBinding, missing: Sequence[str], mysql_types: Any) -> bool:
        """``ddl: addColumns``: add columns that rows carry but the target lacks, typed from the source."""
        stmts = []
        for col in missing:
            mysql_type = str(mysql_types.get(col) or "")
            if not mysql_type:
                binding.warn_missing([col])
                continue
            stmts.append(add_column(binding.table.schema, binding.table.name, col, mysql_type, self.family))
        self.run(stmts, binding.name)
        return bool(stmts)

    @staticmethod
    def _report(plan: DdlPlan, dml: Dml) -> None:
        if plan.skipped:
            log.warning("rdb: DDL not mirrored", extra={"reason": plan.skipped, "database": dml.database,
                                                        "sql": dml.sql[:500], "position": dml.position})
