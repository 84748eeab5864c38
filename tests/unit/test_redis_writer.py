"""Redis writer: one pipeline per batch, errors at the seam, TRUNCATE, count (fake client, no server)."""

from __future__ import annotations

import fnmatch
import threading
from typing import Any

import pytest
import redis.exceptions as rex

from adapter.dml import INSERT, TRUNCATE, UPDATE, Dml
from adapter.errors import RetriableError
from adapter.writers.base import DataSource, MappingHeader, Routed, SupportsEtl, WriterConfig, WriterContext
from adapter.writers.redis import RedisWriter

CTX = WriterContext(data_sources={"ds": DataSource("ds", "mysql+pymysql://u:p@h:1/shop", "shop")})


class FakePipe:
    def __init__(self, client: FakeRedis, transaction: bool) -> None:
        self.client, self.transaction, self.cmds = client, transaction, []  # type: ignore[var-annotated]

    def execute_command(self, *args: Any) -> None:
        self.cmds.append(args)

    def execute(self) -> list[Any]:
        if self.client.fail:
            raise self.client.fail
        self.client.pipelines.append((self.transaction, list(self.cmds)))
        self.client.locked.append(self.client.lock_probe())
        for c in self.cmds:
            if c[0] == "DEL":
                self.client.keys.discard(c[1].decode() if isinstance(c[1], bytes) else c[1])
            elif c[0] in ("SET", "HSET"):
                self.client.keys.add(c[1])
        return [1] * len(self.cmds)


class FakeRedis:
    def __init__(self) -> None:
        self.pipelines: list[tuple[bool, list[tuple[Any, ...]]]] = []
        self.keys: set[str] = set()
        self.fail: Exception | None = None
        self.locked: list[bool] = []
        self.lock_probe = lambda: True

    def pipeline(self, transaction: bool) -> FakePipe:
        return FakePipe(self, transaction)

    def scan_iter(self, match: str, count: int) -> list[str]:
        return [k for k in sorted(self.keys) if fnmatch.fnmatchcase(k, match)]

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass


def make(fake: FakeRedis, **props: Any) -> tuple[RedisWriter, Any]:
    w = RedisWriter(WriterConfig("redis", "r1", "127.0.0.1:6379", props, "example", "g1"), CTX,
                    client_factory=lambda s: fake)
    h = MappingHeader("u.yml", "/conf/redis/u.yml", "ds", "example", None, "r1")
    m = RedisWriter.parse_mapping(h, {"redisMapping": {"sql": "select a.id, a.name from user a", "key": "u:{id}",
                                                       "prefix": "p:", "ttl": 30}}, CTX)
    w.set_mappings([m])
    w.open()
    return w, m


def row(i: int, name: str = "n") -> dict[str, Any]:
    return {"id": i, "name": name}


def ins(*ids: int) -> Dml:
    return Dml("example", "g1", "shop", "user", INSERT, ("id",), tuple(row(i) for i in ids))


def test_one_pipeline_per_batch_in_a_transaction() -> None:
    fake = FakeRedis()
    w, m = make(fake)
    upd = Dml("example", "g1", "shop", "user", UPDATE, ("id",), (row(1, "x"),), ({"name": "n"},))
    w.write([Routed(m, ins(1, 2)), Routed(m, upd), Routed(None, ins(3))])
    assert len(fake.pipelines) == 1
    tx, cmds = fake.pipelines[0]
    assert tx is True
    assert [c[0] for c in cmds] == ["DEL", "HSET", "EXPIRE", "DEL", "HSET", "EXPIRE", "EVAL"]
    assert cmds[1] == ("HSET", "p:u:1", "id", "1", "name", "n")
    assert isinstance(w, SupportsEtl)


def test_sync_lock_is_held_while_writing() -> None:
    fake = FakeRedis()
    w, m = make(fake)
    held: list[bool] = []

    def probe() -> bool:
        t = threading.Thread(target=lambda: held.append(w.sync_lock.acquire(timeout=0.01)))
        t.start()
        t.join()
        return True

    fake.lock_probe = probe
    w.write([Routed(m, ins(1))])
    assert held == [False]


def test_cluster_defaults_to_plain_pipelines() -> None:
    fake = FakeRedis()
    w, m = make(fake, mode="cluster")
    w.write([Routed(m, ins(1))])
    assert fake.pipelines[0][0] is False


def test_connection_failure_is_retriable_and_nothing_is_recorded() -> None:
    fake = FakeRedis()
    w, m = make(fake)
    fake.fail = rex.ConnectionError("Connection refused")
    with pytest.raises(RetriableError):
        w.write([Routed(m, ins(1))])
    fake.fail = None
    w.write([Routed(m, ins(1))])  # the retried batch lands whole
    assert fake.keys == {"p:u:1"}


def test_truncate_of_main_table_removes_the_mappings_keys_in_order() -> None:
    fake = FakeRedis()
    fake.keys = {"p:u:9", "other:1"}
    w, m = make(fake)
    trunc = Dml("example", "g1", "shop", "user", TRUNCATE, is_ddl=True, sql="truncate user")
    w.write([Routed(m, ins(1)), Routed(m, trunc), Routed(m, ins(2))])
    assert fake.keys == {"p:u:2", "other:1"}
    assert w.count(m) == 1
    assert w.count_info(m) == {"redisKeyPattern": "p:u:*", "count": 1}


def test_a_huge_batch_is_split_into_ordered_pipelines() -> None:
    fake = FakeRedis()
    w, m = make(fake, pipelineMaxCommands=7)
    w.write([Routed(m, ins(1, 2, 3, 4, 5))])  # 3 commands per row (DEL, HSET, EXPIRE)
    assert [len(c) for _, c in fake.pipelines] == [9, 6]
    assert fake.keys == {f"p:u:{i}" for i in range(1, 6)}
