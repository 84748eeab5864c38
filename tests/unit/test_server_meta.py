"""Meta managers: canal's meta.dat shape, round trip, flush rules, atomic writes, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapter.errors import ConfigError
from adapter.server.contracts import ClientIdentity
from adapter.server.events import LogPosition, SourceAddress
from adapter.server.meta import FileMetaManager, MemoryMetaManager

SRC = SourceAddress("127.0.0.1", 3306)
C1 = ClientIdentity("example", 1001)
POS = LogPosition("mysql-bin.000004", 13885, server_id=1, timestamp=1591600659000, gtid="")


def manager(tmp_path: Path, period_ms: int = 3_600_000) -> FileMetaManager:
    return FileMetaManager(tmp_path, "example", SRC, period_ms)


def test_memory_manager_basics() -> None:
    m = MemoryMetaManager("example")
    m.update_cursor(C1, POS)  # not subscribed: ignored
    assert m.get_cursor(C1) is None
    m.subscribe(ClientIdentity("example", 1001, "a\\..*"))
    m.subscribe(ClientIdentity("example", 1001, "b\\..*"))
    assert [c.filter for c in m.list_subscribed("example")] == ["b\\..*"]
    m.update_cursor(C1, POS)
    assert m.get_cursor(C1) == POS and m.has_subscribe(C1)
    m.unsubscribe(C1)
    assert not m.has_subscribe(C1) and m.get_cursor(C1) is None


def test_file_shape_matches_canal(tmp_path: Path) -> None:
    m = manager(tmp_path)
    m.start()
    m.subscribe(C1)
    m.update_cursor(C1, POS)
    m.stop()
    doc = json.loads((tmp_path / "example" / "meta.dat").read_text())
    assert doc == {
        "clientDatas": [{
            "clientIdentity": {"clientId": 1001, "destination": "example", "filter": ""},
            "cursor": {
                "identity": {"slaveId": -1, "sourceAddress": {"address": "127.0.0.1", "port": 3306}},
                "postion": {"gtid": "", "included": False, "journalName": "mysql-bin.000004", "position": 13885,
                            "serverId": 1, "timestamp": 1591600659000},
            },
        }],
        "destination": "example",
    }
    assert list(doc) == ["clientDatas", "destination"]


def test_round_trip_and_canal_written_file(tmp_path: Path) -> None:
    (tmp_path / "example").mkdir()
    (tmp_path / "example" / "meta.dat").write_text(
        '{"clientDatas":[{"clientIdentity":{"clientId":1001,"destination":"example","filter":".*\\\\..*"},'
        '"cursor":{"identity":{"slaveId":-1,"sourceAddress":{"address":"127.0.0.1","port":3306}},'
        '"postion":{"included":false,"journalName":"mysql-bin.000004","position":13885,"serverId":1,'
        '"timestamp":1591600659000}}},{"clientIdentity":{"clientId":7,"destination":"example","filter":""}}],'
        '"destination":"example"}')
    m = manager(tmp_path)
    m.start()
    assert [(c.client_id, c.filter) for c in m.list_subscribed("example")] == [(1001, ".*\\..*"), (7, "")]
    assert m.get_cursor(C1) == POS
    assert m.get_cursor(ClientIdentity("example", 7)) is None
    m.stop()
    again = manager(tmp_path)
    again.start()
    assert again.get_cursor(C1) == POS and again.has_subscribe(ClientIdentity("example", 7))
    again.stop()


def test_subscribe_writes_at_once_and_cursor_waits_for_flush(tmp_path: Path) -> None:
    m = manager(tmp_path)  # a period of an hour: only explicit flushes write cursors
    m.start()
    path = tmp_path / "example" / "meta.dat"
    m.subscribe(C1)
    assert json.loads(path.read_text())["clientDatas"][0]["clientIdentity"]["clientId"] == 1001
    m.update_cursor(C1, POS)
    assert "cursor" not in json.loads(path.read_text())["clientDatas"][0]
    m.flush()
    assert json.loads(path.read_text())["clientDatas"][0]["cursor"]["postion"]["position"] == 13885
    m.update_cursor(C1, LogPosition("mysql-bin.000004", 20000))
    m.stop()  # the stop flush keeps the last ack (canal loses it)
    assert json.loads(path.read_text())["clientDatas"][0]["cursor"]["postion"]["position"] == 20000
    assert not path.with_name("meta.dat.tmp").exists()


def test_periodic_flush_thread_writes(tmp_path: Path) -> None:
    import time

    m = manager(tmp_path, period_ms=20)
    m.start()
    m.subscribe(C1)
    m.update_cursor(C1, POS)
    path = tmp_path / "example" / "meta.dat"
    for _ in range(3000):
        if "cursor" in path.read_text():
            break
        time.sleep(0.01)
    m.stop()
    assert "cursor" in path.read_text()


def test_empty_document_does_not_overwrite_but_unsubscribe_does(tmp_path: Path) -> None:
    path = tmp_path / "example" / "meta.dat"
    m = manager(tmp_path)
    m.start()
    m.subscribe(C1)
    m.update_cursor(C1, POS)
    m.stop()
    before = path.read_bytes()
    # a fresh manager that never loaded a client (e.g. another destination layout) must not clobber it
    other = FileMetaManager(tmp_path, "example", SRC)
    other._dirty = True  # simulate a pending flush with no client data
    other.flush()
    assert path.read_bytes() == before
    m2 = manager(tmp_path)
    m2.start()
    m2.unsubscribe(C1)
    m2.stop()
    assert json.loads(path.read_text())["clientDatas"] == []


def test_corrupt_meta_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "example").mkdir()
    (tmp_path / "example" / "meta.dat").write_text("{not json")
    with pytest.raises(ConfigError, match=r"meta\.dat"):
        manager(tmp_path).start()
