"""Resolve planned items into document operations, with batched source-database queries."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from adapter.errors import FatalError
from adapter.sqlmap import FieldSpec, NotEvaluable, evaluate, result_key
from adapter.writers.base import chunks
from adapter.writers.es.config import EsMapping
from adapter.writers.es.ops import Op, delete_op, identity, put_op
from adapter.writers.es.plan import Affected, DeleteImage, Item, PutImage, Reload

Fetch = Callable[[str], list[dict[str, Any]]]

#: Keys / images per back-query (one IN list); a batch needs ceil(n / CHUNK) queries, not n.
CHUNK = 500


class Resolver:
    """Turns one mapping's planned items into ops. ``fetch`` runs SQL on the source (None: no DB)."""

    def __init__(self, mapping: EsMapping, fetch: Fetch | None, chunk: int = CHUNK) -> None:
        self.mapping = mapping
        self.fetch = fetch
        self.chunk = chunk

    def _db(self) -> Fetch:
        if self.fetch is None:
            raise FatalError(f"{self.mapping.header.file}: this mapping needs its source database "
                             "(dataSourceKey) for back-queries, and none is configured")
        return self.fetch

    # ---------------------------------------------------------------- evaluation
    def values(self, images: Sequence[dict[str, Any]], fields: Sequence[FieldSpec]) -> list[dict[str, Any]]:
        """Field values for main-table images: in Python where exact, else one DB query per chunk."""
        alias = self.mapping.sql.main.alias
        out: list[dict[str, Any] | None] = []
        pending: list[int] = []
        for i, image in enumerate(images):
            try:
                out.append({f.name: evaluate(f.expr, image, alias) for f in fields})
            except NotEvaluable:
                out.append(None)
                pending.append(i)
        for part in chunks(pending, self.chunk):
            rows = self._db()(self.mapping.sql.evaluate_sql(fields, [images[j] for j in part]))
            for j, row in zip(part, rows, strict=True):
                out[j] = {f.name: row[f.name] for f in fields}
        return [v if v is not None else {} for v in out]

    # ---------------------------------------------------------------- ops
    def ops(self, items: Sequence[Item], key_columns: Sequence[str] = ()) -> list[Op]:
        if self.mapping.direct:
            return self._direct(items)
        return self._requery(items, key_columns)

    def _direct(self, items: Sequence[Item]) -> list[Op]:
        m = self.mapping
        fields = list(m.sql.fields)
        ident = list(m.identity_fields)
        images: list[dict[str, Any]] = []
        ident_images: list[dict[str, Any]] = []
        for it in items:
            if isinstance(it, PutImage):
                images.append(it.image)
            elif isinstance(it, DeleteImage):
                ident_images.append(it.image)
                if it.unless is not None:
                    ident_images.append(it.unless)
        put_vals = iter(self.values(images, fields))
        del_vals = iter(self.values(ident_images, ident))
        out: list[Op] = []
        for it in items:
            if isinstance(it, PutImage):
                op = put_op(m, next(put_vals), insert=it.insert)
            elif isinstance(it, DeleteImage):
                op = self._delete(next(del_vals), next(del_vals) if it.unless is not None else None)
            else:
                continue
            if op is not None:
                out.append(op)
        return out

    def _delete(self, before: dict[str, Any], after: dict[str, Any] | None) -> Op | None:
        if after is not None and identity(self.mapping, before) == identity(self.mapping, after):
            return None
        return delete_op(self.mapping, before)

    def _requery(self, items: Sequence[Item], key_columns: Sequence[str]) -> list[Op]:
        m = self.mapping
        ident = list(m.identity_fields)
        deletes = [it for it in items if isinstance(it, DeleteImage)]
        reloads: dict[tuple[Any, ...], Reload] = {}
        affected = [it for it in items if isinstance(it, Affected)]
        for it in items:
            if isinstance(it, Reload) and all(v is not None for v in it.key):
                reloads.pop(it.key, None)  # keep the latest event's position and insert flag
                reloads[it.key] = it
        if (reloads or affected) and not key_columns:
            raise FatalError(f"{m.header.file}: main table {m.sql.main.table!r} has no primary key to re-query by")
        ident_images: list[dict[str, Any]] = []
        for d in deletes:
            ident_images.append(d.image)
            if d.unless is not None:
                ident_images.append(d.unless)
        vals = iter(self.values(ident_images, ident))
        out: list[Op] = []
        for d in deletes:
            op = self._delete(next(vals), next(vals) if d.unless is not None else None)
            if op is not None:
                out.append(op)

        rows = self._query(list(reloads), affected, key_columns)
        if m.sql.ast.args.get("where"):
            # The outer WHERE filters rows out: a reloaded key that no longer matches loses its document.
            gone = [r.image for k, r in reloads.items() if k not in rows]
            for v in self.values(gone, ident):
                op = delete_op(m, v)
                if op is not None:
                    out.append(op)
        names = [f.name for f in m.sql.fields]
        for key, row in rows.items():
            reload = reloads.get(key)
            op = put_op(m, {n: row[n] for n in names}, insert=reload is not None and reload.insert)
            if op is not None:
                out.append(op)
        return out

    def _query(self, keys: list[tuple[Any, ...]], affected: list[Affected],
               key_columns: Sequence[str]) -> dict[tuple[Any, ...], dict[str, Any]]:
        sql = self.mapping.sql
        queries = [sql.select_by_keys(key_columns, part) for part in chunks(keys, self.chunk)]
        for a in affected:
            for part in chunks(a.images, self.chunk):
                q = sql.select_affected(a.ref, part, key_columns)
                if q is not None:
                    queries.append(q)
        rows: dict[tuple[Any, ...], dict[str, Any]] = {}
        width = len(key_columns)
        for q in queries:
            for row in self._db()(q):
                rows[_norm(result_key(row, width))] = row
        # Reload keys come from binlog images; normalise both sides so 1 == 1 across types.
        return {k2: rows[k2] for k2 in rows} if not keys else _align(rows, keys)


def _norm(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(v.lower() if isinstance(v, str) else v for v in key)


def _align(rows: dict[tuple[Any, ...], dict[str, Any]],
           keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Re-key result rows by the reload keys as given (case-insensitive string keys, like MySQL)."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for k in keys:
        row = rows.pop(_norm(k), None)
        if row is not None:
            out[k] = row
    out.update(rows)  # documents found through joined tables only
    return out
