"""EsWriter with fake REST and source seams: pk resolution, es6 typing, mapping refresh, ETL paging."""

from __future__ import annotations

from typing import Any

import orjson

from adapter.dml import Dml
from adapter.writers.base import DataSource, MappingHeader, Routed, WriterConfig, WriterContext
from adapter.writers.es import Es6Writer, Es7Writer, EsWriter

CTX = WriterContext(data_sources={"ds": DataSource("ds", "mysql+pymysql://u@h/db", "db")})


class Rest:
    """Scripted ES: answers by path; records bulk bodies."""

    def __init__(self, version: str = "8.15.0", hits: list[dict[str, Any]] | None = None,
                 reject_first: bool = False) -> None:
        self.version = version
        self.hits = hits or []
        self.reject_first = reject_first
        self.bulks: list[list[dict[str, Any]]] = []
        self.mapping_gets = 0

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str = "application/json") -> tuple[int, Any]:
        if path == "/":
            return 200, {"version": {"number": self.version}}
        if path.endswith("/_mapping"):
            self.mapping_gets += 1
            return 200, {"i": {"mappings": {"properties": {"flag": {"type": "boolean"}}}}}
        if path.endswith("/_search"):
            return 200, {"hits": {"hits": self.hits}}
        if path == "/_bulk":
            lines = [orjson.loads(x) for x in (body or b"").splitlines()]
            self.bulks.append(lines)
            actions = [x for x in lines if set(x) & {"index", "update", "delete"}]
            if self.reject_first:
                self.reject_first = False
                return 200, {"items": [{next(iter(a)): {"status": 400}} for a in actions]}
            return 200, {"items": [{next(iter(a)): {"status": 200}} for a in actions]}
        return 404, {}

    def close(self) -> None:
        pass


class Db:
    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages = pages
        self.sql: list[str] = []

    def fetch(self, sql: str) -> list[dict[str, Any]]:
        self.sql.append(sql)
        if "information_schema" in sql:
            return [{"c": "id"}]
        return self.pages.pop(0) if self.pages else []

    def primary_key(self, database: str, table: str) -> tuple[str, ...]:
        return ("id",)

    def close(self) -> None:
        pass


def writer(cls: type[EsWriter], rest: Rest, db: Db | None = None) -> EsWriter:
    cfg = WriterConfig(cls.name, None, "127.0.0.1:9200", {"timezone": "UTC"}, "example", "g1")
    return cls(cfg, CTX, rest=rest, sleep=lambda s: None, source_db=lambda url: db)  # type: ignore[arg-type,return-value]


def mapping(cls: type[EsWriter], **body: Any) -> Any:
    return cls.parse_mapping(MappingHeader("m.yml", "/c/m.yml", "ds", "example", "g1", None),
                             {"esMapping": {"_index": "i", **body}}, CTX)


def dml(kind: str, rows: list[dict[str, Any]], old: list[dict[str, Any]] | None = None) -> Dml:
    return Dml("example", "g1", "db", "user", kind, ("id",), tuple(rows), tuple(old) if old else None)


def test_pk_mode_uses_pk_as_id_or_updates_existing_documents() -> None:
    rest = Rest(hits=[{"_id": "legacy-7", "_routing": None, "_source": {"id": 7}}])
    w = writer(Es7Writer, rest)
    m = mapping(Es7Writer, pk="id", sql="select a.id, a.flag from user a")
    w.write([Routed(m, dml("INSERT", [{"id": 1, "flag": 1}, {"id": 7, "flag": 0}]))])
    metas = [x for x in rest.bulks[0] if "index" in x or "update" in x]
    assert [next(iter(x.values()))["_id"] for x in metas] == ["1", "legacy-7"]
    assert rest.bulks[0][1] == {"id": 1, "flag": True}  # converted by the index mapping (boolean)
    w.write([Routed(m, dml("DELETE", [{"id": 7, "flag": 0}]))])
    deletes = [x["delete"]["_id"] for x in rest.bulks[1]]
    assert deletes == ["7", "legacy-7"]


def test_es6_sends_type_and_es8_cluster_does_not() -> None:
    for version, expect in (("6.8.0", "_doc"), ("8.15.0", None)):
        rest = Rest(version=version)
        w = writer(Es6Writer, rest)
        m = mapping(Es6Writer, _type="_doc", _id="_id", sql="select a.id as _id, a.flag from user a")
        w.write([Routed(m, dml("INSERT", [{"id": 1, "flag": 0}]))])
        assert rest.bulks[0][0]["index"].get("_type") == expect


def test_rejected_items_refresh_the_mapping_and_retry_once() -> None:
    rest = Rest(reject_first=True)
    w = writer(Es7Writer, rest)
    m = mapping(Es7Writer, _id="_id", sql="select a.id as _id, a.flag from user a")
    w.write([Routed(m, dml("INSERT", [{"id": 1, "flag": 1}]))])
    assert len(rest.bulks) == 2 and rest.mapping_gets == 2


def test_etl_pages_by_key_and_reports_progress() -> None:
    page1 = [{"_id": i, "name": f"n{i}", "__key0": i} for i in (1, 2)]
    page2 = [{"_id": 3, "name": "n3", "__key0": 3}]
    db = Db([page1, page2])
    rest = Rest()
    w = writer(Es7Writer, rest, db)
    m = mapping(Es7Writer, _id="_id", commitBatch=2, etlCondition="where a.name >= {}",
                sql="select a.id as _id, a.name from user a left join role b on b.id = a.role_id")
    seen: list[int] = []
    result = w.etl(m, ["n"], seen.append)  # type: ignore[attr-defined]
    assert result.succeeded and result.rows == 3 and seen == [2, 3]
    assert result.to_canal_dict() == {"succeeded": True, "resultMessage": "导入ES 数据：3 条"}
    queries = [s for s in db.sql if "information_schema" not in s]
    assert "a.name >= 'n'" in queries[0] and queries[0].endswith("ORDER BY a.`id` LIMIT 2")
    assert "a.`id` > 2" in queries[1]
    assert sum(len(b) for b in rest.bulks) == 6


def test_etl_failure_is_reported_not_raised() -> None:
    w = writer(Es7Writer, Rest(), None)
    m = mapping(Es7Writer, _id="_id", sql="select a.id as _id, b.x from user a left join role b on b.id = a.rid")
    result = w.etl(m, [], lambda n: None)  # type: ignore[attr-defined]
    assert not result.succeeded and "i etl failed! ==>" in (result.error_message or "")


class TruncRest(Rest):
    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str = "application/json") -> tuple[int, Any]:
        self.paths.append(path.split("?")[0])
        if "_delete_by_query" in path or path.endswith("_refresh"):
            return 200, {}
        return super().request(method, path, body, content_type)


def test_truncate_of_the_main_table_splits_the_batch() -> None:
    rest = TruncRest()
    w = writer(Es7Writer, rest)
    m = mapping(Es7Writer, _id="_id", sql="select a.id as _id, a.flag from user a")
    trunc = Dml("example", "g1", "db", "user", "TRUNCATE")
    w.write([Routed(m, dml("INSERT", [{"id": 1, "flag": 1}])), Routed(m, trunc),
             Routed(m, dml("INSERT", [{"id": 2, "flag": 1}]))])
    order = [p for p in rest.paths if p in ("/_bulk", "/i/_refresh", "/i/_delete_by_query")]
    assert order == ["/_bulk", "/i/_refresh", "/i/_delete_by_query", "/_bulk"]
