"""ZooKeeper paths and running JSON exactly as canal spells and writes them."""

from __future__ import annotations

import pytest

from adapter.coordination import paths
from adapter.errors import ConfigError


def test_canal_paths() -> None:
    assert paths.server_cluster_node("10.0.0.5:11111") == "/otter/canal/cluster/10.0.0.5:11111"
    assert paths.destination("example") == "/otter/canal/destinations/example"
    assert paths.destination_cluster("example") == "/otter/canal/destinations/example/cluster"
    assert paths.destination_cluster_node("example", "1.2.3.4:11111") == (
        "/otter/canal/destinations/example/cluster/1.2.3.4:11111"
    )
    assert paths.server_running("example") == "/otter/canal/destinations/example/running"
    assert paths.client_node("example", 1001) == "/otter/canal/destinations/example/1001"
    assert paths.client_filter("example", "1001") == "/otter/canal/destinations/example/1001/filter"
    assert paths.client_cursor("example", 1001) == "/otter/canal/destinations/example/1001/cursor"
    assert paths.client_running("example", 1001) == "/otter/canal/destinations/example/1001/running"


def test_adapter_paths() -> None:
    assert paths.sync_switch("example") == "/canal-adapter/sync-switch/example"
    assert paths.sync_etl("es7", "example") == "/canal-adapter/sync-etl/es7-example"
    assert paths.adapter_member("node-1") == "/canal-adapter/members/node-1"


@pytest.mark.parametrize("bad", ["", "a/b", ".", "..", "x\x00"])
def test_bad_components_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError, match="destination"):
        paths.server_running(bad)


def test_client_ids_are_all_digits() -> None:
    assert paths.is_client_id("1001")
    assert not paths.is_client_id("cluster")
    assert not paths.is_client_id("running")
    assert not paths.is_client_id("١٢")  # non-ASCII digits are not Java shorts
    with pytest.raises(ConfigError, match="all digits"):
        paths.client_node("example", "abc")


def test_running_json_is_fastjson_shaped() -> None:
    assert paths.ServerRunningData("10.0.0.5:11111").to_json() == b'{"active":true,"address":"10.0.0.5:11111"}'
    assert paths.ClientRunningData("192.168.1.7:59887", 1001).to_json() == (
        b'{"active":true,"address":"192.168.1.7:59887","clientId":1001}'
    )
    assert paths.dumps({"b": 1, "a": None, "@type": "x"}) == b'{"@type":"x","b":1}'


def test_running_json_reads_canal_variants() -> None:
    old = paths.ServerRunningData.from_json(b'{"active":true,"address":"1.1.1.1:11111","cid":1}')
    assert old == paths.ServerRunningData("1.1.1.1:11111")
    c = paths.ClientRunningData.from_json(b'{"clientId":1001,"address":"1.1.1.1","active":false}')
    assert c == paths.ClientRunningData("1.1.1.1", 1001, active=False)
    assert paths.running_owner(b"garbage") == ("", True)
    with pytest.raises(ValueError, match="ServerRunningData"):
        paths.ServerRunningData.from_json(b"[1]")
