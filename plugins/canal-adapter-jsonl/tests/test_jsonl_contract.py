"""The jsonl example writer against the writer contract (found through its entry point)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from adapter.errors import ConfigError
from adapter.testing import WriterContract
from adapter.writers.base import Writer, WriterConfig, WriterContext


class TestJsonl(WriterContract):
    writer_name = "jsonl"

    def properties(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": str(tmp_path / "out" / "changes.jsonl"), "fsync": True}

    def observe(self, writer: Writer, tmp_path: Path) -> Any:
        # appends are at-least-once: a replay repeats lines, so compare the distinct changes
        lines = (tmp_path / "out" / "changes.jsonl").read_bytes().splitlines()
        return set(lines)

    def test_lines_are_canal_json(self, tmp_path: Path) -> None:
        w = self.make_writer(tmp_path)
        w.write(self.routed(type(w), tmp_path, self.batch()))
        w.close()
        rows = [orjson.loads(x) for x in (tmp_path / "out" / "changes.jsonl").read_bytes().splitlines()]
        assert [r["type"] for r in rows] == ["INSERT", "UPDATE", "DELETE"]
        assert rows[1]["old"] == [{"name": "b"}] and rows[0]["destination"] == "example"

    def test_path_is_required(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as ei:
            self.writer_class()(WriterConfig("jsonl", None, None, {}, "example", "g1"), WriterContext())
        assert ei.value.key == "properties.path"
