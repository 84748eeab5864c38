"""Row changes (Dmls) of one mapping → ordered key operations, with batched back-queries.

Pure except for the injected ``fetch`` (runs SQL built by :mod:`adapter.sqlmap`, returns rows).
Per row of the mapping's **main table**:

- INSERT → ``Put`` of the whole value, computed from the row image when every field is
  Python-evaluable from it (``mapping.direct``), else read back by the row's primary key.
- UPDATE → if a key field changed: ``Delete`` of the old key and a ``Put`` of the new one; else a
  hash gets a ``Patch`` of the fields fed by the changed columns (json/string: a whole ``Put``);
  values the image cannot give (joined tables, SQL-only functions, a WHERE/GROUP BY the row may
  enter or leave) are read back. A read-back finding no row deletes the key.
- DELETE → ``Delete`` of the key computed from the before-image.

A row of a **joined table** (or sub-query table) reads back every document joined to its before-
and after-images (``MappingSql.select_affected``) and patches their fields fed by that table.
All read-backs of a batch are grouped: one query per mapping and kind (chunked), never per row.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from adapter.dml import DELETE, INSERT, UPDATE, Dml
from adapter.errors import FatalError
from adapter.sqlmap import FieldSpec, NotEvaluable, TableRef, evaluate, lower_row, result_key
from adapter.writers.redis.commands import HASH, Delete, KeyOp, Patch, Put
from adapter.writers.redis.mapping import RedisMapping

log = logging.getLogger(__name__)

#: Values per IN (...) list of one back-query.
QUERY_CHUNK = 500
#: Documents per page when a joined-table change fans out (keyset over the main table's key).
FANOUT_PAGE = 1000


class Source(Protocol):
    """The source database seam (``adapter.sqlmap.SourceDb`` satisfies it)."""

    def fetch(self, sql: str) -> list[dict[str, Any]]: ...

    def primary_key(self, database: str, table: str) -> tuple[str, ...]: ...


@dataclass
class _MainRead:
    """A main-table row whose value must be read back by key (resolved after the queries)."""

    key_cols: tuple[str, ...]
    key: tuple[Any, ...]
    fallback_key: str | None  # deleted when the read-back finds no row
    patch_fields: frozenset[str] | None  # None: Put the whole value


@dataclass(eq=False)
class _JoinRead:
    """All rows of one joined alias in this batch (read back once, at the last event's position)."""

    ref: TableRef
    images: list[dict[str, Any]] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)


Slot = KeyOp | _MainRead | _JoinRead


