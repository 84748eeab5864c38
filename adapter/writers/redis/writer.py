"""``RedisWriter``: a batch of row changes → one Redis pipeline, under the writer's sync lock.

Each mapping's share of the batch is planned (``plan.Planner``, read-backs batched), turned into
commands (``commands.build``), and every command of the batch goes out in ONE pipeline
(``MULTI``/``EXEC`` when ``transaction`` is on, the default outside Cluster). A failure raises
``RetriableError``/``FatalError`` and nothing is acknowledged; a replay rewrites the same values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import sqlalchemy as sa

from adapter.dml import TRUNCATE, Dml
from adapter.errors import ConfigError, FatalError
from adapter.sqlmap import SourceDb
from adapter.writers.base import EtlResult, MappingHeader, Routed, Writer, WriterConfig, WriterContext
from adapter.writers.redis import etl as etl_mod
from adapter.writers.redis.client import RedisSettings, RedisTarget, build_client
from adapter.writers.redis.commands import Command, build
from adapter.writers.redis.mapping import RedisMapping, parse_redis_mapping
from adapter.writers.redis.plan import Planner

log = logging.getLogger(__name__)

_BIT = 16  # MySQL FIELD_TYPE.BIT


def source_engine(url: str) -> sa.Engine:
    """Engine for read-backs and ETL. With PyMySQL, BIT columns decode to int, as in Dml rows,
    so streamed and read-back values render identically."""
    u = sa.make_url(url)
    kw: dict[str, Any] = {"pool_pre_ping": True, "pool_recycle": 3600}
    if u.get_driver_name() == "pymysql":
        from pymysql.converters import conversions

        conv = dict(conversions)
        conv[_BIT] = lambda b: int.from_bytes(b, "big") if isinstance(b, (bytes, bytearray)) else b
        kw["connect_args"] = {"conv": conv}
    return sa.create_engine(u, **kw)


class _Pipelines:
    """Collects a batch's commands; one pipeline unless the batch exceeds ``limit`` commands (a joined
    table change fanning out to very many keys), then several, in order, so memory stays bounded."""

    def __init__(self, target: RedisTarget, limit: int) -> None:
        self.target, self.limit = target, limit
        self.commands: list[Command] = []

    def add(self, commands: Sequence[Command]) -> None:
        self.commands += commands
        if len(self.commands) >= self.limit:
            self.flush()

    def flush(self) -> None:
        if self.commands:
            self.target.execute(self.commands)
            self.commands = []


class RedisWriter(Writer):
    """Caches rows in Redis from ``<conf>/redis/*.yml`` mappings (see docs/writers/redis.md)."""

    name: ClassVar[str] = "redis"
    mapping_dir: ClassVar[str | None] = "redis"

    def __init__(self, config: WriterConfig, context: WriterContext, *,
                 client_factory: Callable[[RedisSettings], Any] = build_client,
                 source_db: Callable[[str], SourceDb] | None = None) -> None:
        super().__init__(config, context)
        self.settings = RedisSettings.parse(config.hosts, config.properties or {},
                                            source=f"outerAdapters[{config.name}/{config.key or ''}]")
        self.target = RedisTarget(self.settings, client_factory)
        self._source_db = source_db or (lambda url: SourceDb(url, engine_factory=source_engine))
        self._dbs: dict[str, SourceDb] = {}

    @classmethod
    def parse_mapping(cls, header: MappingHeader, raw: Mapping[str, Any], context: WriterContext) -> RedisMapping:
        return parse_redis_mapping(header, raw, context)

    # ---------------------------------------------------------------- lifecycle
    def open(self) -> None:
        log.info("redis writer opening", extra={"writer_key": self.config.key, **self.settings.describe()})
        self.target.check()

    def close(self) -> None:
        self.target.close()
        for db in self._dbs.values():
            db.close()
        self._dbs.clear()

    # ---------------------------------------------------------------- source database
    def source(self, mapping: RedisMapping) -> SourceDb:
        key = mapping.header.data_source_key
        ds = self.context.data_sources.get(key) if key else None
        if ds is None:
            raise ConfigError(f"mapping needs a source database: dataSourceKey {key!r} is not in srcDataSources",
                              source=mapping.header.file, key="dataSourceKey")
        db = self._dbs.get(ds.key)
        if db is None:
            db = self._dbs[ds.key] = self._source_db(ds.url)
        return db

    def _source_for(self, mapping: RedisMapping) -> SourceDb | None:
        key = mapping.header.data_source_key
        if not key or key not in self.context.data_sources:
            return None  # direct mappings need no source; others fail with a clear FatalError when they read
        return self.source(mapping)

    def write(self, items: Sequence[Routed]) -> None:
        with self.sync_lock:
            out = _Pipelines(self.target, self.settings.pipeline_max_commands)
            run: list[Routed] = []
            for it in items:
                if not isinstance(it.mapping, RedisMapping):
                    continue
                if it.dml.type == TRUNCATE:
                    self._emit(run, out)
                    run = []
                    out.flush()  # what came before the TRUNCATE lands first
                    self._truncate(it.mapping, it.dml)
                elif not it.dml.is_ddl:
                    run.append(it)
            self._emit(run, out)
            out.flush()

    def _emit(self, items: Sequence[Routed], out: _Pipelines) -> None:
        groups: dict[int, tuple[RedisMapping, list[Dml]]] = {}
        for it in items:
            groups.setdefault(id(it.mapping), (it.mapping, []))[1].append(it.dml)
        for mapping, dmls in groups.values():
            for op in Planner(mapping, self._source_for(mapping)).iter_plan(dmls):
                out.add(build(mapping, (op,)))

    def _truncate(self, mapping: RedisMapping, dml: Dml) -> None:
        """TRUNCATE of the main table removes every key of the mapping (SCAN + DEL)."""
        refs = mapping.sql.tables_for(dml.database, dml.table)
        if not refs:
            return
        if any(r.is_main for r in refs):
            n = etl_mod.delete_keys(self.target, mapping)
            log.info("main table truncated: mapping keys removed", extra={
                "mapping_file": mapping.header.file, "keys": n, "position": dml.position})
        else:
            log.warning("joined table truncated: cached values keep its old fields; run an ETL of this task",
                        extra={"mapping_file": mapping.header.file, "table": f"{dml.database}.{dml.table}"})

    # ---------------------------------------------------------------- ETL and count (SupportsEtl)
    def etl(self, mapping: Any, params: Sequence[str], progress: Callable[[int], None]) -> EtlResult:
        if not isinstance(mapping, RedisMapping):
            return EtlResult(False, error_message=f"not a redis mapping: {mapping!r}")
        return etl_mod.run_etl(self, mapping, params, progress)

    def count(self, mapping: Any) -> int:
        if not isinstance(mapping, RedisMapping):
            raise FatalError(f"not a redis mapping: {mapping!r}")
        return etl_mod.count_keys(self.target, mapping)

    def count_info(self, mapping: Any) -> dict[str, Any]:
        """canal-style /count JSON: ``{"redisKeyPattern": ..., "count": n}``."""
        n = self.count(mapping)
        return {"redisKeyPattern": mapping.key_pattern(), "count": n}
