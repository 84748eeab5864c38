"""canal Entry builders: Header, TransactionBegin/End, DDL and query RowChanges, as wire bytes.

Every Entry carries ``entryType``; every ROWDATA Entry carries ``header.eventType`` and
``rowChange.eventType`` (proto3 would otherwise read them as the 0 "COMPATIBLEPROTO2" value).
TRANSACTIONBEGIN/END headers carry no eventType, exactly as canal writes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from adapter.protocol import EntryProtocol_pb2 as pb
from adapter.protocol.pbwire import f_bytes, f_int, f_msg, f_str, f_varint

TRANSACTIONBEGIN = pb.TRANSACTIONBEGIN
ROWDATA = pb.ROWDATA
TRANSACTIONEND = pb.TRANSACTIONEND

_VERSION = f_varint(1, 1)
_ENCODE_SOURCE = f_str(5, "UTF-8")
_SOURCE_MYSQL = f_varint(7, pb.MYSQL)
_LOGFILE_CACHE: dict[str, bytes] = {}
_NAMES_CACHE: dict[tuple[str, str], bytes] = {}
_TEXT_CACHE: dict[tuple[int, str], bytes] = {}
_LAST_TIME: list[tuple[int, bytes]] = [(-1, b"")]


def _cached(cache: dict[Any, bytes], key: Any, make: Callable[[], bytes]) -> bytes:
    value = cache.get(key)
    if value is None:
        if len(cache) > 4096:
            cache.clear()
        value = cache[key] = make()
    return value


def pair(key: str, value: str) -> bytes:
    return f_str(1, key) + f_str(2, value)


def _pairs(field: int, props: Iterable[tuple[str, str]]) -> bytes:
    return b"".join(f_msg(field, pair(k, v)) for k, v in props)


def header(
    logfile: str,
    offset: int,
    server_id: int,
    execute_ms: int,
    event_length: int,
    *,
    schema: str = "",
    table: str = "",
    event_type: int | None = None,
    props: Iterable[tuple[str, str]] = (),
    gtid: str = "",
) -> bytes:
    """A serialized Header; ``offset`` is the event's start offset (log_pos - event length)."""
    # consecutive events share most header fields: cache their encodings
    head = _cached(_LOGFILE_CACHE, logfile, lambda: _VERSION + f_str(2, logfile))
    last_ms, time_field = _LAST_TIME[0]
    if last_ms != execute_ms:
        time_field = _ENCODE_SOURCE + f_int(6, execute_ms) + _SOURCE_MYSQL
        _LAST_TIME[0] = (execute_ms, time_field)
    return b"".join(
        (
            head,
            f_int(3, offset),
            _cached(_TEXT_CACHE, (4, str(server_id)), lambda: f_int(4, server_id)),
            time_field,
            _cached(_NAMES_CACHE, (schema, table), lambda: f_str(8, schema) + f_str(9, table)) if schema or table
            else b"",
            f_int(10, event_length),
            b"" if event_type is None else f_varint(11, event_type),
            _pairs(12, props) if props else b"",
            _cached(_TEXT_CACHE, (13, gtid), lambda: f_str(13, gtid)) if gtid else b"",
        )
    )


def entry(header_bytes: bytes, entry_type: int, store_value: bytes) -> bytes:
    """A serialized Entry with ``entryType`` always present."""
    return f_msg(1, header_bytes) + f_varint(2, entry_type) + f_bytes(3, store_value)


def transaction_begin(thread_id: int, props: Iterable[tuple[str, str]] = ()) -> bytes:
    return _pairs(3, props) + f_int(4, thread_id)


def transaction_end(transaction_id: str, props: Iterable[tuple[str, str]] = ()) -> bytes:
    return f_str(2, transaction_id) + _pairs(3, props)


def rows_change_head(table_id: int, event_type: int) -> bytes:
    """RowChange fields before ``rowDatas``: tableId, eventType, isDdl=false (all as canal sets them)."""
    return f_int(1, table_id) + f_varint(2, event_type) + f_varint(10, 0)


def statement_change(event_type: int, sql: str, ddl_schema: str, *, is_ddl: bool) -> bytes:
    """RowChange of a DDL (or a statement-format DML) query event."""
    return f_varint(2, event_type) + f_varint(10, 1 if is_ddl else 0) + f_str(11, sql) + f_str(14, ddl_schema)


def query_change(event_type: int, sql: str, props: Iterable[tuple[str, str]] = ()) -> bytes:
    """RowChange of a query canal passes through without ``isDdl`` (XA COMMIT / XA ROLLBACK)."""
    return f_varint(2, event_type) + f_str(11, sql) + _pairs(13, props)
