"""Writer discovery by entry point and the logger writer's canal JSON lines."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from importlib.metadata import EntryPoint

import orjson
import pytest

from adapter.errors import ConfigError
from adapter.testing import RecordingWriter, make_dml
from adapter.writers.base import Routed, WriterConfig, WriterContext
from adapter.writers.logger import LoggerWriter
from adapter.writers.registry import GROUP, WriterRegistry


def test_builtin_logger_is_found_by_entry_point() -> None:
    reg = WriterRegistry()
    assert reg.load("logger") is LoggerWriter
    assert {"logger", "rdb", "es7", "redis"} <= set(reg.names())


def test_unknown_writer_lists_installed_names() -> None:
    with pytest.raises(ConfigError) as ei:
        WriterRegistry().load("es")
    msg = str(ei.value)
    assert "unknown writer 'es'" in msg and "logger" in msg and "es7" in msg and "did you mean" in msg


def test_extra_classes_and_missing_module(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = WriterRegistry(extra={"recording": RecordingWriter})
    assert reg.load("recording") is RecordingWriter
    fake = {"ghost": EntryPoint(name="ghost", value="no_such_module_xyz.sub:Writer", group=GROUP)}
    monkeypatch.setattr(reg, "_entry_points", lambda: fake)
    with pytest.raises(ConfigError) as ei:
        reg.load("ghost")
    assert "no_such_module_xyz" in str(ei.value)


def test_not_a_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = WriterRegistry()
    fake = {"bad": EntryPoint(name="bad", value="collections:OrderedDict", group=GROUP)}
    monkeypatch.setattr(reg, "_entry_points", lambda: fake)
    with pytest.raises(ConfigError, match="not a Writer"):
        reg.load("bad")


def test_logger_prints_canal_json(caplog: pytest.LogCaptureFixture) -> None:
    w = LoggerWriter(WriterConfig("logger", None, None, {}, "example", "g1"), WriterContext())
    d = make_dml(data=[{"id": 1, "amount": Decimal("1.50"), "at": dt.datetime(2024, 1, 2, 3, 4, 5), "b": b"\x01"}])
    with caplog.at_level(logging.INFO, logger="adapter.writers.logger"):
        w.write([Routed(None, d)])
    [rec] = caplog.records
    line = rec.getMessage()
    assert line.startswith("DML: ")
    body = orjson.loads(line[5:])
    assert body["data"] == [{"id": 1, "amount": "1.50", "at": "2024-01-02 03:04:05", "b": "\x01"}]
    assert body["old"] is None and body["type"] == "INSERT" and body["groupId"] == "g1"
