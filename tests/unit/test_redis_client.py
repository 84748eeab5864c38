"""Redis writer: connection settings parsing and exception translation (no server)."""

from __future__ import annotations

from typing import Any

import pytest
import redis.exceptions as rex

from adapter.errors import ConfigError, FatalError, RetriableError
from adapter.writers.redis.client import CLUSTER, SENTINEL, RedisSettings, RedisTarget, parse_hosts, translate


def test_defaults_and_hosts() -> None:
    s = RedisSettings.parse("10.0.0.1:7000", {})
    assert (s.mode, s.nodes, s.db, s.transaction, s.ssl) == ("standalone", (("10.0.0.1", 7000),), 0, True, False)
    s = RedisSettings.parse(None, {"host": "h", "port": "6380", "db": 3})
    assert (s.nodes, s.db) == ((("h", 6380),), 3)


def test_parse_hosts_forms() -> None:
    assert parse_hosts("a, b:1,[::1]:7", 6379, "f") == (("a", 6379), ("b", 1), ("::1", 7))
    with pytest.raises(ConfigError, match="bad port"):
        parse_hosts("a:x", 6379, "f")
    with pytest.raises(ConfigError, match="no host"):
        parse_hosts(" , ", 6379, "f")


def test_cluster_and_sentinel() -> None:
    s = RedisSettings.parse(None, {"mode": "cluster", "hosts": "a:1,b:2"})
    assert (s.mode, len(s.nodes), s.transaction) == (CLUSTER, 2, False)
    with pytest.raises(ConfigError, match="db 0"):
        RedisSettings.parse("a:1", {"mode": "cluster", "db": 2})
    s = RedisSettings.parse("s1,s2:5000", {"mode": "sentinel", "sentinel": {"master": "m", "password": "x"}})
    assert (s.mode, s.nodes, s.sentinel_master, s.sentinel_password) == (
        SENTINEL, (("s1", 26379), ("s2", 5000)), "m", "x")  # fmt: skip
    with pytest.raises(ConfigError, match="master name"):
        RedisSettings.parse("s1", {"mode": "sentinel"})


def test_tls_and_acl_options() -> None:
    props = {"username": "u", "password": "s3cr3t", "ssl.ca": "/ca.pem", "ssl": {"verify": "no"}}
    s = RedisSettings.parse("h:1", props)
    kw = s.connection_kwargs()
    assert (kw["username"], kw["password"], kw["ssl"], kw["ssl_ca_certs"], kw["ssl_cert_reqs"]) == (
        "u", "s3cr3t", True, "/ca.pem", "none")  # fmt: skip
    assert "s3cr3t" not in repr(s) and "s3cr3t" not in str(s.describe())
    with pytest.raises(ConfigError, match="go together"):
        RedisSettings.parse("h:1", {"ssl.cert": "/c.pem"})


@pytest.mark.parametrize(
    "props, match",
    [
        ({"mode": "ring"}, "unknown mode"),
        ({"pasword": "x"}, "unknown redis properties"),
        ({"ssl": "maybe"}, "true or false"),
        ({"socketTimeout": "slow"}, "a number"),
        ({"hosts": "a:1,b:2"}, "one host"),
    ],
)
def test_bad_settings_are_refused(props: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RedisSettings.parse(None, props, source="application.yml")


@pytest.mark.parametrize(
    "exc, cls",
    [
        (rex.ConnectionError("refused"), RetriableError),
        (rex.TimeoutError("t"), RetriableError),
        (rex.BusyLoadingError("loading"), RetriableError),
        (rex.ReadOnlyError("READONLY"), RetriableError),
        (rex.ClusterDownError("CLUSTERDOWN"), RetriableError),
        (ConnectionResetError(), RetriableError),
        (rex.AuthenticationError("WRONGPASS"), FatalError),
        (rex.NoPermissionError("NOPERM"), FatalError),
        (rex.ResponseError("WRONGTYPE Operation against a key"), FatalError),
        (rex.ExecAbortError("EXECABORT"), FatalError),
    ],
)
def test_translate(exc: Exception, cls: type) -> None:
    assert type(translate(exc, "pipeline")) is cls


class FakePipe:
    def __init__(self, sink: list[Any], fail: Exception | None) -> None:
        self.sink, self.fail = sink, fail

    def execute_command(self, *args: Any) -> None:
        self.sink.append(args)

    def execute(self) -> list[Any]:
        if self.fail:
            raise self.fail
        return [True] * len(self.sink)


class FakeClient:
    def __init__(self, fail: Exception | None = None) -> None:
        self.sent: list[Any] = []
        self.tx: list[bool] = []
        self.fail = fail

    def pipeline(self, transaction: bool) -> FakePipe:
        self.tx.append(transaction)
        return FakePipe(self.sent, self.fail)

    def ping(self) -> bool:
        if self.fail:
            raise self.fail
        return True

    def close(self) -> None:
        pass


def test_target_executes_one_pipeline_and_translates() -> None:
    fake = FakeClient()
    t = RedisTarget(RedisSettings.parse("h:1", {}), factory=lambda s: fake)
    assert t.execute([("DEL", "a"), ("SET", "b", "1")]) == [True, True]
    assert fake.tx == [True] and fake.sent == [("DEL", "a"), ("SET", "b", "1")]
    assert t.execute([]) == [] and fake.tx == [True]
    bad = RedisTarget(RedisSettings.parse("h:1", {}), factory=lambda s: FakeClient(rex.ConnectionError("down")))
    with pytest.raises(RetriableError):
        bad.execute([("DEL", "a")])


def test_check_refuses_bad_credentials_but_tolerates_a_down_target() -> None:
    s = RedisSettings.parse("h:1", {})
    RedisTarget(s, factory=lambda _: FakeClient(rex.ConnectionError("down"))).check()
    with pytest.raises(ConfigError, match="WRONGPASS"):
        RedisTarget(s, factory=lambda _: FakeClient(rex.AuthenticationError("WRONGPASS"))).check()


def test_factory_failure_is_translated() -> None:
    def boom(_: RedisSettings) -> Any:
        raise rex.RedisClusterException("no startup node reachable")

    with pytest.raises(RetriableError):
        RedisTarget(RedisSettings.parse("h:1", {}), factory=boom).execute([("DEL", "x")])
