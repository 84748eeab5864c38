"""The ``Dml`` row-change record that flows from the source to every writer (canal's Dml.java)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

#: Event type names carried in ``Dml.type`` (canal's EventType names).
INSERT = "INSERT"
UPDATE = "UPDATE"
DELETE = "DELETE"
TRUNCATE = "TRUNCATE"
ROW_TYPES = frozenset({INSERT, UPDATE, DELETE})


@dataclass(frozen=True, slots=True)
class Dml:
    """One row change (or DDL) of one table, with canal's fields in snake_case.

    ``data`` holds the after-images (INSERT/UPDATE) or before-images (DELETE), with Python values
    (int, Decimal, str, bytes, datetime/date/timedelta, None). ``old`` is UPDATE-only and, unlike
    canal, always aligned with ``data``: ``old[i]`` holds the changed columns' previous values of
    row ``i`` (possibly empty).
    """

    destination: str
    group_id: str | None
    database: str
    table: str
    type: str
    pk_names: tuple[str, ...] = ()
    data: tuple[Mapping[str, Any], ...] = ()
    old: tuple[Mapping[str, Any], ...] | None = None
    es: int = 0
    ts: int = 0
    sql: str = ""
    is_ddl: bool = False
    sql_types: Mapping[str, int] = field(default_factory=dict)
    mysql_types: Mapping[str, str] = field(default_factory=dict)
    #: Source position "journal:offset" of the event, for logs, metrics and dead letters.
    position: str = ""
    gtid: str = ""

    def to_canal_dict(self) -> dict[str, Any]:
        """canal's JSON shape (as printed by its logger adapter), nulls included."""
        return {
            "data": [dict(r) for r in self.data] if self.data else None,
            "database": self.database,
            "destination": self.destination,
            "es": self.es,
            "groupId": self.group_id,
            "isDdl": self.is_ddl,
            "old": [dict(r) for r in self.old] if self.old is not None else None,
            "pkNames": list(self.pk_names) if self.pk_names else None,
            "sql": self.sql,
            "table": self.table,
            "ts": self.ts,
            "type": self.type,
        }


def json_default(value: Any) -> Any:
    """orjson fallback for Dml values: Decimal/date/time as text, bytes as canal's ISO-8859-1 string."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("latin-1")
    if isinstance(value, (Decimal, _dt.date, _dt.time, _dt.timedelta)):
        return str(value)  # "2024-01-02 03:04:05" as MySQL prints it, not ISO "T"
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def to_canal_json(dml: Dml) -> bytes:
    """One Dml as canal's JSON line (``Dml.to_canal_dict``), e.g. for logs, dead letters and JSONL sinks."""
    return orjson.dumps(dml.to_canal_dict(), default=json_default,
                        option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS)
