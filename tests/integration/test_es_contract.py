"""The shared WriterContract for es7 and es8 against the ES-API server (direct single-table mapping)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from adapter.testing_contract import WriterContract
from adapter.writers.base import MappingHeader, Writer, WriterContext


class _EsContract(WriterContract):
    index = ""

    @pytest.fixture(autouse=True)
    def _es(self, es_url: str, es_index_prefix: str) -> None:
        self.es_url = es_url
        self.index = es_index_prefix + uuid.uuid4().hex[:6]

    def hosts(self, tmp_path: Path) -> str | None:
        return self.es_url

    def properties(self, tmp_path: Path) -> dict[str, Any]:
        return {"timezone": "UTC"}

    def mapping(self, writer_cls: type[Writer], tmp_path: Path) -> Any:
        header = MappingHeader("t.yml", str(tmp_path / "t.yml"), None, "example", "g1", None)
        body = {"esMapping": {"_index": self.index, "_id": "_id", "sql": "select a.id as _id, a.name from db.t a"}}
        return writer_cls.parse_mapping(header, body, WriterContext())

    def observe(self, writer: Writer, tmp_path: Path) -> Any:
        client = writer.client  # type: ignore[attr-defined]
        client.refresh(self.index)
        _, body = client.call("POST", f"/{self.index}/_search", {"size": 100}, ok=(404,))
        return sorted((h["_id"], h["_source"]["name"]) for h in (body or {}).get("hits", {}).get("hits", []))


class TestEs7Contract(_EsContract):
    writer_name = "es7"


class TestEs8Contract(_EsContract):
    writer_name = "es8"