class Planner:
    """Plans one mapping's share of a batch. ``source`` may be None for ``direct`` mappings."""

    def __init__(self, mapping: RedisMapping, source: Source | None) -> None:
        self.m = mapping
        self.source = source
        self.main_alias = mapping.main.alias

    # ------------------------------------------------------------------ entry point
    def plan(self, dmls: Sequence[Dml]) -> list[KeyOp]:
        """All operations for ``dmls`` in order (see ``iter_plan`` for bounded memory)."""
        return list(self.iter_plan(dmls))

    def iter_plan(self, dmls: Sequence[Dml]) -> Iterator[KeyOp]:
        """Operations in order; a joined-table fan-out is read and yielded page by page."""
        slots: list[Slot] = []
        joins: dict[str, _JoinRead] = {}
        for dml in dmls:
            if dml.is_ddl or dml.type not in (INSERT, UPDATE, DELETE):
                continue
            for ref in self.m.sql.tables_for(dml.database, dml.table):
                if ref.is_main:
                    self._main_events(dml, slots)
                else:
                    self._join_events(dml, ref, slots, joins)
        yield from self._resolve(slots)

    # ------------------------------------------------------------------ main table
    def _main_events(self, dml: Dml, slots: list[Slot]) -> None:
        afters = [lower_row(r) for r in dml.data]
        olds = [lower_row(o) for o in (dml.old or ())] if dml.type == UPDATE else []
        olds += [{}] * (len(afters) - len(olds))
        befores = [{**a, **o} for a, o in zip(afters, olds, strict=False)] if dml.type == UPDATE else afters
        new_keys = self._keys(afters)
        old_keys = self._keys(befores) if dml.type == UPDATE else new_keys
        for after, old, new_key, old_key in zip(afters, olds or afters, new_keys, old_keys, strict=False):
            if dml.type == DELETE:
                if new_key is None:
                    self._null_key(dml, after)
                else:
                    slots.append(Delete(new_key))
                continue
            if dml.type == INSERT or old_key != new_key:
                if dml.type == UPDATE and old_key is not None:
                    slots.append(Delete(old_key))  # a re-keyed row: the old key goes, the new one is written whole
                if new_key is None:
                    self._null_key(dml, after)
                else:
                    slots.append(self._whole(dml, after, new_key))
                continue
            if new_key is not None:
                slot = self._update(dml, after, new_key, set(old))
                if slot is not None:
                    slots.append(slot)

    def _whole(self, dml: Dml, row: Mapping[str, Any], key: str) -> Slot:
        if self.m.direct:
            values = self._evaluate(self.m.sql.fields, row)
            if values is not None:
                return Put(key, values)
        return self._read(dml, row, key, None)

    def _read(self, dml: Dml, row: Mapping[str, Any], key: str, fields: frozenset[str] | None) -> _MainRead:
        cols = self._key_cols(dml)
        return _MainRead(cols, tuple(row.get(c) for c in cols), key, fields)

    def _update(self, dml: Dml, row: Mapping[str, Any], key: str, changed: set[str]) -> Slot | None:
        main = self.m.main
        if not self.m.sql.touches(main, changed):
            return None
        by_col = self.m.fields_by_main_column
        fields = {f for c in changed for f in by_col.get(c, ())}
        # a changed join column re-targets a joined row: its fields (and those joined through it) change
        rejoined = self._dependents({(main.alias, c) for c in changed})
        fields |= {f.name for alias in rejoined for f in self.m.sql.fields_of(alias)}
        fields &= set(self.m.value_fields)
        if self.m.filtered and (not fields or self.m.value_form != HASH):
            return self._read(dml, row, key, None)  # the row may enter or leave the WHERE: read it back whole
        if not fields:
            return None
        if self.m.value_form != HASH:
            return self._whole(dml, row, key)
        specs = [f for f in self.m.sql.fields if f.name in fields]
        if not rejoined and not self.m.filtered and all(self.m.sql.main_only(f) for f in specs):
            values = self._evaluate(specs, row)
            if values is not None:
                full = self._evaluate(self.m.sql.fields, row) if self.m.direct else None
                return Patch(key, values, full)
        return self._read(dml, row, key, frozenset(fields))

    # ------------------------------------------------------------------ joined tables
    def _join_events(self, dml: Dml, ref: TableRef, slots: list[Slot], joins: dict[str, _JoinRead]) -> None:
        read = joins.get(ref.alias)
        if read is None:
            read = joins[ref.alias] = _JoinRead(ref)
        touched = False
        olds = dml.old or ()
        for i, row in enumerate(dml.data):
            after = lower_row(row)
            if dml.type == UPDATE:
                old = lower_row(olds[i]) if i < len(olds) else {}
                if not self.m.sql.touches(ref, old):
                    continue
                read.images += [after, {**after, **old}]
                read.fields |= self._join_fields(ref, set(old))
            else:
                read.images.append(after)
                read.fields |= self._join_fields(ref, None)
            touched = True
        if touched:
            for i in range(len(slots) - 1, -1, -1):  # keep one read-back per alias, at its last event's position
                if slots[i] is read:
                    del slots[i]
                    break
            slots.append(read)

    def _join_fields(self, ref: TableRef, changed: set[str] | None) -> set[str]:
        if changed is None or ref.subquery is not None:
            own = {f.name for f in self.m.sql.fields_of(ref.alias)}
        else:
            own = {f.name for f in self.m.sql.fields_of(ref.alias)
                   if any(c.alias == ref.alias and c.column in changed for c in f.columns)}
        deps = self._dependents({(ref.alias, c) for c in ref.columns} if changed is None or ref.subquery is not None
                                else {(ref.alias, c) for c in changed})
        own |= {f.name for alias in deps for f in self.m.sql.fields_of(alias)}
        return own & set(self.m.value_fields)

    def _dependents(self, cols: set[tuple[str, str]]) -> set[str]:
        """Aliases joined (directly or through others) on one of these (alias, column) pairs."""
        out: set[str] = set()
        frontier = set(cols)
        while frontier:
            nxt: set[tuple[str, str]] = set()
            for t in self.m.sql.tables:
                if t.alias in out or t.is_main:
                    continue
                if any((k.other.alias, k.other.column) in frontier for k in t.join_keys):
                    out.add(t.alias)
                    nxt |= {(t.alias, c) for c in t.columns}
                    if t.subquery is not None:
                        nxt |= {(t.alias, o) for o in t.subquery.outputs}
            frontier = nxt
        return out

    # ------------------------------------------------------------------ keys and values
    def _key_cols(self, dml: Dml) -> tuple[str, ...]:
        if dml.pk_names:
            return tuple(c.lower() for c in dml.pk_names)
        cols = [f.column.column for f in self.m.key_fields.values() if f.column is not None]
        if len(cols) == len(self.m.key_fields):
            return tuple(dict.fromkeys(cols))
        if self.m.direct:
            return ()
        raise FatalError(f"{self.m.header.file}: table {dml.database}.{dml.table} has no primary key and the key "
                         "template uses computed fields, so rows cannot be read back; key on plain columns")

    def _evaluate(self, specs: Sequence[FieldSpec], row: Mapping[str, Any]) -> dict[str, Any] | None:
        plain = self.m.plain_columns
        out: dict[str, Any] = {}
        try:
            for f in specs:
                col = plain.get(f.name)
                if col is None:
                    out[f.name] = evaluate(f.expr, row, self.main_alias)
                elif col in row:  # plain column: a dict lookup, no expression walk
                    out[f.name] = row[col]
                else:
                    return None
        except NotEvaluable:
            return None
        return out

    def _keys(self, rows: Sequence[Mapping[str, Any]]) -> list[str | None]:
        specs = list(self.m.key_fields.values())
        keys: list[str | None] = [None] * len(rows)
        pending: list[int] = []
        for i, row in enumerate(rows):
            parts = self._evaluate(specs, row)
            if parts is None:
                pending.append(i)
            else:
                keys[i] = self.m.render_key(parts)
        for start in range(0, len(pending), QUERY_CHUNK):  # MySQL computes what Python cannot
            idx = pending[start:start + QUERY_CHUNK]
            got = self._fetch(self.m.sql.evaluate_sql(specs, [rows[i] for i in idx]))
            for i, parts in zip(idx, got, strict=True):
                keys[i] = self.m.render_key(parts)
        return keys

    def _null_key(self, dml: Dml, row: Mapping[str, Any]) -> None:
        log.warning("row skipped: a key field is NULL", extra={
            "mapping_file": self.m.header.file, "table": f"{dml.database}.{dml.table}", "position": dml.position,
            "key_fields": {n: row.get(f.column.column) if f.column else None for n, f in self.m.key_fields.items()}})

    def _source(self) -> Source:
        if self.source is None:
            raise FatalError(f"{self.m.header.file}: this mapping needs the source database "
                             f"(dataSourceKey {self.m.header.data_source_key!r}) to read rows back")
        return self.source

    def _fetch(self, sql: str) -> list[dict[str, Any]]:
        return self._source().fetch(sql)

    def _main_pk(self) -> tuple[str, ...]:
        database, table = self.m.main.qualified(self.m.sql.default_database)
        pk = self._source().primary_key(database, table)
        if pk:
            return pk
        cols = [f.column.column for f in self.m.key_fields.values() if f.column is not None]
        return tuple(dict.fromkeys(cols)) if len(cols) == len(self.m.key_fields) else ()

    # ------------------------------------------------------------------ read-backs
    def _resolve(self, slots: list[Slot]) -> Iterator[KeyOp]:
        by_key: dict[tuple[tuple[str, ...], tuple[Any, ...]], list[dict[str, Any]]] = {}
        groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for s in slots:
            if isinstance(s, _MainRead):
                groups.setdefault(s.key_cols, []).append(s.key)
        for cols, keys in groups.items():
            uniq = list(dict.fromkeys(keys))
            for start in range(0, len(uniq), QUERY_CHUNK):
                sql = self.m.sql.select_by_keys(cols, uniq[start:start + QUERY_CHUNK])
                for row in self._fetch(sql):
                    by_key.setdefault((cols, _norm(result_key(row, len(cols)))), []).append(row)
        for s in slots:
            if isinstance(s, _MainRead):
                rows = by_key.get((s.key_cols, _norm(s.key)), [])
                if not rows and s.fallback_key is not None:
                    yield Delete(s.fallback_key)
                for row in rows:
                    yield from self._row_ops(row, s.patch_fields)
            elif isinstance(s, _JoinRead):
                yield from self._fan_out(s)
            else:
                yield s

    def _fan_out(self, read: _JoinRead) -> Iterator[KeyOp]:
        """Documents joined to these rows, in keyset pages over the main key (bounded memory)."""
        fields = frozenset(read.fields)
        pk: tuple[str, ...] | None = None
        for start in range(0, len(read.images), QUERY_CHUNK):
            cond = self.m.sql.affected_condition(read.ref, read.images[start:start + QUERY_CHUNK])
            if cond is None:
                continue
            if pk is None:
                pk = self._main_pk()
            if not pk:  # no usable key to page on: one read
                for row in self._fetch(self.m.sql.select(cond)):
                    yield from self._row_ops(row, fields)
                continue
            after: tuple[Any, ...] | None = None
            while True:
                rows = self._fetch(self.m.sql.select_page(pk, after, FANOUT_PAGE, cond))
                for row in rows:
                    yield from self._row_ops(row, fields)
                if len(rows) < FANOUT_PAGE:
                    break
                after = result_key(rows[-1], len(pk))

    def _row_ops(self, row: Mapping[str, Any], patch_fields: frozenset[str] | None) -> list[KeyOp]:
        key = self.m.render_key(row)
        if key is None:
            return []
        if patch_fields is None or self.m.value_form != HASH:
            return [Put(key, row)]
        if not patch_fields:
            return []
        return [Patch(key, {f: row.get(f) for f in patch_fields}, row)]


def _norm(key: tuple[Any, ...]) -> tuple[Any, ...]:
    # MySQL compares strings case-insensitively by default; match read-backs the same way
    return tuple(v.lower() if isinstance(v, str) else v for v in key)
