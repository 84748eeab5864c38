"""Sync switch over REST with ZooKeeper: one node's PUT is seen by every node and stored as canal does."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapter.node.app import AdapterNode
from adapter.node.configload import load_config
from adapter.testing import wait_until


def call(node: AdapterNode, method: str, path: str) -> tuple[int, Any]:
    req = urllib.request.Request(f"http://{node.rest_address}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def nodes(zk_chroot: str, tmp_path: Path) -> Iterator[list[AdapterNode]]:
    out = []
    for i in range(2):
        d = tmp_path / f"n{i}"
        d.mkdir()
        cc = {"zookeeperHosts": zk_chroot, "nodeId": f"n{i}",
              "consumerProperties": {"canal.tcp.server.host": "127.0.0.1:1"},  # no server: workers keep retrying
              "canalAdapters": [{"instance": "example", "groups": [{"groupId": "g1",
                                                                     "outerAdapters": [{"name": "logger"}]}]}]}
        (d / "application.yml").write_text(yaml.safe_dump({"server": {"port": 0, "address": "127.0.0.1"},
                                                           "canal.conf": cc}))
        node = AdapterNode(load_config(d), advertise_host="127.0.0.1")
        node.start()
        out.append(node)
    yield out
    for n in out:
        n.stop()


def test_switch_is_shared_through_zookeeper(nodes: list[AdapterNode], zk: Any) -> None:
    a, b = nodes
    assert call(b, "GET", "/syncSwitch/example") == (200, {"status": "on"})
    assert call(a, "PUT", "/syncSwitch/example/off") == (200, {"code": 20000, "message": "实例: example 关闭同步成功"})
    assert zk.get("/canal-adapter/sync-switch/example")[0] == b"off"
    wait_until(lambda: call(b, "GET", "/syncSwitch/example")[1] == {"status": "off"}, what="node b sees off")
    assert call(b, "GET", "/destinations")[1] == [{"destination": "example", "status": "off"}]
    assert call(b, "PUT", "/syncSwitch/example/on")[0] == 200
    assert zk.get("/canal-adapter/sync-switch/example")[0] == b"on"
    wait_until(lambda: call(a, "GET", "/syncSwitch/example")[1] == {"status": "on"}, what="node a sees on")
    # exactly one node holds the single task; /health says which
    wait_until(lambda: sum(len(n.placement.held()) for n in nodes) == 1, what="one holder")
    holder = next(n for n in nodes if n.placement.held())
    status, health = call(holder, "GET", "/health")
    assert status == 200 and health["tasks"] == ["example/g1"]
    data = json.loads(zk.get("/otter/canal/destinations/example/1001/running")[0])
    assert data == {"active": True, "address": holder.rest_address, "clientId": 1001}
