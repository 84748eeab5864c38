"""Target table bindings: reflect a mapping's target table, validate columns and key, plan row conversion.

A ``TableBinding`` is one (mapping, target table) after reflection. ``plan(columns, mysql_types)``
resolves, once per distinct source column set, which source value feeds which target column and
through which converter (cached, so the per-row loop is a tuple walk).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.errors import ConfigError, FatalError
from adapter.writers.rdb.mapping import RdbMapping
from adapter.writers.rdb.types import ConvContext, Converter, converter_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ColumnPlan:
    """How rows with one source column set become target values."""

    targets: tuple[str, ...]
    sources: tuple[str, ...]
    convs: tuple[Converter | None, ...]
    key_pos: tuple[int, ...]  # positions in ``targets`` of the key columns, in key order
    #: Source columns of a mapAll mapping that have no target column (yet).
    missing: tuple[str, ...] = ()


@dataclass
class TableBinding:
    """One mapping bound to one reflected target table."""

    mapping: RdbMapping
    table: sa.Table
    key_cols: tuple[str, ...]
    explicit: dict[str, str]  # target column (actual name) → source column
    ctx: ConvContext
    #: Upsert statements per column set (a re-reflected table gets a new binding, so no staleness).
    upserts: dict[tuple[str, ...], Any] = field(default_factory=dict)
    _plans: dict[tuple[Any, ...], ColumnPlan] = field(default_factory=dict)
    _warned: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.ctx.table

    def plan(self, columns: Sequence[str], mysql_types: Mapping[str, str]) -> ColumnPlan:
        ck = (tuple(columns), tuple(mysql_types.get(c, "") for c in columns))
        found = self._plans.get(ck)
        if found is None:
            with self._lock:
                found = self._plans[ck] = self._build_plan(columns, mysql_types)
        return found

    def _build_plan(self, columns: Sequence[str], mysql_types: Mapping[str, str]) -> ColumnPlan:
        exact = {c: c for c in columns}
        folded = {c.lower(): c for c in columns} if self.mapping.case_insensitive else {}

        def source_of(name: str) -> str | None:
            return exact.get(name) or folded.get(name.lower())

        pairs: dict[str, str] = {}
        for tgt, src in self.explicit.items():
            actual = source_of(src)
            if actual is None:
                if tgt in self.key_cols:
                    raise FatalError(f"rdb: {self.mapping.database}.{self.mapping.table} rows have no column "
                                     f"{src!r} for key column {self.name}.{tgt} (mapping {self.mapping.header.file})")
                self._warn_once(src, "mapped source column not present in the rows; target column left unchanged")
                continue
            pairs[tgt] = actual
        missing: list[str] = []
        if self.mapping.map_all:
            used = set(pairs.values())
            by_lower = {c.name.lower(): c.name for c in self.table.columns}
            for src in columns:
                if src in used:
                    continue
                found = src if src in self.table.c else by_lower.get(src.lower())
                if found is None:
                    missing.append(src)
                elif found not in pairs:
                    pairs[found] = src
        targets = tuple(pairs)
        convs = tuple(converter_for(self.ctx, self.table.c[t], mysql_types.get(pairs[t], "").lower()) for t in targets)
        for k in self.key_cols:
            if k not in pairs:
                raise FatalError(f"rdb: no source column feeds key column {self.name}.{k} "
                                 f"(mapping {self.mapping.header.file}); add it to targetPk/targetColumns")
        return ColumnPlan(targets=targets, sources=tuple(pairs[t] for t in targets), convs=convs,
                          key_pos=tuple(targets.index(k) for k in self.key_cols), missing=tuple(missing))

    def _warn_once(self, column: str, what: str) -> None:
        if column not in self._warned:
            self._warned.add(column)
            log.warning(f"rdb: {what}", extra={"table": self.name, "column": column,
                                                "mapping": self.mapping.header.file})

    def warn_missing(self, columns: Sequence[str]) -> None:
        for c in columns:
            self._warn_once(c, "source column has no target column; not written (set dbMapping.ddl: addColumns)")


def _find_table(conn: Connection, schema: str | None, name: str) -> str | None:
    """The actual table name: exact, else the only case-insensitive match (fixes quoting/case mismatches)."""
    insp = sa.inspect(conn)
    try:
        names = insp.get_table_names(schema=schema)
    except sa.exc.DBAPIError:
        if not insp.has_table(name, schema=schema):
            return None
        return name
    if name in names:
        return name
    matches = [n for n in names if n.lower() == name.lower()]
    if len(matches) == 1:
        return matches[0]  # the stored spelling: some backends reflect keys only under it
    return name if insp.has_table(name, schema=schema) else None


def unique_keys(conn: Connection, table: sa.Table) -> list[tuple[str, ...]]:
    """Column tuples an upsert may conflict on: the primary key, unique constraints, unique indexes."""
    insp = sa.inspect(conn)
    keys: list[tuple[str, ...]] = []
    if table.primary_key.columns:
        keys.append(tuple(c.name for c in table.primary_key.columns))
    for uc in insp.get_unique_constraints(table.name, schema=table.schema):
        keys.append(tuple(c for c in uc["column_names"] if c))
    for ix in insp.get_indexes(table.name, schema=table.schema):
        if ix.get("unique") and all(ix["column_names"]):
            keys.append(tuple(str(c) for c in ix["column_names"]))
    return keys


def reflect(conn: Connection, schema: str | None, name: str) -> sa.Table | None:
    """Reflect a target table into a fresh MetaData (so DDL can be followed by a re-reflect)."""
    actual = _find_table(conn, schema, name)
    if actual is None:
        return None
    return sa.Table(actual, sa.MetaData(), schema=schema, autoload_with=conn)


def bind_table(conn: Connection, mapping: RdbMapping, ctx_for: Callable[[RdbMapping, str], ConvContext],
               source_table: str | None = None,
               pk_hint: Sequence[str] = (), *, at_load: bool = True) -> TableBinding:
    """Reflect and validate; errors are ConfigError at load (naming file and key) or FatalError at write."""
    schema, name = mapping.target_name(source_table)
    file = mapping.header.file

    def bad(msg: str, key: str) -> Exception:
        if at_load:
            return ConfigError(msg, source=file, key=key)
        return FatalError(f"rdb: {file}: {key}: {msg}")

    table = reflect(conn, schema, name)
    shown = f"{schema}.{name}" if schema else name
    if table is None:
        raise bad(f"target table {shown} does not exist in the target database", "dbMapping.targetTable")
    by_lower = {c.name.lower(): c.name for c in table.columns}

    def column(tgt: str, key: str) -> str:
        actual = tgt if tgt in table.c else by_lower.get(tgt.lower())
        if actual is None:
            raise bad(f"target table {shown} has no column {tgt!r}", key)
        return actual

    explicit = {column(t, f"dbMapping.targetColumns.{t}"): s for t, s in mapping.target_columns.items()}
    if mapping.target_pk:
        keys = tuple(column(t, f"dbMapping.targetPk.{t}") for t in mapping.target_pk)
        for t, s in mapping.target_pk.items():
            explicit[column(t, f"dbMapping.targetPk.{t}")] = s
    elif table.primary_key.columns:
        keys = tuple(c.name for c in table.primary_key.columns)
        for k in keys:
            if not mapping.map_all and k not in explicit:
                explicit[k] = k
    elif pk_hint:
        keys = tuple(column(k, "dbMapping.targetPk") for k in pk_hint)
    else:
        raise bad(f"no key: target table {shown} has no primary key and the mapping has no targetPk",
                  "dbMapping.targetPk")
    uniques = {tuple(sorted(k.lower() for k in u)) for u in unique_keys(conn, table)}
    if tuple(sorted(k.lower() for k in keys)) not in uniques:
        raise bad(f"key ({', '.join(keys)}) is not the primary key or a unique key of {shown}; upserts need one",
                  "dbMapping.targetPk")
    return TableBinding(mapping=mapping, table=table, key_cols=keys, explicit=explicit, ctx=ctx_for(mapping, shown))
