"""The composition root without services: config → writers/mappings/workers, startup errors, the CLI."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapter.errors import ConfigError
from adapter.node.app import AdapterNode
from adapter.node.configload import load_config
from adapter.node.main import main
from adapter.node.worker import Backoff
from adapter.testing import (
    FailingWriter,
    FakeSource,
    RecordingMappedWriter,
    RecordingWriter,
    make_entry,
    recording,
    wait_until,
)
from adapter.writers.registry import WriterRegistry

REG = WriterRegistry(extra={"recording": RecordingWriter, "recording_mapped": RecordingMappedWriter,
                            "failing": FailingWriter})


def conf(tmp_path: Path, writers: list[dict[str, Any]], **extra: Any) -> Path:
    cc = {"consumerProperties": {"canal.tcp.server.host": "127.0.0.1:1"},
          "canalAdapters": [{"instance": "example", "groups": [{"groupId": "g1", "outerAdapters": writers}]}],
          **extra}
    (tmp_path / "application.yml").write_text(yaml.safe_dump({"server": {"port": 0}, "canal.conf": cc}))
    return tmp_path


def test_node_runs_tasks_routes_and_stops(tmp_path: Path) -> None:
    sink, mapped = uuid.uuid4().hex, uuid.uuid4().hex
    d = conf(tmp_path, [{"name": "recording", "properties": {"sink": sink}},
                        {"name": "recording_mapped", "key": "m1", "properties": {"sink": mapped}}])
    (d / "recording").mkdir()
    (d / "recording" / "users.yml").write_text("outerAdapterKey: m1\ndatabase: shop\ntable: users\n")
    source = FakeSource([[make_entry("shop", "users", "INSERT", [{"id": 1}]),
                          make_entry("shop", "orders", "INSERT", [{"id": 2}])]])
    node = AdapterNode(load_config(d), registry=REG, source_factory=lambda task: source, rest=False,
                       mapping_poll_s=0)
    node.start()
    try:
        wait_until(lambda: "ack:1" in source.log, what="ack")
        assert len(recording(sink).rows()) == 2  # a writer without mappings gets everything
        assert [r[0] for r in recording(mapped).rows()] == ["users"]
        h = node.health()
        assert h["status"] == "ok" and h["tasks"] == ["example/g1"] and h["destinations"] == {"example": "on"}
        assert b"canal_adapter_rows_total" in node.metrics()
    finally:
        node.stop()
    assert source.log[-1] == "disconnect"


def test_unknown_writer_names_file_and_key(tmp_path: Path) -> None:
    d = conf(tmp_path, [{"name": "logger"}, {"name": "es"}])
    with pytest.raises(ConfigError) as ei:
        AdapterNode(load_config(d), registry=REG, rest=False)
    assert ei.value.source == str(d / "application.yml")
    assert ei.value.key == "canal.conf.canalAdapters[0].groups[0].outerAdapters[1].name"
    assert "es7" in str(ei.value)


def test_mapping_with_missing_data_source_refuses_to_start(tmp_path: Path) -> None:
    d = conf(tmp_path, [{"name": "recording_mapped", "key": "m1"}])
    (d / "recording").mkdir()
    (d / "recording" / "t.yml").write_text("outerAdapterKey: m1\ndataSourceKey: defaultDS\ndatabase: a\ntable: b\n")
    with pytest.raises(ConfigError) as ei:
        AdapterNode(load_config(d), registry=REG, rest=False)
    assert ei.value.source == str(d / "recording" / "t.yml") and ei.value.key == "dataSourceKey"


def test_no_source_configured(tmp_path: Path) -> None:
    d = conf(tmp_path, [{"name": "logger"}], consumerProperties={})
    with pytest.raises(ConfigError) as ei:
        AdapterNode(load_config(d), registry=REG, rest=False)
    assert ei.value.key == "canal.conf.consumerProperties.canal.tcp.server.host"


def test_failing_writer_stops_the_destination(tmp_path: Path) -> None:
    name = uuid.uuid4().hex
    d = conf(tmp_path, [{"name": "failing", "properties": {"sink": name, "failing": True}}], retries=2)
    source = FakeSource([[make_entry("db", "t", "INSERT", [{"id": 1}])]])
    node = AdapterNode(load_config(d), registry=REG, source_factory=lambda task: source, rest=False,
                       backoff=Backoff(0.01, 1, 0.01))
    node.start()
    try:
        wait_until(lambda: not node.switch.is_on("example"), what="switch off after retries")
        assert not any(x.startswith("ack") for x in source.log)
        from adapter.testing import failure_control

        failure_control(name).failing = False
        node.switch.set("example", True)
        wait_until(lambda: len(recording(name).rows()) == 1, what="rows after the fix")
    finally:
        node.stop()


def test_cli_help_check_and_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        main(["--help"])
    assert ei.value.code == 0
    out = capsys.readouterr().out
    assert "--config" in out and "--log-json" in out and "application.yml" in out
    d = conf(tmp_path, [{"name": "logger"}])
    assert main(["--config", str(d), "--check"]) == 0
    (d / "application.yml").write_text("canal.conf:\n  syncBatchSize: [\n")
    assert main(["--config", str(d), "--check"]) == 2
    err = capsys.readouterr().err
    assert str(d / "application.yml") in err and "line" in err
    conf(tmp_path, [{"name": "nope"}])
    assert main(["--config", str(d), "--check"]) == 2
    err = capsys.readouterr().err
    assert "canal.conf.canalAdapters[0].groups[0].outerAdapters[0].name" in err


def test_consumer_property_errors_name_the_key(tmp_path: Path) -> None:
    for key, value in (("canal.tcp.so.timeout", "soon"), ("canal.tcp.batch.size", "many"),
                       ("canal.tcp.server.host", "nohostport")):
        d = conf(tmp_path, [{"name": "logger"}], consumerProperties={"canal.tcp.server.host": "127.0.0.1:1",
                                                                     key: value})
        with pytest.raises(ConfigError) as ei:
            AdapterNode(load_config(d), registry=REG, rest=False)
        assert ei.value.key == f"canal.conf.consumerProperties.{key}"
