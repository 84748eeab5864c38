"""Elasticsearch REST access for es6/es7/es8: bulk with retries, mapping cache, id lookup, count.

Requests go through ``elastic_transport`` (the official client's HTTP layer) with plain
``application/json`` bodies. The ``elasticsearch`` 8.x high-level client would add the
``compatible-with=8`` media type and its product check, which ES 6.x and 7.0-7.13 reject; plain
JSON is accepted by ES 6.x, 7.x and 8.x alike.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import orjson

from adapter.errors import FatalError, RetriableError
from adapter.writers.es.config import EsSettings
from adapter.writers.es.convert import field_types

log = logging.getLogger(__name__)


class EsConnectionError(Exception):
    """The node could not be reached (network, timeout)."""


class Rest(Protocol):
    """The HTTP seam: one request, ``(status, decoded JSON body or None)``; EsConnectionError when unreachable."""

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str = "application/json") -> tuple[int, Any]: ...

    def close(self) -> None: ...


class TransportRest:
    """``Rest`` over ``elastic_transport.Transport`` (its own retries disabled: EsClient retries)."""

    def __init__(self, settings: EsSettings) -> None:
        from elastic_transport import NodeConfig, Transport

        headers = {}
        if settings.username is not None:
            token = base64.b64encode(f"{settings.username}:{settings.password or ''}".encode()).decode()
            headers["authorization"] = f"Basic {token}"
        nodes = []
        for url in settings.hosts:
            u = urlsplit(url)
            nodes.append(NodeConfig(
                scheme=u.scheme, host=u.hostname or "127.0.0.1", port=u.port or (443 if u.scheme == "https" else 9200),
                path_prefix=u.path or "", headers=headers, request_timeout=settings.request_timeout,
                ca_certs=settings.ca_path, verify_certs=settings.verify_certs if u.scheme == "https" else True,
            ))
        self._transport = Transport(nodes, max_retries=0, retry_on_status=(), meta_header=False)

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str = "application/json") -> tuple[int, Any]:
        from elastic_transport import TransportError

        headers = {"accept": "application/json"}
        if body is not None:
            headers["content-type"] = content_type
        try:
            resp = self._transport.perform_request(method, path, body=body, headers=headers)
        except TransportError as e:
            raise EsConnectionError(f"{type(e).__name__}: {e}") from e
        return resp.meta.status, resp.body

    def close(self) -> None:
        self._transport.close()


class ItemsRejected(Exception):
    """Bulk items failed with a client error (4xx other than delete-404): maybe a stale mapping."""

    def __init__(self, errors: list[str], indices: set[str]) -> None:
        self.errors = errors
        self.indices = indices
        super().__init__("; ".join(errors[:5]) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""))


@dataclass(frozen=True)
class BulkEntry:
    """One action's NDJSON lines and what it is (for error handling)."""

    lines: bytes
    kind: str  # "index" | "update" | "delete"
    index: str
    doc_id: str | None


