"""The es6/es7/es8 writers: row changes and ETL pages → one ordered bulk per batch, under one lock."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from adapter.dml import TRUNCATE, Dml
from adapter.errors import CanalError, FatalError
from adapter.sqlmap import SourceDb, etl_condition, result_key
from adapter.writers.base import EtlResult, MappingHeader, Routed, Writer, WriterConfig, WriterContext, chunks
from adapter.writers.es.client import BulkEntry, EsClient, ItemsRejected, Rest, TransportRest
from adapter.writers.es.config import EsMapping, parse_es_mapping, parse_settings
from adapter.writers.es.convert import Converter
from adapter.writers.es.fairlock import FairLock
from adapter.writers.es.ops import DELETE, INDEX, Op, bulk_lines, id_text, put_op
from adapter.writers.es.plan import plan
from adapter.writers.es.sync import Fetch, Resolver

log = logging.getLogger(__name__)


class EsWriter(Writer):
    """Shared implementation; subclasses only name the entry point and mapping folder."""

    name: ClassVar[str] = "es8"
    mapping_dir: ClassVar[str | None] = "es8"

    def __init__(self, config: WriterConfig, context: WriterContext, *, rest: Rest | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 source_db: Callable[[str], SourceDb] = SourceDb) -> None:
        super().__init__(config, context)
        self.settings = parse_settings(config)
        self.converter = Converter(self.settings.timezone)
        self._rest = rest
        self._sleep = sleep
        self._source_db = source_db
        self._client: EsClient | None = None
        self._dbs: dict[str, SourceDb] = {}
        self._keys: dict[int, tuple[str, ...]] = {}
        #: Held around each stream batch and each ETL page (select + index), so they never interleave.
        self.lock = FairLock()

    @classmethod
    def parse_mapping(cls, header: MappingHeader, raw: Mapping[str, Any], context: WriterContext) -> EsMapping:
        return parse_es_mapping(header, raw, context, cls.name)

    # ---------------------------------------------------------------- lifecycle
    @property
    def client(self) -> EsClient:
        if self._client is None:
            rest = self._rest if self._rest is not None else TransportRest(self.settings)
            self._client = EsClient(rest, retries=self.settings.bulk_retries, backoff=self.settings.retry_backoff,
                                    max_bytes=self.settings.bulk_max_bytes, sleep=self._sleep)
        return self._client

    def open(self) -> None:
        _ = self.client  # builds the transport; no request yet, so a cluster that is down does not block start

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        for db in self._dbs.values():
            db.close()
        self._dbs.clear()

    # ---------------------------------------------------------------- stream
    def write(self, items: Sequence[Routed]) -> None:
        """One ordered bulk per batch; a TRUNCATE of a main table splits the batch around a delete-by-query."""
        segments: list[dict[int, tuple[EsMapping, list[Dml]]] | EsMapping] = [{}]
        for it in items:
            m, d = it.mapping, it.dml
            if not isinstance(m, EsMapping) or d.is_ddl:
                continue
            if d.type == TRUNCATE:
                refs = m.sql.tables_for(d.database, d.table)
                if any(r.is_main for r in refs):
                    segments += [m, {}]
                elif refs:
                    log.warning("TRUNCATE of a joined table: documents keep its old values until an ETL",
                                extra={"mapping_file": m.header.file, "table": d.table})
                continue
            seg = segments[-1]
            assert isinstance(seg, dict)
            seg.setdefault(id(m), (m, []))[1].append(d)
        with self.lock:
            for seg in segments:
                if isinstance(seg, EsMapping):
                    self.truncate(seg)
                    continue
                ops: list[Op] = []
                for mapping, dmls in seg.values():
                    ops.extend(self.ops_for(mapping, dmls))
                self.send(ops, max_actions=max((m.commit_batch for m, _ in seg.values()), default=1000))

    def truncate(self, m: EsMapping) -> None:
        """The main table was emptied: delete the mapping's documents (its relation only, if any)."""
        self.client.refresh(m.index)  # delete-by-query only sees refreshed documents
        query = relation_query(m) or {"match_all": {}}
        self.client.call("POST", f"/{m.index}/_delete_by_query?conflicts=proceed&refresh=true", {"query": query},
                         ok=(404,))

    def ops_for(self, mapping: EsMapping, dmls: Sequence[Dml]) -> list[Op]:
        """Plan and resolve one mapping's share of a batch (back-queries batched per batch)."""
        keys = () if mapping.direct else self.key_columns(mapping, dmls)
        items = plan(mapping, dmls, keys)
        if not items:
            return []
        return Resolver(mapping, self._fetch_for(mapping, required=not mapping.direct)).ops(items, keys)

    # ---------------------------------------------------------------- sending
    def send(self, ops: Sequence[Op], max_actions: int = 1000) -> None:
        """One ordered bulk (split by size/count); a rejected item refreshes the mapping cache and retries once."""
        if not ops:
            return
        resolved = self._resolve_pk(ops)
        for attempt in (1, 2):
            types: dict[str, dict[str, str]] = {}  # one mapping lookup per index per send
            entries = [self._entry(op, types) for op in resolved]
            try:
                self.client.bulk(entries, max_actions=max_actions)
                return
            except ItemsRejected as e:
                if attempt == 2:
                    raise FatalError(f"Elasticsearch rejected documents: {e}") from e
                log.warning("bulk items rejected; refreshing the index mapping and retrying once",
                            extra={"indices": sorted(e.indices), "problem": str(e)})
                self.client.invalidate(e.indices)

    def _entry(self, op: Op, types: dict[str, dict[str, str]]) -> BulkEntry:
        m = op.mapping
        source = None
        if op.doc is not None and m is not None:
            if op.index not in types:
                types[op.index] = self.client.field_types(op.index)
            source = self.converter.doc(op.doc, types[op.index], m.obj_fields)
        doc_type = m.type if m is not None and m.type and self.client.server_major() <= 6 else None
        kind = "update" if op.kind not in (INDEX, DELETE) else op.kind
        return BulkEntry(bulk_lines(op, source, doc_type=doc_type), kind, op.index, op.id)

    def _resolve_pk(self, ops: Sequence[Op]) -> list[Op]:
        """pk mode: address existing documents found by a terms query on the pk field (canal-created ones
        have generated ids); otherwise use the pk value itself as ``_id`` so a replay cannot duplicate."""
        wanted: dict[tuple[str, str], dict[str, Any]] = {}
        for op in ops:
            if op.id is None and op.mapping is not None and op.mapping.pk_field:
                wanted.setdefault((op.index, op.mapping.pk_field), {})[id_text(op.pk) or ""] = op.pk
        found: dict[tuple[str, str], dict[str, list[tuple[str, str | None]]]] = {}
        for (index, pk_field), values in wanted.items():
            ptype = self.client.field_types(index).get(pk_field)
            hits: dict[str, list[tuple[str, str | None]]] = {}
            for part in chunks(list(values.values()), 500):
                hits.update(self.client.find_ids(index, pk_field,
                                                 [self.converter.value(v, ptype) for v in part]))
            found[(index, pk_field)] = hits
        out: list[Op] = []
        for op in ops:
            if op.id is not None or op.mapping is None or not op.mapping.pk_field:
                out.append(op)
                continue
            own = id_text(op.pk) or ""
            matches = found.get((op.index, op.mapping.pk_field), {}).get(own, [])
            legacy = [(i, r) for i, r in matches if i != own]
            if op.kind == DELETE:
                out.append(op.with_id(own))
            out.extend(op.with_id(i, r) for i, r in legacy)
            if op.kind != DELETE and not legacy:
                out.append(op.with_id(own))
        return out

    # ---------------------------------------------------------------- source database
    def _db(self, mapping: EsMapping) -> SourceDb | None:
        key = mapping.header.data_source_key
        if not key:
            return None
        if key not in self._dbs:
            ds = self.context.data_sources.get(key)
            if ds is None:
                raise FatalError(f"{mapping.header.file}: data source {key!r} is not configured")
            self._dbs[key] = self._source_db(ds.url)
        return self._dbs[key]

    def _fetch_for(self, mapping: EsMapping, *, required: bool) -> Fetch | None:
        db = self._db(mapping)
        if db is None and required:
            raise FatalError(f"{mapping.header.file}: dataSourceKey is required for back-queries")
        return db.fetch if db is not None else None

    def key_columns(self, mapping: EsMapping, dmls: Sequence[Dml] = ()) -> tuple[str, ...]:
        """The main table's key (from the source schema; else the binlog's pk names; else a plain ``_id``)."""
        cached = self._keys.get(id(mapping))
        if cached:
            return cached
        main = mapping.sql.main
        db = self._db(mapping)
        keys: tuple[str, ...] = ()
        if db is not None:
            database, _ = main.qualified(mapping.sql.default_database)
            keys = tuple(k.lower() for k in db.primary_key(database, main.table))
        if not keys:
            for d in dmls:
                if d.pk_names and main in mapping.sql.tables_for(d.database, d.table):
                    keys = tuple(k.lower() for k in d.pk_names)
                    break
        if not keys:
            f = mapping.sql.field(mapping.id_field or mapping.pk_field or "")
            if f is not None and f.simple and f.column is not None and f.column.alias == main.alias:
                keys = (f.column.column,)
        if keys:
            self._keys[id(mapping)] = keys
        return keys

    # ---------------------------------------------------------------- ETL / count
    def etl(self, mapping: Any, params: Sequence[str], progress: Callable[[int], None]) -> EtlResult:
        """Keyset-paged full load through the mapping SQL; each page's select+index holds the writer lock."""
        m: EsMapping = mapping
        total = 0
        try:
            cond = etl_condition(m.etl_condition, params, source=m.header.file)
            keys = self.key_columns(m)
            if not keys:
                raise FatalError(f"main table {m.sql.main.table!r} has no primary key to page by")
            fetch = self._fetch_for(m, required=True)
            assert fetch is not None
            names = [f.name for f in m.sql.fields]
            after: tuple[Any, ...] | None = None
            while True:
                with self.lock:
                    rows = fetch(m.sql.select_page(keys, after, m.commit_batch, cond))
                    ops = [op for r in rows if (op := put_op(m, {n: r[n] for n in names}, insert=True))]
                    self.send(ops, max_actions=m.commit_batch)
                if not rows:
                    break
                total += len(rows)
                after = result_key(rows[-1], len(keys))
                progress(total)
                if len(rows) < m.commit_batch:
                    break
        except CanalError as e:
            log.error("ES ETL failed", extra={"mapping_file": m.header.file, "index": m.index, "rows": total,
                                              "problem": str(e)})
            return EtlResult(False, f"导入ES 数据：{total} 条", f"{m.index} etl failed! ==>{e}", rows=total)
        log.info("ES ETL done", extra={"mapping_file": m.header.file, "index": m.index, "rows": total})
        return EtlResult(True, f"导入ES 数据：{total} 条", rows=total)

    def count(self, mapping: Any) -> int:
        """Documents in the mapping's index after a refresh (only its relation's, with a join field)."""
        m: EsMapping = mapping
        self.client.refresh(m.index)  # count what was written, not what the last periodic refresh saw
        return self.client.count(m.index, relation_query(m))

    def count_info(self, mapping: Any) -> dict[str, Any]:
        """canal's /count JSON for ES: ``{"esIndex": ..., "count": ...}``."""
        return {"esIndex": mapping.index, "count": self.count(mapping)}


def relation_query(m: EsMapping) -> dict[str, Any] | None:
    """Documents of the mapping's relation: ``term`` on the join field (real ES), or on its ``name``
    sub-field (ES-API servers that store the join value as an object); unmapped fields match nothing."""
    if m.relation is None:
        return None
    rel = m.relation
    return {"bool": {"should": [{"term": {rel.join_field: rel.name}}, {"term": {f"{rel.join_field}.name": rel.name}}],
                     "minimum_should_match": 1}}


class Es6Writer(EsWriter):
    name: ClassVar[str] = "es6"
    mapping_dir: ClassVar[str | None] = "es6"


class Es7Writer(EsWriter):
    name: ClassVar[str] = "es7"
    mapping_dir: ClassVar[str | None] = "es7"


class Es8Writer(EsWriter):
    name: ClassVar[str] = "es8"
    mapping_dir: ClassVar[str | None] = "es8"
