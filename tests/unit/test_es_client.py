"""EsClient bulk semantics against a scripted fake REST seam (retries, item errors, splitting)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from adapter.errors import FatalError, RetriableError
from adapter.writers.es.client import BulkEntry, EsClient, EsConnectionError, ItemsRejected


class FakeRest:
    def __init__(self, script: list[Any] | Callable[[str, str, bytes | None], Any]) -> None:
        self.script = script
        self.calls: list[tuple[str, str, bytes | None]] = []

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str = "application/json") -> tuple[int, Any]:
        self.calls.append((method, path, body))
        answer = self.script(method, path, body) if callable(self.script) else self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    def close(self) -> None:
        pass


def entry(kind: str, doc_id: str) -> BulkEntry:
    meta = {kind: {"_index": "i", "_id": doc_id}}
    lines = orjson.dumps(meta) + b"\n" + (b"{}\n" if kind != "delete" else b"")
    return BulkEntry(lines, kind, "i", doc_id)


def items(*statuses: int, kind: str = "index") -> tuple[int, Any]:
    return 200, {"errors": any(s >= 300 for s in statuses),
                 "items": [{kind: {"status": s, "error": {"type": "x", "reason": "y"}}} for s in statuses]}


def client(rest: FakeRest, **kw: Any) -> tuple[EsClient, list[float]]:
    sleeps: list[float] = []
    return EsClient(rest, sleep=sleeps.append, retries=kw.pop("retries", 3), backoff=0.1, **kw), sleeps


def test_ok_bulk_is_one_request() -> None:
    rest = FakeRest([items(201, 200)])
    c, sleeps = client(rest)
    c.bulk([entry("index", "1"), entry("index", "2")])
    assert len(rest.calls) == 1 and sleeps == []
    assert rest.calls[0][1] == "/_bulk"


def test_request_level_429_and_5xx_and_connection_errors_are_retried_with_backoff() -> None:
    rest = FakeRest([(429, {}), EsConnectionError("down"), (503, {}), items(201)])
    c, sleeps = client(rest)
    c.bulk([entry("index", "1")])
    assert sleeps == [0.1, 0.2, 0.4]


def test_exhausted_retries_raise_retriable() -> None:
    rest = FakeRest(lambda m, p, b: (503, {"error": {"type": "unavailable", "reason": "busy"}}))
    c, _ = client(rest, retries=2)
    with pytest.raises(RetriableError, match="busy"):
        c.bulk([entry("index", "1")])
    assert len(rest.calls) == 3


def test_failed_items_are_resent_from_the_first_failure_on() -> None:
    rest = FakeRest([items(201, 429, 201), items(201, 201)])
    c, _ = client(rest)
    c.bulk([entry("index", "1"), entry("index", "2"), entry("delete", "3")])
    resent = rest.calls[1][2] or b""
    assert b'"_id":"1"' not in resent and b'"_id":"2"' in resent and b'"_id":"3"' in resent


def test_delete_404_is_success_but_other_4xx_items_are_rejected() -> None:
    rest = FakeRest([items(404, kind="delete")])
    c, _ = client(rest)
    c.bulk([entry("delete", "1")])
    rest = FakeRest([items(400)])
    c, _ = client(rest)
    with pytest.raises(ItemsRejected) as info:
        c.bulk([entry("index", "1")])
    assert info.value.indices == {"i"}


def test_bad_request_is_fatal() -> None:
    c, _ = client(FakeRest([(400, {"error": {"type": "parse", "reason": "bad"}})]))
    with pytest.raises(FatalError, match="bad"):
        c.bulk([entry("index", "1")])


def test_split_by_count_and_size() -> None:
    rest = FakeRest(lambda m, p, b: items(*([201] * (b or b"").count(b'"index"'))))
    c, _ = client(rest, max_bytes=200)
    c.bulk([entry("index", str(i)) for i in range(10)], max_actions=4)
    sizes = [len(b or b"") for _, _, b in rest.calls]
    assert len(rest.calls) >= 3 and all(s <= 200 for s in sizes)


def test_mapping_cache_and_version() -> None:
    answers = {"/": (200, {"version": {"number": "6.8.23"}}),
               "/i/_mapping": (200, {"i": {"mappings": {"_doc": {"properties": {"a": {"type": "long"}}}}}}),
               "/missing/_mapping": (404, {})}
    rest = FakeRest(lambda m, p, b: answers[p])
    c, _ = client(rest)
    assert c.server_major() == 6 and c.server_major() == 6
    assert c.field_types("i") == {"a": "long"} and c.field_types("i") == {"a": "long"}
    assert c.field_types("missing") == {}
    assert [p for _, p, _ in rest.calls] == ["/", "/i/_mapping", "/missing/_mapping"]
    c.invalidate(["i"])
    c.field_types("i")
    assert len(rest.calls) == 4