class EsClient:
    """Version-aware REST calls with back-off retries (``sleep`` is injectable for tests)."""

    def __init__(self, rest: Rest, *, retries: int = 3, backoff: float = 0.5, max_bytes: int = 5 * 1024 * 1024,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rest = rest
        self.retries = retries
        self.backoff = backoff
        self.max_bytes = max_bytes
        self.sleep = sleep
        self._types: dict[str, dict[str, str]] = {}
        self._major: int | None = None
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- plumbing
    def call(self, method: str, path: str, body: Any = None, *, ok: Iterable[int] = ()) -> tuple[int, Any]:
        """One request with retries on connection errors, 429 and 5xx; other 4xx → FatalError unless in ``ok``."""
        data = body if body is None or isinstance(body, bytes) else orjson.dumps(body)
        ctype = "application/x-ndjson" if path.endswith("_bulk") else "application/json"
        last = ""
        for attempt in range(self.retries + 1):
            try:
                status, answer = self.rest.request(method, path, data, ctype)
            except EsConnectionError as e:
                last = str(e)
            else:
                if status < 300 or status in ok:
                    return status, answer
                if status != 429 and status < 500:
                    raise FatalError(f"Elasticsearch rejected {method} {path}: HTTP {status} {_reason(answer)}")
                last = f"HTTP {status} {_reason(answer)}"
            if attempt < self.retries:
                self.sleep(self.backoff * (2**attempt))
        raise RetriableError(f"Elasticsearch {method} {path} failed after {self.retries + 1} attempts: {last}")

    def server_major(self) -> int:
        """Major version of the cluster (``GET /``), cached."""
        if self._major is None:
            _, info = self.call("GET", "/")
            number = str(((info or {}).get("version") or {}).get("number") or "8")
            try:
                self._major = int(number.split(".")[0])
            except ValueError:
                self._major = 8
        return self._major

    # ---------------------------------------------------------------- mapping cache
    def field_types(self, index: str) -> dict[str, str]:
        """Top-level field types of ``index`` (fetched once, cached; {} while the index does not exist)."""
        with self._lock:
            cached = self._types.get(index)
        if cached is not None:
            return cached
        status, body = self.call("GET", f"/{_p(index)}/_mapping", ok=(404,))
        if status >= 300:
            return {}  # no index yet (dynamic mapping on first write): ask again next time
        types = field_types(body or {})
        with self._lock:
            self._types[index] = types
        return types

    def invalidate(self, indices: Iterable[str]) -> None:
        with self._lock:
            for i in indices:
                self._types.pop(i, None)

    # ---------------------------------------------------------------- bulk
    def bulk(self, entries: Sequence[BulkEntry], max_actions: int = 1000) -> None:
        """Send in order, split by ``max_actions`` and ``max_bytes``; raise unless every item applied.

        Items failing with 429/5xx/409 are re-sent (from the first failed item on, so order is kept)
        after back-off; delete 404 is success; other 4xx raise ``ItemsRejected``.
        """
        part: list[BulkEntry] = []
        size = 0
        for e in entries:
            if part and (len(part) >= max_actions or size + len(e.lines) > self.max_bytes):
                self._bulk_part(part)
                part, size = [], 0
            part.append(e)
            size += len(e.lines)
        if part:
            self._bulk_part(part)

    def _bulk_part(self, part: list[BulkEntry]) -> None:
        pending = part
        for attempt in range(self.retries + 1):
            _, answer = self.call("POST", "/_bulk", b"".join(e.lines for e in pending))
            items = (answer or {}).get("items") or []
            if len(items) != len(pending):
                raise FatalError(f"bulk answer has {len(items)} items for {len(pending)} actions")
            first_retry: int | None = None
            rejected: list[str] = []
            indices: set[str] = set()
            for i, (entry, item) in enumerate(zip(pending, items, strict=True)):
                result = next(iter(item.values())) if item else {}
                status = int(result.get("status", 500))
                if status < 300 or (status == 404 and entry.kind == "delete"):
                    continue
                if status in (409, 429) or status >= 500:
                    first_retry = i if first_retry is None else first_retry
                    continue
                rejected.append(f"{entry.kind} {entry.index}/{entry.doc_id}: HTTP {status} {_reason(result)}")
                indices.add(entry.index)
            if rejected:
                raise ItemsRejected(rejected, indices)
            if first_retry is None:
                return
            pending = pending[first_retry:]
            log.warning("bulk items will be retried", extra={"items": len(pending), "attempt": attempt + 1})
            if attempt < self.retries:
                self.sleep(self.backoff * (2**attempt))
        raise RetriableError(f"{len(pending)} bulk items still failing after {self.retries + 1} attempts")

    # ---------------------------------------------------------------- queries
    def find_ids(self, index: str, field: str, values: Sequence[Any]) -> dict[str, list[tuple[str, str | None]]]:
        """pk mode: ``{str(value): [(_id, routing), ...]}`` of documents whose ``field`` is one of ``values``."""
        out: dict[str, list[tuple[str, str | None]]] = {}
        if not values:
            return out
        body = {"size": 10000, "_source": [field], "query": {"terms": {field: list(values)}}}
        status, answer = self.call("POST", f"/{_p(index)}/_search", body, ok=(404,))
        if status == 404:
            return out
        for hit in ((answer or {}).get("hits") or {}).get("hits") or []:
            value = (hit.get("_source") or {}).get(field)
            out.setdefault(str(value), []).append((str(hit["_id"]), hit.get("_routing")))
        return out

    def count(self, index: str, query: Mapping[str, Any] | None = None) -> int:
        body = {"query": query} if query else None
        status, answer = self.call("POST" if body else "GET", f"/{_p(index)}/_count", body, ok=(404,))
        return 0 if status == 404 else int((answer or {}).get("count", 0))

    def refresh(self, index: str) -> None:
        self.call("POST", f"/{_p(index)}/_refresh", ok=(404,))

    def close(self) -> None:
        self.rest.close()


def _p(index: str) -> str:
    return quote(index, safe=",*")


def _reason(answer: Any) -> str:
    if isinstance(answer, Mapping):
        err = answer.get("error")
        if isinstance(err, Mapping):
            return f"{err.get('type', '')}: {err.get('reason', '')}"[:500]
        if err:
            return str(err)[:500]
    return ""
