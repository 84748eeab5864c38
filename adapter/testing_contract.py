"""``WriterContract``: the checks every writer (built-in or plugin) must pass, as a pytest base class.

Use it in a test module::

    from adapter.testing import WriterContract

    class TestJsonl(WriterContract):
        writer_name = "jsonl"

        def properties(self, tmp_path):
            return {"path": str(tmp_path / "out.jsonl")}

        def observe(self, writer, tmp_path):
            return (tmp_path / "out.jsonl").read_text().splitlines()
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from adapter.dml import DELETE, INSERT, UPDATE, Dml
from adapter.testing import make_dml
from adapter.writers.base import Routed, Writer, WriterConfig, WriterContext
from adapter.writers.registry import WriterRegistry


class WriterContract:
    """Subclass as ``Test<Name>``; set ``writer_name`` and override ``properties`` / ``observe``."""

    writer_name: ClassVar[str] = ""
    key: ClassVar[str | None] = "contract"

    # ------------------------------------------------------------ hooks
    def properties(self, tmp_path: Path) -> dict[str, Any]:
        """The writer's ``properties`` (application.yml) for a fresh target under ``tmp_path``."""
        return {}

    def hosts(self, tmp_path: Path) -> str | None:
        return None

    def mapping(self, writer_cls: type[Writer], tmp_path: Path) -> Any:
        """A parsed mapping for ``db.t`` when the writer uses mapping files (None otherwise)."""
        return None

    def observe(self, writer: Writer, tmp_path: Path) -> Any:
        """The target's observable state (compared before/after a replay)."""
        raise NotImplementedError

    def batch(self) -> list[Dml]:
        """Insert three rows, update one (with aligned ``old``), delete one."""
        return [
            make_dml("t", INSERT, [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]),
            make_dml("t", UPDATE, [{"id": 2, "name": "b2"}], old=[{"name": "b"}]),
            make_dml("t", DELETE, [{"id": 3, "name": "c"}]),
        ]

    # ------------------------------------------------------------ helpers
    def writer_class(self) -> type[Writer]:
        return WriterRegistry().load(self.writer_name)

    def make_writer(self, tmp_path: Path) -> Writer:
        cls = self.writer_class()
        config = WriterConfig(self.writer_name, self.key, self.hosts(tmp_path), self.properties(tmp_path),
                              "example", "g1")
        writer = cls(config, WriterContext(conf_dir=str(tmp_path)))
        m = self.mapping(cls, tmp_path)
        if m is not None:
            writer.set_mappings([m])
        writer.open()
        return writer

    def routed(self, writer_cls: type[Writer], tmp_path: Path, dmls: Sequence[Dml]) -> list[Routed]:
        m = self.mapping(writer_cls, tmp_path)
        return [Routed(m, d) for d in dmls]

    # ------------------------------------------------------------ the contract
    def test_discovered_by_entry_point(self) -> None:
        cls = self.writer_class()
        assert issubclass(cls, Writer)
        assert cls.name == self.writer_name, "Writer.name must equal the entry-point name"

    def test_empty_batch_is_a_no_op(self, tmp_path: Path) -> None:
        w = self.make_writer(tmp_path)
        try:
            w.write([])
        finally:
            w.close()

    def test_applies_a_batch(self, tmp_path: Path) -> None:
        w = self.make_writer(tmp_path)
        try:
            w.write(self.routed(type(w), tmp_path, self.batch()))
            assert self.observe(w, tmp_path)
        finally:
            w.close()

    def test_replay_leaves_the_same_target(self, tmp_path: Path) -> None:
        w = self.make_writer(tmp_path)
        try:
            items = self.routed(type(w), tmp_path, self.batch())
            w.write(items)
            first = self.observe(w, tmp_path)
            w.write(items)  # a rolled-back batch is delivered again: writers must be idempotent
            assert self.observe(w, tmp_path) == first
        finally:
            w.close()

    def test_writes_are_serialized_with_etl(self, tmp_path: Path) -> None:
        w = self.make_writer(tmp_path)
        try:
            with w.sync_lock:  # reentrant: the worker holds it around write()
                w.write(self.routed(type(w), tmp_path, self.batch()[:1]))
        finally:
            w.close()
