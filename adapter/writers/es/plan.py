"""Pure planning: which documents a batch of row changes touches, per mapping (no I/O).

Two strategies (see docs/writers/es.md):

* **direct** mappings (one table, every field computable from the row image): documents are built
  from the binlog images, in event order.
* **re-query** mappings (joins, sub-queries, DB functions): main-table inserts/updates name main
  keys to reload through the mapping SQL; joined-table changes name the rows whose join keys
  select the affected documents; deletes (and identity changes) delete by the identity computed
  from the before-image. The database answers with the current state, so replays converge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapter.dml import DELETE, INSERT, UPDATE, Dml
from adapter.sqlmap import TableRef, lower_row
from adapter.writers.es.config import EsMapping


@dataclass
class PutImage:
    """direct: build the document from this (lower-cased) main-table image."""

    image: dict[str, Any]
    insert: bool


@dataclass
class DeleteImage:
    """Delete the document addressed by this before-image; skipped when ``unless`` has the same identity."""

    image: dict[str, Any]
    unless: dict[str, Any] | None = None


@dataclass
class Reload:
    """re-query: (re)build the document of this main-table key."""

    key: tuple[Any, ...]
    image: dict[str, Any]
    insert: bool


@dataclass
class Affected:
    """re-query: documents joining to these images of joined table ``ref`` (before and after)."""

    ref: TableRef
    images: list[dict[str, Any]] = field(default_factory=list)


Item = PutImage | DeleteImage | Reload | Affected


def identity_columns(mapping: EsMapping) -> frozenset[str]:
    """Main-table columns feeding the ``_id``/``pk``/routing fields."""
    return frozenset(c.column for f in mapping.identity_fields for c in f.columns)


def plan(mapping: EsMapping, dmls: Sequence[Dml], key_columns: Sequence[str] = ()) -> list[Item]:
    """Items for one mapping, in event order (``Affected`` merged per joined alias).

    ``key_columns`` (lower-cased) is the main table's key, needed by re-query mappings.
    """
    items: list[Item] = []
    affected: dict[str, Affected] = {}
    ident_cols = identity_columns(mapping)
    keys = [k.lower() for k in key_columns]
    for dml in dmls:
        if dml.is_ddl or dml.type not in (INSERT, UPDATE, DELETE):
            continue
        refs = mapping.sql.tables_for(dml.database, dml.table)
        if not refs:
            continue
        for i, raw in enumerate(dml.data):
            row = lower_row(raw)
            old = lower_row(dml.old[i]) if dml.old is not None and i < len(dml.old) else None
            for ref in refs:
                if ref.is_main:
                    items.extend(_main_items(mapping, dml.type, row, old, ident_cols, keys))
                else:
                    images = _joined_images(mapping, ref, dml.type, row, old)
                    if images:
                        entry = affected.get(ref.alias)
                        if entry is None:
                            entry = affected[ref.alias] = Affected(ref)
                            items.append(entry)
                        entry.images.extend(images)
    return items


def _main_items(mapping: EsMapping, kind: str, row: dict[str, Any], old: dict[str, Any] | None,
                ident_cols: frozenset[str], keys: Sequence[str]) -> list[Item]:
    if kind == DELETE:
        return [DeleteImage(row)]
    if kind == INSERT:
        return [PutImage(row, True) if mapping.direct else Reload(_key(row, keys), row, True)]
    # UPDATE. old None = no change information (e.g. a flat MQ message without "old"): assume all changed.
    changed = set(row) if old is None else set(old)
    before = {**row, **(old or {})}
    if not mapping.sql.touches(mapping.sql.main, changed):
        return []
    out: list[Item] = []
    if old is not None and changed & ident_cols:
        out.append(DeleteImage(before, unless=row))
    if mapping.direct:
        out.append(PutImage(row, False))
    else:
        out.append(Reload(_key(row, keys), row, False))
    return out


def _joined_images(mapping: EsMapping, ref: TableRef, kind: str, row: dict[str, Any],
                   old: dict[str, Any] | None) -> list[dict[str, Any]]:
    if kind != UPDATE:
        return [row]
    if old is None:
        return [row]
    if not mapping.sql.touches(ref, old):
        return []
    before = {**row, **old}
    return [row, before] if any(before.get(k.column) != row.get(k.column) for k in ref.join_keys) else [row]


def _key(row: Mapping[str, Any], keys: Sequence[str]) -> tuple[Any, ...]:
    return tuple(row.get(k) for k in keys)
