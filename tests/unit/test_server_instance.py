"""Instance lifecycle and the embedded server without sockets: resume point, filters, start failures, CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_fakes import FakeParser, make_conf, start_server, transaction

from adapter.errors import ConfigError, ProtocolError
from adapter.server.config import load_config
from adapter.server.contracts import ClientIdentity
from adapter.server.embedded import EmbeddedServer, StandalonePolicy
from adapter.server.events import LogPosition, ParserSettings
from adapter.server.main import main
from adapter.server.meta import FileMetaManager

A, B = ClientIdentity("example", 1001), ClientIdentity("example", 1002, "db\\.x")


@pytest.fixture(autouse=True)
def _reset() -> None:
    FakeParser.made.clear()


def embedded(conf: Path, **kw: object) -> EmbeddedServer:
    cfg = load_config(conf, env={})
    srv = EmbeddedServer(cfg, parser_factory=FakeParser, source_check=None, **kw)  # type: ignore[arg-type]
    srv.start(StandalonePolicy(cfg))
    return srv


def test_parser_resumes_from_minimum_cursor_and_reapplies_filter(tmp_path: Path) -> None:
    conf = make_conf(tmp_path)
    cfg = load_config(conf, env={}).instances["example"]
    meta = FileMetaManager(cfg.data_dir, "example", cfg.source)
    meta.start()
    meta.subscribe(A)
    meta.subscribe(B)
    meta.update_cursor(A, LogPosition("mysql-bin.000002", 500))
    meta.update_cursor(B, LogPosition("mysql-bin.000001", 900))
    meta.stop()
    srv = embedded(conf)
    try:
        p = FakeParser.made[-1]
        assert p.resume == LogPosition("mysql-bin.000001", 900)
        assert p.settings.filter_regex == "db\\.x"
    finally:
        srv.stop()
    assert FakeParser.made[-1].stopped


def test_fresh_instance_uses_configured_start(tmp_path: Path) -> None:
    srv = embedded(make_conf(tmp_path))
    try:
        assert FakeParser.made[-1].resume is None
    finally:
        srv.stop()


def test_requests_flow_through_embedded(tmp_path: Path) -> None:
    srv = embedded(make_conf(tmp_path, instance_extra="canal.instance.memory.batch.mode=ITEMSIZE"))
    try:
        srv.subscribe(A)
        FakeParser.made[-1].emit(transaction(100, 2))
        bid, events = srv.get(A, 2, 0)
        assert bid == 1 and len(events) == 2
        srv.rollback(A, 0)
        bid, events = srv.get(A, 10, 0)
        assert bid == 2 and len(events) == 3
        srv.ack(A, bid)
        inst = srv.instance("example")
        assert inst is not None and inst.meta.get_cursor(A) == LogPosition("mysql-bin.000001", 250)
        srv.rollback(ClientIdentity("example", 5), 0)  # unsubscribed: ignored
        with pytest.raises(ProtocolError, match="subscribe first"):
            srv.ack(ClientIdentity("example", 5), 1)
        srv.unsubscribe(A)
        assert srv.is_running("example")  # non-lazy: keeps parsing after the last unsubscribe
    finally:
        srv.stop()
    with pytest.raises(ProtocolError, match="should start first"):
        srv.get(A, 1, 0)


def test_bad_source_at_boot_fails_start_naming_instance_file(tmp_path: Path) -> None:
    def bad(settings: ParserSettings) -> None:
        raise ConfigError("the source has binlog_format='STATEMENT'", key="canal.instance.master.address")

    conf = make_conf(tmp_path)
    cfg = load_config(conf, env={})
    srv = EmbeddedServer(cfg, parser_factory=FakeParser, source_check=bad)
    with pytest.raises(ConfigError, match=r"example/instance\.properties.*binlog_format") as err:
        srv.start(StandalonePolicy(cfg))
    assert err.value.key == "canal.instance.master.address"
    assert not srv.is_running("example")


def test_corrupt_meta_file_fails_instance_start(tmp_path: Path) -> None:
    conf = make_conf(tmp_path)
    (conf / "example" / "meta.dat").write_text("garbage")
    with pytest.raises(ConfigError, match=r"meta\.dat"):
        start_server(conf)


def test_main_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ex:
        main(["--help"])
    assert ex.value.code == 0
    assert "--conf" in capsys.readouterr().out
    conf = make_conf(tmp_path, "canal.instance.memory.buffer.size = 3")
    assert main(["--conf", str(conf)]) == 2
    err = capsys.readouterr().err
    assert "canal.properties" in err and "canal.instance.memory.buffer.size" in err
    assert main(["--conf", str(tmp_path / "missing")]) == 2
