"""Table layouts as the binlog's own TABLE_MAP event describes them (names, types, keys, charsets).

A rows event is decoded with the layout of the TABLE_MAP event written just before it, so an old
event decodes with the schema it was written under, not today's schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pymysqlreplication.constants import FIELD_TYPE

from adapter.errors import FatalError

#: Field types whose values are character data (their charset comes from the metadata).
CHARACTER_TYPES = frozenset({FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING, FIELD_TYPE.STRING, FIELD_TYPE.BLOB})


@dataclass(frozen=True, slots=True)
class ColumnDef:
    """One column of a TABLE_MAP event. Sizes are the binlog metadata (bytes, not characters)."""

    index: int
    name: str
    type: int  # pymysqlreplication FIELD_TYPE, with ENUM/SET resolved from the STRING metadata
    unsigned: bool = False
    is_key: bool = False
    charset: str = ""  # MySQL charset name ("utf8mb4", "latin1", "binary"); "" for non-character types
    max_length: int = 0  # VARCHAR/CHAR: maximum length in bytes
    length_size: int = 0  # BLOB/TEXT/JSON/GEOMETRY: bytes of the length prefix
    precision: int = 0  # DECIMAL
    decimals: int = 0  # DECIMAL scale
    fsp: int = 0  # fractional seconds precision of DATETIME2/TIME2/TIMESTAMP2
    bits: int = 0  # BIT(n)
    pack_length: int = 0  # ENUM/SET: bytes of the stored value
    labels: tuple[str, ...] = ()  # ENUM/SET values, in definition order
    float_size: int = 0  # FLOAT/DOUBLE metadata byte

    @property
    def is_binary(self) -> bool:
        return self.charset == "binary"


@dataclass(frozen=True, slots=True)
class TableDef:
    """A table as one TABLE_MAP event describes it."""

    table_id: int
    schema: str
    table: str
    columns: tuple[ColumnDef, ...]
    key: tuple[Any, ...] = field(default=(), compare=False)  # layout signature for caches

    @property
    def full_name(self) -> str:
        return f"{self.schema}.{self.table}"


def _charset_of(collation: str | None) -> str:
    if not collation:
        return "utf8mb4"  # no charset metadata: assume the server default we require
    if collation == "binary":
        return "binary"
    return collation.split("_", 1)[0]


def column_from_library(index: int, col: Any, pk: set[int]) -> ColumnDef:
    """Build a ColumnDef from a pymysqlreplication ``Column`` (filled from FULL row metadata)."""
    ctype = int(col.type)
    charset = _charset_of(getattr(col, "collation_name", None)) if ctype in CHARACTER_TYPES else ""
    labels: Sequence[str] = ()
    if ctype == FIELD_TYPE.ENUM:
        labels = list(col.enum_values or [""])[1:]  # the library prepends "" for index 0
    elif ctype == FIELD_TYPE.SET:
        labels = list(col.set_values or [])
    return ColumnDef(
        index=index,
        name=str(col.name),
        type=ctype,
        unsigned=bool(col.unsigned),
        is_key=bool(col.is_primary) or index in pk,
        charset=charset,
        max_length=int(getattr(col, "max_length", 0) or 0),
        length_size=int(getattr(col, "length_size", 0) or 0),
        precision=int(getattr(col, "precision", 0) or 0),
        decimals=int(getattr(col, "decimals", 0) or 0),
        fsp=int(getattr(col, "fsp", 0) or 0),
        bits=int(getattr(col, "bits", 0) or 0),
        pack_length=int(getattr(col, "size", 0) or 0) if ctype in (FIELD_TYPE.ENUM, FIELD_TYPE.SET) else 0,
        labels=tuple(labels),
        float_size=int(getattr(col, "size", 0) or 0) if ctype in (FIELD_TYPE.FLOAT, FIELD_TYPE.DOUBLE) else 0,
    )


def table_from_library(ev: Any) -> TableDef:
    """Build a TableDef from a pymysqlreplication ``TableMapEvent``.

    Raises FatalError when the event carries no column names: the server must log
    ``binlog_row_metadata=FULL`` (events written before it was switched on cannot be decoded).
    """
    meta = getattr(ev, "optional_metadata", None)
    pk: set[int] = set()
    if meta is not None:
        pk.update(int(i) for i in (meta.simple_primary_key_list or []))
        pk.update(int(i) for i in (meta.primary_keys_with_prefix or {}))
    cols = []
    for i, col in enumerate(ev.columns):
        if not col.name:
            raise FatalError(
                f"TABLE_MAP for {ev.schema}.{ev.table} has no column names: the source must run with "
                "binlog_row_metadata=FULL (SET GLOBAL binlog_row_metadata=FULL); events written before "
                "that cannot be decoded by name"
            )
        cols.append(column_from_library(i, col, pk))
    columns = tuple(cols)
    return TableDef(table_id=int(ev.table_id), schema=str(ev.schema), table=str(ev.table), columns=columns,
                    key=(str(ev.schema), str(ev.table), columns))
