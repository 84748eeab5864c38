"""MySQL column types → canal's java.sql.Types code and mysqlType text; Java number formatting.

canal derives ``sqlType`` per *value* (an unsigned value above the signed maximum is promoted,
a NULL BLOB gets another code than a non-NULL one). We give every column one code, the one canal
uses for its non-NULL values, with unsigned integer columns always promoted (see docs/parser.md).
"""

from __future__ import annotations

import struct
from decimal import Decimal

from pymysqlreplication.constants import FIELD_TYPE as T

from adapter.server.binlog.tabledef import ColumnDef

# java.sql.Types
BIT, TINYINT, SMALLINT, INTEGER, BIGINT = -7, -6, 5, 4, -5
DECIMAL, REAL, DOUBLE = 3, 7, 8
CHAR, VARCHAR, DATE, TIME, TIMESTAMP = 1, 12, 91, 92, 93
BLOB, CLOB, OTHER = 2004, 2005, 1111

_INT_TYPES = {
    # type: (signed sqlType, unsigned sqlType, name, signed display width, unsigned display width)
    T.TINY: (TINYINT, SMALLINT, "tinyint", 4, 3),
    T.SHORT: (SMALLINT, INTEGER, "smallint", 6, 5),
    T.INT24: (INTEGER, INTEGER, "mediumint", 9, 8),
    T.LONG: (INTEGER, BIGINT, "int", 11, 10),
    T.LONGLONG: (BIGINT, DECIMAL, "bigint", 20, 20),
}

#: Maximum bytes per character, to turn binlog byte lengths into declared character lengths.
MBMAXLEN = {
    "utf8mb4": 4, "utf8mb3": 3, "utf8": 3, "utf16": 4, "utf16le": 4, "utf32": 4, "ucs2": 2,
    "gbk": 2, "gb2312": 2, "big5": 2, "sjis": 2, "cp932": 2, "euckr": 2, "ujis": 3, "eucjpms": 3,
    "gb18030": 4,
}

_BLOB_PREFIX = {1: "tiny", 2: "", 3: "medium", 4: "long"}


def sql_type(col: ColumnDef) -> int:
    """canal's java.sql.Types code for a column (its non-NULL mapping, unsigned promoted)."""
    t = col.type
    if t in _INT_TYPES:
        signed, unsigned, *_ = _INT_TYPES[t]
        return unsigned if col.unsigned else signed
    if t in (T.NEWDECIMAL, T.DECIMAL):
        return DECIMAL
    if t == T.FLOAT:
        return REAL
    if t == T.DOUBLE:
        return DOUBLE
    if t == T.BIT:
        return BIT
    if t in (T.TIMESTAMP, T.TIMESTAMP2, T.DATETIME, T.DATETIME2):
        return TIMESTAMP
    if t in (T.TIME, T.TIME2):
        return TIME
    if t in (T.DATE, T.NEWDATE):
        return DATE
    if t == T.YEAR:
        return VARCHAR
    if t == T.ENUM:
        return CHAR
    if t == T.SET:
        return VARCHAR
    if t == T.BLOB:
        return BLOB if col.is_binary else CLOB
    if t in (T.VARCHAR, T.VAR_STRING):
        return BLOB if col.is_binary else VARCHAR
    if t == T.STRING:
        return BLOB if col.is_binary else CHAR
    if t == T.JSON:
        return VARCHAR
    if t == T.GEOMETRY:
        return BLOB
    return OTHER


def _quote(label: str) -> str:
    return "'" + label.replace("\\", "\\\\").replace("'", "''") + "'"


def mysql_type(col: ColumnDef) -> str:
    """The column type text (``SHOW COLUMNS`` style) as far as the binlog metadata tells it.

    Integer display widths are not in the binlog: the server defaults are used ("int(11)"); the
    parser replaces them by information_schema's text when the live table still matches.
    """
    t = col.type
    uns = " unsigned" if col.unsigned else ""
    if t in _INT_TYPES:
        _, _, name, width, uwidth = _INT_TYPES[t]
        return f"{name}({uwidth if col.unsigned else width}){uns}"
    if t in (T.NEWDECIMAL, T.DECIMAL):
        return f"decimal({col.precision},{col.decimals}){uns}"
    if t == T.FLOAT:
        return "float" + uns
    if t == T.DOUBLE:
        return "double" + uns
    if t == T.BIT:
        return f"bit({col.bits})"
    fsp = f"({col.fsp})" if col.fsp else ""
    if t in (T.DATETIME2, T.DATETIME):
        return "datetime" + fsp
    if t in (T.TIMESTAMP2, T.TIMESTAMP):
        return "timestamp" + fsp
    if t in (T.TIME2, T.TIME):
        return "time" + fsp
    if t in (T.DATE, T.NEWDATE):
        return "date"
    if t == T.YEAR:
        return "year(4)"
    if t == T.ENUM:
        return "enum(" + ",".join(_quote(x) for x in col.labels) + ")"
    if t == T.SET:
        return "set(" + ",".join(_quote(x) for x in col.labels) + ")"
    if t == T.BLOB:
        return _BLOB_PREFIX.get(col.length_size, "") + ("blob" if col.is_binary else "text")
    chars = col.max_length // MBMAXLEN.get(col.charset, 1)
    if t in (T.VARCHAR, T.VAR_STRING):
        return f"varbinary({col.max_length})" if col.is_binary else f"varchar({chars})"
    if t == T.STRING:
        return f"binary({col.max_length})" if col.is_binary else f"char({chars})"
    if t == T.JSON:
        return "json"
    if t == T.GEOMETRY:
        return "geometry"
    return f"unknown({t})"


def _java_digits(text: str, negative: bool) -> str:
    """Format a shortest round-trip decimal (Python repr) the way Java's toString does."""
    digits_t, exp = Decimal(text).as_tuple()[1:]
    assert isinstance(exp, int)
    digits = "".join(map(str, digits_t)).rstrip("0") or "0"
    if digits == "0":
        return "-0.0" if negative else "0.0"
    # value = 0.d1d2d3... * 10**point
    point = len(digits_t) + exp
    sign = "-" if negative else ""
    sci = point - 1
    if -3 <= sci < 7:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return f"{sign}{digits}{'0' * (point - len(digits))}.0"
        return f"{sign}{digits[:point]}.{digits[point:]}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{sci}"


def java_double(value: float) -> str:
    """Java ``Double.toString`` (shortest-digit form, as JDK 19+ prints it)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    negative = value < 0 or (value == 0 and struct.pack(">d", value)[0] & 0x80 != 0)
    return _java_digits(repr(abs(value)), negative)


_F32 = struct.Struct("<f")


def java_float(value: float) -> str:
    """Java ``Float.toString`` for a value read from a 4-byte FLOAT (shortest float32 digits)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    negative = value < 0 or (value == 0 and struct.pack(">d", value)[0] & 0x80 != 0)
    mag = abs(value)
    text = repr(mag)
    for precision in range(1, 10):
        candidate = f"{mag:.{precision}g}"
        try:
            if _F32.unpack(_F32.pack(float(candidate)))[0] == mag:
                text = candidate
                break
        except OverflowError:  # rounded above the float32 maximum
            continue
    return _java_digits(text, negative)
