"""Helpers for ES integration tests: source changes as Dmls, expected vs. actual documents."""

from __future__ import annotations

from typing import Any

import orjson

from adapter.dml import Dml
from adapter.writers.base import DataSource, MappingHeader, Routed, WriterConfig, WriterContext
from adapter.writers.es import EsWriter
from adapter.writers.es.ops import build_doc, identity


class Source:
    """Runs changes on MariaDB and returns the Dml canal would deliver (images read back, so typed)."""

    def __init__(self, conn: Any, database: str) -> None:
        self.conn = conn
        self.db = database

    def execute(self, sql: str) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql)

    def rows(self, table: str, where: str = "1=1") -> list[dict[str, Any]]:
        import pymysql.cursors

        with self.conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute(f"SELECT * FROM `{table}` WHERE {where} ORDER BY 1")
            return list(cur.fetchall())

    def pk(self, table: str) -> tuple[str, ...]:
        with self.conn.cursor() as cur:
            cur.execute(f"SHOW KEYS FROM `{table}` WHERE Key_name = 'PRIMARY'")
            return tuple(r[4] for r in cur.fetchall())

    def dml(self, table: str, kind: str, data: list[dict[str, Any]], old: list[dict[str, Any]] | None = None) -> Dml:
        return Dml("example", "g1", self.db, table, kind, self.pk(table), tuple(data),
                   tuple(old) if old is not None else None)

    def insert(self, table: str, values: str, where: str) -> Dml:
        self.execute(f"INSERT INTO `{table}` VALUES {values}")
        return self.dml(table, "INSERT", self.rows(table, where))

    def update(self, table: str, assign: str, where: str, after_where: str | None = None) -> Dml:
        before = self.rows(table, where)
        self.execute(f"UPDATE `{table}` SET {assign} WHERE {where}")
        after = self.rows(table, after_where or where)
        assert len(before) == len(after), "use after_where when the update changes the key"
        old = [{k: v for k, v in b.items() if a.get(k) != v} for b, a in zip(before, after, strict=True)]
        return self.dml(table, "UPDATE", after, old)

    def delete(self, table: str, where: str) -> Dml:
        before = self.rows(table, where)
        self.execute(f"DELETE FROM `{table}` WHERE {where}")
        return self.dml(table, "DELETE", before)


def context(database: str) -> WriterContext:
    url = f"mysql+pymysql://app:apppass@127.0.0.1:13306/{database}?charset=utf8mb4"
    return WriterContext(data_sources={"defaultDS": DataSource("defaultDS", url, database)})


def make_writer(cls: type[EsWriter], es_url: str, ctx: WriterContext, **props: Any) -> EsWriter:
    cfg = WriterConfig(cls.name, None, es_url.replace("http://", ""), {"timezone": "+08:00", **props},
                       "example", "g1")
    w = cls(cfg, ctx)
    w.open()
    return w


def load(cls: type[EsWriter], ctx: WriterContext, body: dict[str, Any], name: str = "m.yml") -> Any:
    header = MappingHeader(name, f"/conf/{cls.name}/{name}", "defaultDS", "example", "g1", None)
    return cls.parse_mapping(header, {"esMapping": body}, ctx)


def write(w: EsWriter, mapping: Any, *dmls: Dml) -> None:
    w.write([Routed(mapping, d) for d in dmls])


def _json(v: Any) -> Any:
    return orjson.loads(orjson.dumps(v))


def expected(w: EsWriter, mapping: Any) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """What the mapping SQL yields for the current source: _id → (routing, converted _source)."""
    db = w._db(mapping)  # the writer's own source connection
    assert db is not None
    out = {}
    types = w.client.field_types(mapping.index)
    for row in db.fetch(mapping.sql.select()):
        values = {f.name: row[f.name] for f in mapping.sql.fields}
        doc_id, routing = identity(mapping, values)
        doc = w.converter.doc(build_doc(mapping, values), types, mapping.obj_fields)
        out[str(doc_id)] = (routing, _json(doc))
    return out


def actual(w: EsWriter, mapping: Any) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """Documents of the mapping's index (only its relation's, when it has a join field)."""
    w.client.refresh(mapping.index)
    from adapter.writers.es.writer import relation_query

    query = relation_query(mapping) or {"match_all": {}}
    status, body = w.client.call("POST", f"/{mapping.index}/_search?scroll=1m",
                                 {"size": 5000, "query": query}, ok=(404,))
    hits: list[dict[str, Any]] = []
    while status < 300:
        page = ((body or {}).get("hits") or {}).get("hits") or []
        hits.extend(page)
        if not page or not body.get("_scroll_id"):
            break
        status, body = w.client.call("POST", "/_search/scroll", {"scroll": "1m", "scroll_id": body["_scroll_id"]})
    out = {}
    for h in hits:
        routing = h.get("_routing")
        if routing is None and "_routing" not in h and mapping.relation is not None:
            # some ES-API servers leave _routing out of search hits; a GET reports it
            _, doc = w.client.call("GET", f"/{mapping.index}/_doc/{h['_id']}")
            routing = doc.get("_routing")
        out[h["_id"]] = (routing, h["_source"])
    return out


def assert_synced(w: EsWriter, mapping: Any) -> None:
    exp, act = expected(w, mapping), actual(w, mapping)
    if act != exp:
        missing = sorted(set(exp) - set(act))[:10]
        extra = sorted(set(act) - set(exp))[:10]
        wrong = [(k, act[k], exp[k]) for k in sorted(set(act) & set(exp)) if act[k] != exp[k]][:5]
        raise AssertionError(f"index differs from the source: {len(exp)} expected, {len(act)} found; "
                             f"missing {missing}; extra {extra}; different {wrong}")
