"""Document operations (index / upsert / delete) built from field values, and their bulk NDJSON form."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from adapter.writers.es.config import EsMapping

INDEX = "index"  # replace the whole document
UPSERT = "upsert"  # partial update with doc_as_upsert
DELETE = "delete"


@dataclass(frozen=True)
class Op:
    """One document operation. In pk mode ``id`` is None until the writer resolves ``pk`` to ids."""

    kind: str
    index: str
    id: str | None
    routing: str | None = None
    doc: Mapping[str, Any] | None = None  # raw field values; converted when serialised
    pk: Any = None
    mapping: EsMapping | None = None

    def with_id(self, doc_id: str, routing: str | None = None) -> Op:
        return Op(self.kind, self.index, doc_id, routing if routing is not None else self.routing, self.doc,
                  self.pk, self.mapping)


def id_text(value: Any) -> str | None:
    """canal's ``String.valueOf`` of an id/routing value (None stays None)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value)


def routing_of(mapping: EsMapping, values: Mapping[str, Any]) -> str | None:
    rel = mapping.relation
    return id_text(values.get(rel.parent)) if rel is not None and rel.parent else None


def build_doc(mapping: EsMapping, values: Mapping[str, Any]) -> dict[str, Any]:
    """``_source`` from field values: without the ``_id`` field and ``skips``, plus the join field."""
    doc = {k: v for k, v in values.items() if k != mapping.id_field and k not in mapping.skips}
    rel = mapping.relation
    if rel is not None:
        join: dict[str, Any] = {"name": rel.name}
        if rel.parent:
            join["parent"] = id_text(values.get(rel.parent))
        doc[rel.join_field] = join
    return doc


def put_op(mapping: EsMapping, values: Mapping[str, Any], *, insert: bool) -> Op | None:
    """index (insert without ``upsert``) or upsert op for one row of field values; None without an id."""
    kind = INDEX if insert and not mapping.upsert else UPSERT
    doc = build_doc(mapping, values)
    if mapping.id_field:
        doc_id = id_text(values.get(mapping.id_field))
        if doc_id is None:
            return None
        return Op(kind, mapping.index, doc_id, routing_of(mapping, values), doc, mapping=mapping)
    pk = values.get(mapping.pk_field or "")
    if pk is None:
        return None
    return Op(kind, mapping.index, None, routing_of(mapping, values), doc, pk=pk, mapping=mapping)


def delete_op(mapping: EsMapping, values: Mapping[str, Any]) -> Op | None:
    """delete op addressed by the identity fields in ``values`` (None when the id is NULL)."""
    if mapping.id_field:
        doc_id = id_text(values.get(mapping.id_field))
        return None if doc_id is None else Op(DELETE, mapping.index, doc_id, routing_of(mapping, values),
                                             mapping=mapping)
    pk = values.get(mapping.pk_field or "")
    return None if pk is None else Op(DELETE, mapping.index, None, routing_of(mapping, values), pk=pk,
                                      mapping=mapping)


def identity(mapping: EsMapping, values: Mapping[str, Any]) -> tuple[str | None, str | None]:
    key = mapping.id_field or mapping.pk_field or ""
    return id_text(values.get(key)), routing_of(mapping, values)


def bulk_lines(op: Op, source: Mapping[str, Any] | None, *, doc_type: str | None) -> bytes:
    """The NDJSON lines of one op (``source`` = the converted doc). ``doc_type`` only for ES 6."""
    meta: dict[str, Any] = {"_index": op.index, "_id": op.id}
    if doc_type:
        meta["_type"] = doc_type
    if op.routing is not None:
        meta["routing"] = op.routing
    if op.kind == DELETE:
        return orjson.dumps({"delete": meta}) + b"\n"
    if op.kind == INDEX:
        return orjson.dumps({"index": meta}) + b"\n" + orjson.dumps(source or {}) + b"\n"
    meta["retry_on_conflict"] = 3
    body = {"doc": source or {}, "doc_as_upsert": True}
    return orjson.dumps({"update": meta}) + b"\n" + orjson.dumps(body) + b"\n"
