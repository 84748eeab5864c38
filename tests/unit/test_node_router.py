"""Mapping files → writer bindings → routing; hot reload keeps the previous mapping on a bad file."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from adapter.errors import ConfigError
from adapter.node.configload import TaskSpec, WriterSpec
from adapter.node.mappings import MappingStore, WriterSlot
from adapter.node.router import MappingReloader, Router, apply_bindings
from adapter.testing import RecordingMappedWriter, RecordingWriter, make_dml
from adapter.writers.base import DataSource, Writer, WriterConfig, WriterContext

CTX = WriterContext(data_sources={"defaultDS": DataSource("defaultDS", "sqlite://", "")})


def slot(cls: type[Writer], dest: str, group: str, key: str | None, index: int = 0) -> WriterSlot:
    k = key or f"AUTO_GENERATED_-{dest}-{group}-{index}"
    spec = WriterSpec(cls.name, k, key is not None, None, None, {}, "x")
    task = TaskSpec(dest, group, 1001, (spec,), "y")
    return WriterSlot(cls(WriterConfig(cls.name, key, None, {}, dest, group), CTX), spec, task)


def mapping(conf: Path, name: str, body: str) -> Path:
    d = conf / "recording"
    d.mkdir(exist_ok=True)
    p = d / name
    p.write_text(body)
    # make the change visible to a stat-based scanner even within one mtime tick
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    return p


def build(conf: Path, slots: list[WriterSlot]) -> tuple[MappingStore, Router]:
    store = MappingStore(str(conf), slots, CTX, env={"TABLE_FROM_ENV": "orders"})
    store.load_all()
    router = Router(slots)
    apply_bindings(store, router)
    return store, router


def routed(router: Router, dest: str, group: str, *dmls: Any) -> dict[str, list[tuple[str, str]]]:
    out = {}
    for s, items in router.route(dest, group, list(dmls)):
        out[s.spec.key] = [(i.dml.table, i.mapping.header.task if i.mapping else "-") for i in items]
    return out


def test_keyed_and_keyless_binding_and_case_insensitive_routing(tmp_path: Path) -> None:
    keyed = slot(RecordingMappedWriter, "example", "g1", "Rec1")
    keyless = slot(RecordingMappedWriter, "example", "g1", None, 1)
    other_group = slot(RecordingMappedWriter, "example", "g2", None, 0)
    logger = slot(RecordingWriter, "example", "g1", None, 2)
    mapping(tmp_path, "a.yml", "outerAdapterKey: rec1\ndestination: example\ndatabase: Shop\ntable: Users\n")
    mapping(tmp_path, "b.yml", "destination: example\ngroupId: g1\ndatabase: shop\ntable: users\n")
    mapping(tmp_path, "c.yml", "destination: example\ndatabase: shop\ntable: orders\n")
    _, router = build(tmp_path, [keyed, keyless, other_group, logger])
    r = routed(router, "example", "g1", make_dml("USERS", database="SHOP"), make_dml("orders", database="shop"),
               make_dml("other", database="shop"))
    assert r["Rec1"] == [("USERS", "a.yml")]
    assert r[keyless.spec.key] == [("USERS", "b.yml"), ("orders", "c.yml")]
    assert r[logger.spec.key] == [("USERS", "-"), ("orders", "-"), ("other", "-")]
    r2 = routed(router, "example", "g2", make_dml("users", database="shop"), make_dml("orders", database="shop"))
    assert r2[other_group.spec.key] == [("orders", "c.yml")]  # b.yml names group g1
    assert keyed.writer.mappings and keyed.writer.mappings[0].header.task == "a.yml"


def test_destination_mismatch_never_routes_and_unbound_is_logged(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    s = slot(RecordingMappedWriter, "example", "g1", "k")
    mapping(tmp_path, "a.yml", "outerAdapterKey: k\ndestination: other\ndatabase: d\ntable: t\n")
    mapping(tmp_path, "b.yml", "outerAdapterKey: nobody\ndatabase: d\ntable: t\n")
    with caplog.at_level(logging.WARNING):
        _, router = build(tmp_path, [s])
    assert routed(router, "example", "g1", make_dml("t", database="d")) == {"k": []}
    msgs = [r.getMessage() for r in caplog.records]
    assert any("never match" in m for m in msgs) and any("binds to no configured writer" in m for m in msgs)


def test_wildcard_table_and_placeholders(tmp_path: Path) -> None:
    s = slot(RecordingMappedWriter, "example", "g1", "k")
    mapping(tmp_path, "all.yml", "outerAdapterKey: k\ndatabase: d\ntable: '*'\n")
    mapping(tmp_path, "env.yml", "outerAdapterKey: k\ndatabase: d2\ntable: ${TABLE_FROM_ENV}\n")
    _, router = build(tmp_path, [s])
    r = routed(router, "example", "g1", make_dml("x", database="d"), make_dml("orders", database="d2"))
    assert r["k"] == [("x", "all.yml"), ("orders", "env.yml")]


def test_startup_errors_name_file_and_key(tmp_path: Path) -> None:
    s = slot(RecordingMappedWriter, "example", "g1", "k")
    p = mapping(tmp_path, "bad.yml", "outerAdapterKey: k\ndataSourceKey: nope\ndatabase: d\ntable: t\n")
    with pytest.raises(ConfigError) as ei:
        build(tmp_path, [s])
    assert ei.value.source == str(p) and ei.value.key == "dataSourceKey" and "nope" in str(ei.value)
    p.write_text("outerAdapterKey: k\ndatabase: [1\n")
    with pytest.raises(ConfigError) as ei:
        build(tmp_path, [s])
    assert ei.value.source == str(p) and "line" in str(ei.value)
    p.write_text("outerAdapterKey: k\ndatabase: 5\n")
    with pytest.raises(ConfigError) as ei:
        build(tmp_path, [s])
    assert ei.value.source == str(p)
    p.write_text("outerAdapterKey: k\ndataSourceKey: defaultDS\ndatabase: d\ntable: t\n")
    build(tmp_path, [s])  # a known data source is fine


def test_reload_add_change_bad_remove(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = slot(RecordingMappedWriter, "example", "g1", "k")
    (tmp_path / "recording").mkdir()
    store, router = build(tmp_path, [s])
    reloader = MappingReloader(store, router, interval=0)
    assert routed(router, "example", "g1", make_dml("t", database="d")) == {"k": []}
    mapping(tmp_path, "m.yml", "outerAdapterKey: k\ndatabase: d\ntable: t\n")
    assert reloader.poll_once()
    assert routed(router, "example", "g1", make_dml("t", database="d")) == {"k": [("t", "m.yml")]}
    assert not reloader.poll_once()  # nothing changed
    mapping(tmp_path, "m.yml", "outerAdapterKey: k\ndatabase: d\ntable: t2\n")
    assert reloader.poll_once()
    assert routed(router, "example", "g1", make_dml("t2", database="d")) == {"k": [("t2", "m.yml")]}
    with caplog.at_level(logging.ERROR):
        mapping(tmp_path, "m.yml", "outerAdapterKey: k\ndatabase: [broken\n")
        assert not reloader.poll_once()
        assert not reloader.poll_once()  # the bad version is reported once
    assert sum("rejected" in r.getMessage() for r in caplog.records) == 1
    assert routed(router, "example", "g1", make_dml("t2", database="d")) == {"k": [("t2", "m.yml")]}
    (tmp_path / "recording" / "m.yml").unlink()
    assert reloader.poll_once()
    assert routed(router, "example", "g1", make_dml("t2", database="d")) == {"k": []}
    assert s.writer.mappings == ()


def test_find_for_rest(tmp_path: Path) -> None:
    a = slot(RecordingMappedWriter, "example", "g1", "k1")
    b = slot(RecordingMappedWriter, "example", "g1", "k2")
    mapping(tmp_path, "m.yml", "outerAdapterKey: k2\ndatabase: d\ntable: t\n")
    store, _ = build(tmp_path, [a, b])
    [(found, spec)] = store.find("recording_mapped", "m.yml")
    assert found is b and spec.header.task == "m.yml"
    assert store.find("recording_mapped", "m") == [(b, spec)]
    assert store.find("recording_mapped", "m.yml", key="K2") == [(b, spec)]
    assert store.find("recording_mapped", "m.yml", key="k1") == []
    assert store.find("rdb", "m.yml") == []


class PickyWriter(RecordingMappedWriter):
    """Refuses (like rdb does for a missing target column) any mapping whose table is 'refused'."""

    name = "picky"

    def set_mappings(self, mappings: Any) -> None:
        for m in mappings:
            if any(t == "refused" for _, t in m.source_tables()):
                raise ConfigError("target has no such table", source=m.header.file, key="table")
        super().set_mappings(mappings)


def test_reload_keeps_previous_version_when_the_writer_refuses(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    s = slot(PickyWriter, "example", "g1", "k")
    mapping(tmp_path, "m.yml", "outerAdapterKey: k\ndatabase: d\ntable: t\n")
    store, router = build(tmp_path, [s])
    reloader = MappingReloader(store, router, interval=0)
    with caplog.at_level(logging.ERROR):
        mapping(tmp_path, "m.yml", "outerAdapterKey: k\ndatabase: d\ntable: refused\n")
        mapping(tmp_path, "new.yml", "outerAdapterKey: k\ndatabase: d\ntable: refused\n")
        mapping(tmp_path, "ok.yml", "outerAdapterKey: k\ndatabase: d\ntable: t3\n")
        reloader.poll_once()
    assert any("previous version stays" in r.getMessage() for r in caplog.records)
    assert routed(router, "example", "g1", make_dml("t", database="d"), make_dml("t3", database="d")) == {
        "k": [("t", "m.yml"), ("t3", "ok.yml")]
    }
    assert routed(router, "example", "g1", make_dml("refused", database="d")) == {"k": []}
    # at startup the same refusal stops the node
    with pytest.raises(ConfigError):
        build(tmp_path, [slot(PickyWriter, "example", "g1", "k")])
