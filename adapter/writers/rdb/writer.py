"""``RdbWriter``: canal's rdb outer adapter over SQLAlchemy (MySQL/MariaDB, PostgreSQL, SQLite targets).

``write`` applies a batch in order: row Dmls are planned into keyed upserts/deletes and applied per
partition in one transaction each; TRUNCATE and DDL Dmls are barriers (what came before is applied
first). One re-entrant lock covers each ``write`` and each ETL chunk (see ``etl``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from adapter.dml import ROW_TYPES, TRUNCATE, Dml
from adapter.errors import CanalError, ConfigError, FatalError
from adapter.writers.base import EtlResult, MappingHeader, Routed, Writer, WriterConfig, WriterContext
from adapter.writers.rdb import sqlbuild
from adapter.writers.rdb.apply import Applier
from adapter.writers.rdb.binding import TableBinding, bind_table, reflect
from adapter.writers.rdb.dberrors import is_retriable, translate
from adapter.writers.rdb.ddl import DdlRunner
from adapter.writers.rdb.etl import run_etl
from adapter.writers.rdb.mapping import ZERO_KEEP, ZERO_NULL, RdbMapping, parse_rdb_mapping
from adapter.writers.rdb.plan import Op, row_groups
from adapter.writers.rdb.props import EngineFactory, default_engine, jdbc_to_url, parse_props, zone
from adapter.writers.rdb.types import ConvContext

log = logging.getLogger(__name__)


class RdbWriter(Writer):
    """Writes row changes of mapped tables into a relational target, idempotently."""

    name = "rdb"
    mapping_dir = "rdb"

    def __init__(self, config: WriterConfig, context: WriterContext, *,
                 engine_factory: EngineFactory | None = None) -> None:
        super().__init__(config, context)
        self.props = parse_props(config.properties, source=f"outerAdapters[{config.name}:{config.key or ''}]")
        self.family = self.props.family
        self._engine_factory = engine_factory or default_engine
        self._engine: Engine | None = None
        self._applier: Applier | None = None
        self._ddl: DdlRunner | None = None
        self._tz = zone(self.props.timezone)
        self._bindings: dict[tuple[int, str], TableBinding] = {}
        self._sources: dict[str, Engine] = {}
        #: Held around every write() and every ETL chunk (read + write): see docs "ETL consistency".
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def parse_mapping(cls, header: MappingHeader, raw: Any, context: WriterContext) -> RdbMapping:
        return parse_rdb_mapping(header, raw)

    def open(self) -> None:
        pool = self.props.pool_size or self.props.threads + 2
        self._engine = self._engine_factory(self.props.url, pool)
        self._applier = Applier(self._engine, self.family, self.props.commit_size, self.props.threads)
        self._ddl = DdlRunner(self._engine, self.family)
        self._bind_all(self.mappings)

    def set_mappings(self, mappings: Sequence[Any]) -> None:
        """Validate and bind. A mapping the target cannot serve raises ConfigError naming its file;
        the node then keeps that file's previous version in force (at startup: refuses to start)."""
        with self._lock:
            for m in mappings:
                self._check_mapping(m)
            if self._engine is not None:
                self._bind_all(list(mappings))
            keep = {id(m) for m in mappings}
            self._bindings = {k: b for k, b in self._bindings.items() if k[0] in keep}
            super().set_mappings(mappings)

    def close(self) -> None:
        with self._lock:
            if self._applier is not None:
                self._applier.close()
            for eng in [self._engine, *self._sources.values()]:
                if eng is not None:
                    eng.dispose()
            self._engine, self._applier, self._sources = None, None, {}
            self._bindings.clear()

    def _check_mapping(self, m: RdbMapping) -> None:
        if m.zero_date == ZERO_KEEP and self.family != "mysql":
            raise ConfigError(f"zeroDate: keep needs a MySQL-family target ({self.family} rejects zero dates); "
                              "use null or error", source=m.header.file, key="dbMapping.zeroDate")

    def _bind_all(self, mappings: Sequence[Any]) -> None:
        """Reflect and validate every table mapping now (ConfigError names file and key).

        A target that is down is not a configuration error: binding is retried at the first write.
        """
        try:
            with self._require_engine().connect() as conn:
                schemas: list[str] | None = None
                for m in mappings:
                    if m.mirror_db:
                        schemas = schemas if schemas is not None else sa.inspect(conn).get_schema_names()
                        if self._mirror_schema(m) not in schemas:
                            raise ConfigError(f"target schema {self._mirror_schema(m)!r} does not exist",
                                              source=m.header.file, key="dbMapping.targetDb")
                    elif (id(m), "") not in self._bindings:
                        self._bindings[(id(m), "")] = bind_table(conn, m, self._ctx_for)
        except sa.exc.DBAPIError as e:
            if not is_retriable(e):
                raise ConfigError(f"cannot read the target's tables: {translate(e, 'open')}",
                                  source=mappings[0].header.file if mappings else None) from e
            log.warning("rdb: target unreachable at open; tables are checked at the first write",
                        extra={"writer": self.config.key, "error": str(translate(e, "open"))})

    def _require_engine(self) -> Engine:
        if self._engine is None:
            raise FatalError("rdb: writer used before open()")
        return self._engine

    def _ctx_for(self, mapping: RdbMapping, shown: str) -> ConvContext:
        zero = mapping.zero_date or (ZERO_KEEP if self.family == "mysql" else ZERO_NULL)
        return ConvContext(family=self.family, table=shown, zero_date=zero, tz=self._tz)

    def _mirror_schema(self, mapping: RdbMapping) -> str:
        if self.family == "sqlite":
            return mapping.target_db or "main"  # SQLite has no schema named after the source database
        return mapping.target_db or mapping.database

    def _binding(self, mapping: RdbMapping, dml: Dml) -> TableBinding:
        bkey = (id(mapping), dml.table.lower() if mapping.mirror_db else "")
        found = self._bindings.get(bkey)
        if found is None:
            try:
                self._check_mapping(mapping)
            except ConfigError as e:
                raise FatalError(f"rdb: {e}") from e
            if mapping.mirror_db:
                mapping = _mirror_view(mapping, self._mirror_schema(mapping))
            try:
                with self._require_engine().connect() as conn:
                    found = bind_table(conn, mapping, self._ctx_for, dml.table if mapping.mirror_db else None,
                                       dml.pk_names, at_load=False)
            except CanalError:
                raise
            except Exception as e:
                raise translate(e, f"reflecting the target of {mapping.header.file}") from e
            self._bindings[bkey] = found
        return found

    def _forget(self, mapping: RdbMapping, tables: set[str] | None = None) -> None:
        for k in [k for k in self._bindings if k[0] == id(mapping) and (tables is None or "*" in tables
                                                                         or k[1] in tables or k[1] == "")]:
            del self._bindings[k]

    # ------------------------------------------------------------------ stream
    def write(self, items: Sequence[Routed]) -> None:
        with self._lock:
            applier = self._applier
            if applier is None:
                raise FatalError("rdb: writer used before open()")
            pending: list[list[Op]] = []

            def flush() -> None:  # DDL and TRUNCATE are barriers: what came before is applied first
                applier.apply(pending)
                pending.clear()

            for item in items:
                mapping, dml = item.mapping, item.dml
                if dml.type == TRUNCATE:
                    flush()
                    self._truncate(mapping, dml)
                elif dml.is_ddl:
                    flush()
                    self._on_ddl(mapping, dml)
                elif dml.type in ROW_TYPES and dml.data:
                    pending.extend(self._groups(mapping, dml, flush))
            flush()

    def _groups(self, mapping: RdbMapping, dml: Dml, flush: Callable[[], None]) -> list[list[Op]]:
        binding = self._binding(mapping, dml)
        plan = binding.plan(tuple(dml.data[0].keys()), dml.mysql_types)
        if plan.missing:
            if mapping.add_columns and self._ddl is not None:
                flush()  # earlier rows were planned against the table before the new column
                self._ddl.add_columns_from_rows(binding, plan.missing, dml.mysql_types)
                self._forget(mapping, {dml.table.lower()})
                binding = self._binding(mapping, dml)
                plan = binding.plan(tuple(dml.data[0].keys()), dml.mysql_types)
            binding.warn_missing(plan.missing)
        return row_groups(binding, dml, plan)

    def _truncate(self, mapping: RdbMapping, dml: Dml) -> None:
        assert self._applier is not None
        engine = self._require_engine()
        view = _mirror_view(mapping, self._mirror_schema(mapping)) if mapping.mirror_db else mapping
        schema, name = view.target_name(dml.table)
        shown = f"{schema}.{name}" if schema else name

        def run(conn: Connection) -> None:
            table = reflect(conn, schema, name)  # no key needed: a table without one can be truncated too
            if table is None:
                if not mapping.mirror_db:
                    raise FatalError(f"rdb: cannot truncate {shown}: no such target table ({mapping.header.file})")
                log.warning("rdb: TRUNCATE of a table missing on the target; skipped", extra={"target": shown})
                return
            conn.execute(sqlbuild.truncate(engine.dialect, table))

        self._applier.in_transaction(f"truncate {shown}", run)
        log.info("rdb: target truncated", extra={"target": shown, "position": dml.position})

    def _on_ddl(self, mapping: RdbMapping, dml: Dml) -> None:
        assert self._ddl is not None
        if mapping.mirror_db:
            stale = self._ddl.mirror(mapping, dml, self._mirror_schema(mapping))
            self._forget(mapping, stale)
            return
        if mapping.add_columns and dml.sql:
            binding = self._binding(mapping, dml)
            self._ddl.add_columns_from_ddl(binding, dml)
        self._forget(mapping)  # re-reflect the target at the next row (canal only evicts its type cache)

    # ------------------------------------------------------------------ ETL and count
    def _apply_now(self, mapping: RdbMapping, dml: Dml) -> None:
        assert self._applier is not None
        self._applier.apply(self._groups(mapping, dml, lambda: None))

    def _source(self, mapping: RdbMapping) -> Engine:
        key = mapping.header.data_source_key or ""
        ds = self.context.data_sources.get(key)
        if ds is None:
            known = sorted(self.context.data_sources)
            raise ConfigError(f"dataSourceKey {key!r} is not in srcDataSources (known: {known})",
                              source=mapping.header.file, key="dataSourceKey")
        eng = self._sources.get(key)
        if eng is None:
            url = jdbc_to_url(ds.url, source=mapping.header.file, key="dataSourceKey")  # JDBC or SQLAlchemy
            eng = self._sources[key] = self._engine_factory(url, 2)
        return eng

    def etl(self, mapping: RdbMapping, params: Sequence[str], progress: Callable[[int], None]) -> EtlResult:
        """Full load of one mapping (REST /etl). Runs while the stream keeps writing."""
        if mapping.mirror_db:
            return EtlResult(False, error_message=f"{mapping.task}: ETL of a mirrorDb mapping is not supported")
        try:
            source = self._source(mapping)
        except ConfigError as e:
            return EtlResult(False, error_message=str(e))
        return run_etl(mapping, params, progress, source=source, lock=self._lock, apply=self._apply_now,
                       target_name=mapping.display_target())

    def count(self, mapping: RdbMapping) -> int:
        """Rows in the target table (REST /count)."""
        return int(self.count_info(mapping)["count"])

    def count_info(self, mapping: RdbMapping) -> dict[str, Any]:
        """canal's /count answer: ``{"count": N, "targetTable": <quoted target table>}``."""
        if mapping.mirror_db:
            raise ConfigError("count of a mirrorDb mapping is not supported", source=mapping.header.file)
        fake = Dml(destination="", group_id=None, database=mapping.database, table=mapping.table, type="INSERT")
        with self._lock:
            binding = self._binding(mapping, fake)
        engine = self._require_engine()
        try:
            with engine.connect() as conn:
                n = int(conn.execute(sqlbuild.count(binding.table)).scalar_one())
        except Exception as e:
            raise translate(e, f"count {binding.name}") from e
        return {"count": n, "targetTable": engine.dialect.identifier_preparer.format_table(binding.table)}


def _mirror_view(mapping: RdbMapping, schema: str) -> RdbMapping:
    """A mirrorDb mapping as seen for one table: mapAll into the same-named table of ``schema``."""
    return dataclasses.replace(mapping, target_db=schema)
