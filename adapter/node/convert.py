"""canal Entries (EntryProtocol_pb2.Entry) → ``Dml`` records, with typed values. Runs per row: keep it lean.

Follows canal's ``MessageUtil.convert``: TRANSACTIONBEGIN/END (and heartbeats) are dropped; ``pkNames``
are the ``isKey`` columns of the first row; DDL becomes one Dml with ``sql`` and no data. Deviations:
``old[i]`` is aligned with ``data[i]`` (canal skips rows without changes and misaligns), zero or
invalid dates are kept as the raw string (canal turns ``0000-00-00`` into null), DATETIME/TIMESTAMP
become naive ``datetime`` (no JVM time-zone shifts), TIME stays a string.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from adapter.dml import Dml
from adapter.protocol import EntryProtocol_pb2 as pb

# java.sql.Types codes
BIT, TINYINT, SMALLINT, INTEGER, BIGINT = -7, -6, 5, 4, -5
FLOAT, REAL, DOUBLE, NUMERIC, DECIMAL = 6, 7, 8, 2, 3
DATE, TIME, TIMESTAMP = 91, 92, 93
BINARY, VARBINARY, LONGVARBINARY, BLOB = -2, -3, -4, 2004
BOOLEAN = 16

_ROWDATA = pb.ROWDATA
_INSERT, _UPDATE, _DELETE = pb.INSERT, pb.UPDATE, pb.DELETE
_EVENT_NAMES = {v: k for k, v in pb.EventType.items()}


def _int(v: str) -> Any:
    try:
        return int(v)
    except ValueError:
        return int(Decimal(v)) if v.strip() else None


def _decimal(v: str) -> Any:
    try:
        return Decimal(v)
    except InvalidOperation:
        return v if v else None


def _float(v: str) -> Any:
    try:
        return float(v)
    except ValueError:
        return v if v else None


def _date(v: str) -> Any:
    try:
        return dt.date.fromisoformat(v)
    except ValueError:
        return v if v else None  # 0000-00-00 and other invalid dates stay as written


def _datetime(v: str) -> Any:
    try:
        return dt.datetime.fromisoformat(v)
    except ValueError:
        pass
    # Python < 3.11 wants 3 or 6 fraction digits; MySQL prints 1..6.
    head, dot, frac = v.partition(".")
    if dot and frac.isdigit():
        try:
            return dt.datetime.fromisoformat(f"{head}.{frac.ljust(6, '0')[:6]}")
        except ValueError:
            pass
    return v if v else None


def _bytes(v: str) -> bytes:
    return v.encode("latin-1", "replace")  # canal's value string is ISO-8859-1 of the raw bytes


def _bit(v: str) -> Any:
    try:
        return int(v)
    except ValueError:
        return int.from_bytes(v.encode("latin-1", "replace"), "big") if v else None


CONVERTERS: dict[int, Callable[[str], Any]] = {
    TINYINT: _int, SMALLINT: _int, INTEGER: _int, BIGINT: _int,
    DECIMAL: _decimal, NUMERIC: _decimal,
    FLOAT: _float, REAL: _float, DOUBLE: _float,
    DATE: _date, TIMESTAMP: _datetime,
    BINARY: _bytes, VARBINARY: _bytes, LONGVARBINARY: _bytes, BLOB: _bytes,
    BIT: _bit, BOOLEAN: _bit,
}
_TEXTUAL_EMPTY_OK = frozenset({BINARY, VARBINARY, LONGVARBINARY, BLOB})


def typed_value(sql_type: int, value: str) -> Any:
    """Python value for a canal column value string of java.sql.Types ``sql_type``."""
    conv = CONVERTERS.get(sql_type)
    if conv is None:
        return value
    if not value and sql_type not in _TEXTUAL_EMPTY_OK:
        return None  # canal: an empty non-text value is null
    return conv(value)


def _row(columns: Iterable[pb.Column]) -> dict[str, Any]:
    get = CONVERTERS.get
    row: dict[str, Any] = {}
    for c in columns:
        if c.isNull:
            row[c.name] = None
            continue
        v = c.value
        conv = get(c.sqlType)
        if conv is None:
            row[c.name] = v
        elif not v and c.sqlType not in _TEXTUAL_EMPTY_OK:
            row[c.name] = None
        else:
            row[c.name] = conv(v)
    return row


def _types(columns: Iterable[pb.Column]) -> tuple[dict[str, int], dict[str, str], tuple[str, ...]]:
    sql_types: dict[str, int] = {}
    mysql_types: dict[str, str] = {}
    pks: list[str] = []
    for c in columns:
        sql_types[c.name] = c.sqlType
        mysql_types[c.name] = c.mysqlType
        if c.isKey:
            pks.append(c.name)
    return sql_types, mysql_types, tuple(pks)


def entry_to_dml(entry: pb.Entry, destination: str, group_id: str | None, ts: int) -> Dml | None:
    """One Entry → one Dml, or None for transaction markers, heartbeats and empty row changes."""
    if entry.HasField("entryType") and entry.entryType != _ROWDATA:
        return None  # proto2 default is ROWDATA: an absent type means a row change
    h = entry.header
    rc = pb.RowChange.FromString(entry.storeValue)
    etype = rc.eventType if rc.HasField("eventType") else h.eventType
    type_name = _EVENT_NAMES.get(etype, str(etype))
    position = f"{h.logfileName}:{h.logfileOffset}"
    if rc.isDdl:
        return Dml(destination, group_id, rc.ddlSchemaName or h.schemaName, h.tableName, type_name, es=h.executeTime,
                   ts=ts, sql=rc.sql, is_ddl=True, position=position, gtid=h.gtid)
    rows = rc.rowDatas
    if etype not in (_INSERT, _UPDATE, _DELETE) and not rows:
        # QUERY and friends: canal passes them on with their SQL and no data
        return Dml(destination, group_id, h.schemaName, h.tableName, type_name, es=h.executeTime, ts=ts,
                       sql=rc.sql, position=position, gtid=h.gtid)
    if not rows:
        return None
    first = rows[0].beforeColumns if etype == _DELETE else rows[0].afterColumns
    sql_types, mysql_types, pks = _types(first)
    data: list[dict[str, Any]] = []
    old: list[dict[str, Any]] | None = [] if etype == _UPDATE else None
    for rd in rows:
        if etype == _DELETE:
            data.append(_row(rd.beforeColumns))
            continue
        data.append(_row(rd.afterColumns))
        if old is not None:
            before = {c.name: c for c in rd.beforeColumns}
            changed = [before[c.name] for c in rd.afterColumns if c.updated and c.name in before]
            old.append(_row(changed))
    return Dml(destination, group_id, h.schemaName, h.tableName, type_name, pks, tuple(data),
               tuple(old) if old is not None else None, h.executeTime, ts, "", False, sql_types, mysql_types,
               position, h.gtid)


def entries_to_dmls(entries: Iterable[pb.Entry], destination: str, group_id: str | None, ts: int) -> list[Dml]:
    """A batch of Entries → Dmls in order (``ts`` = build time in ms, canal's ``Dml.ts``)."""
    out: list[Dml] = []
    for e in entries:
        d = entry_to_dml(e, destination, group_id, ts)
        if d is not None:
            out.append(d)
    return out
