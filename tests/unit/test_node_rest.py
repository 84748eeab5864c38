"""REST API with FastAPI's TestClient: canal's paths and JSON, errors as 4xx JSON, placement."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from adapter.coordination.etl_lock import LocalEtlLock
from adapter.coordination.switch import LocalSwitch
from adapter.node.configload import TaskSpec, WriterSpec
from adapter.node.etl import EtlService
from adapter.node.mappings import MappingStore, WriterSlot
from adapter.node.rest import create_app
from adapter.testing import RecordingMappedWriter, RecordingWriter
from adapter.writers.base import Writer, WriterConfig, WriterContext


def slot(cls: type[Writer], key: str | None, group: str = "g1", dest: str = "example") -> WriterSlot:
    k = key or f"AUTO_GENERATED_-{dest}-{group}-0"
    spec = WriterSpec(cls.name, k, key is not None, None, None, {"sink": f"rest-{k}"}, "x")
    task = TaskSpec(dest, group, 1001, (spec,), "y")
    return WriterSlot(cls(WriterConfig(cls.name, key, None, {"sink": f"rest-{k}"}, dest, group), WriterContext()),
                      spec, task)


@dataclass
class Placement:
    here: set[str] = field(default_factory=set)
    holders: dict[str, str] = field(default_factory=dict)

    def holds(self, task_id: str) -> bool:
        return task_id in self.here

    def holder(self, task_id: str) -> str | None:
        return self.holders.get(task_id)


class Api:
    node_id = "n1"

    def __init__(self, etl: EtlService) -> None:
        self.etl = etl
        self.switch = LocalSwitch()

    def destinations(self) -> list[str]:
        return ["example", "other"]

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "node": self.node_id}

    def metrics(self) -> bytes:
        return b"canal_adapter_batches_total 1.0\n"


@pytest.fixture
def env(tmp_path: Path) -> Any:
    (tmp_path / "recording").mkdir()
    (tmp_path / "recording" / "user.yml").write_text("outerAdapterKey: rec1\ndatabase: d\ntable: user\n")
    (tmp_path / "recording" / "order.yml").write_text("outerAdapterKey: rec1\ndatabase: d\ntable: order\n")
    rec = slot(RecordingMappedWriter, "rec1")
    log = slot(RecordingWriter, None)
    store = MappingStore(str(tmp_path), [rec, log], WriterContext())
    store.load_all()
    placement = Placement(here={"example/g1"})
    locks = LocalEtlLock()
    api = Api(EtlService(store, locks, placement))
    return TestClient(create_app(api)), rec, placement, locks, api


def test_etl_by_task_and_key_with_form_and_query_params(env: Any) -> None:
    client, rec, *_ = env
    r = client.post("/etl/recording_mapped/user.yml", data={"params": "2024-01-01;x"})
    assert r.status_code == 200
    assert r.json() == {"succeeded": True, "resultMessage": "导入RECORDING 数据：1 条"}
    assert rec.writer.etl_calls[-1][1] == ["2024-01-01", "x"]
    r = client.post("/etl/recording_mapped/rec1/user.yml?params=a")
    assert r.status_code == 200 and rec.writer.etl_calls[-1][1] == ["a"]
    r = client.post("/etl/recording_mapped/example")  # a destination: every mapping of it
    assert r.status_code == 200 and r.json()["resultMessage"].count("导入") == 2


def test_etl_errors_are_4xx_json(env: Any) -> None:
    client, _rec, _p, locks, _api = env
    r = client.post("/etl/recording_mapped/nope.yml")
    assert r.status_code == 404 and r.json()["succeeded"] is False
    r = client.post("/etl/recording_mapped/wrongkey/user.yml")
    assert r.status_code == 404
    r = client.post("/etl/logger/user.yml")
    assert r.status_code == 404
    assert locks.try_acquire("recording_mapped-example")
    r = client.post("/etl/recording_mapped/user.yml")
    assert r.status_code == 409
    assert r.json() == {"succeeded": False, "errorMessage": "user.yml 有其他进程正在导入中, 请稍后再试"}
    locks.release("recording_mapped-example")


def test_etl_for_a_task_held_elsewhere(env: Any) -> None:
    client, _rec, placement, *_ = env
    placement.here.clear()
    r = client.post("/etl/recording_mapped/user.yml")
    assert r.status_code == 503  # nobody holds it
    placement.holders["example/g1"] = "127.0.0.1:9"  # nothing listens there: forwarding fails
    r = client.post("/etl/recording_mapped/user.yml")
    assert r.status_code == 409 and r.json()["holder"] == "127.0.0.1:9"
    r = client.post("/etl/recording_mapped/user.yml", headers={"X-Canal-Adapter-Forwarded": "1"})
    assert r.status_code == 409 and "runs on 127.0.0.1:9" in r.json()["errorMessage"]


def test_count(env: Any) -> None:
    client, *_ = env
    r = client.get("/count/recording_mapped/user.yml")
    assert r.status_code == 200 and r.json() == {"count": 0}
    assert client.get("/count/recording_mapped/rec1/user.yml").json() == {"count": 0}
    assert client.get("/count/recording_mapped/zzz.yml").status_code == 404


def test_destinations_and_sync_switch(env: Any) -> None:
    client, *_ = env
    assert client.get("/destinations").json() == [{"destination": "example", "status": "on"},
                                                  {"destination": "other", "status": "on"}]
    r = client.put("/syncSwitch/example/off")
    assert r.json() == {"code": 20000, "message": "实例: example 关闭同步成功"}
    assert client.get("/syncSwitch/example").json() == {"status": "off"}
    assert client.get("/destinations").json()[0] == {"destination": "example", "status": "off"}
    r = client.put("/syncSwitch/example/on")
    assert r.json() == {"code": 20000, "message": "实例: example 开启同步成功"}
    r = client.put("/syncSwitch/example/maybe")
    assert r.status_code == 400 and r.json()["code"] == 50000 and r.json()["message"] == "实例: example 操作失败"
    assert client.put("/syncSwitch/nope/on").status_code == 404
    assert client.get("/syncSwitch/nope").status_code == 404


def test_health_metrics_and_unknown_paths(env: Any) -> None:
    client, *_ = env
    assert client.get("/health").json() == {"status": "ok", "node": "n1"}
    assert client.get("/metrics").text.startswith("canal_adapter_batches_total")
    r = client.get("/nothing/here")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")
    assert client.delete("/destinations").status_code == 405


def test_writer_failure_is_reported_not_raised(env: Any) -> None:
    client, rec, *_ = env

    def boom(*a: Any) -> Any:
        raise RuntimeError("source db down")

    rec.writer.etl = boom
    r = client.post("/etl/recording_mapped/user.yml")
    assert r.status_code == 200
    assert r.json()["succeeded"] is False and "source db down" in r.json()["errorMessage"]


def test_forwarding_to_the_holder(env: Any, tmp_path: Path) -> None:
    """Node A does not hold the task; node B (a real HTTP server) does: A forwards and relays B's answer."""
    import uvicorn

    client_a, rec, placement, _locks, api_a = env
    placement.here.clear()
    store_b = api_a.etl.store
    api_b = Api(EtlService(store_b, LocalEtlLock(), Placement(here={"example/g1"})))
    server = uvicorn.Server(uvicorn.Config(create_app(api_b), host="127.0.0.1", port=0, log_config=None))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    try:
        from adapter.testing import wait_until

        wait_until(lambda: server.started and bool(server.servers), timeout=30, what="uvicorn")
        port = server.servers[0].sockets[0].getsockname()[1]
        placement.holders["example/g1"] = f"127.0.0.1:{port}"
        r = client_a.post("/etl/recording_mapped/user.yml", data={"params": "p1"})
        assert r.status_code == 200 and r.json()["succeeded"] is True
        assert rec.writer.etl_calls[-1][1] == ["p1"]
    finally:
        server.should_exit = True
        t.join(timeout=30)
