"""Value conversion per target column: each source value lands faithfully or fails naming table, column, value.

Dml values arrive typed (int, Decimal, float, date, naive datetime, TIME as str, zero dates as the
raw string, bytes, BIT as int, JSON/ENUM/SET as str). A converter is chosen once per (target column,
source MySQL type) from the reflected SQLAlchemy type; ``None`` means "pass through".
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import mysql as my
from sqlalchemy.dialects import postgresql as pg

from adapter.errors import FatalError

Converter = Callable[[Any], Any]
UTC = dt.timezone.utc
_TIME = re.compile(r"^(-)?(\d+):(\d{1,2}):(\d{1,2})(?:\.(\d{1,6}))?$")
_BITS = {"TINYINT": 8, "SMALLINT": 16, "MEDIUMINT": 24, "INTEGER": 32, "INT": 32, "BIGINT": 64}


@dataclass(frozen=True)
class ConvContext:
    """What conversion needs besides the column: target family, table name, policies."""

    family: str  # "mysql" | "postgresql" | "sqlite"
    table: str
    zero_date: str  # "null" | "error" | "keep"
    tz: dt.tzinfo  # zone of naive DATETIME values written into zone-aware columns


class _Fail:
    """Builds the FatalError for one column (kept out of the hot path)."""

    __slots__ = ("col", "ctx", "type_name")

    def __init__(self, ctx: ConvContext, col: sa.Column[Any]) -> None:
        self.ctx, self.col = ctx, col
        try:
            self.type_name = str(col.type)
        except Exception:  # some reflected types cannot render without a dialect
            self.type_name = type(col.type).__name__

    def __call__(self, value: Any, why: str) -> FatalError:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return FatalError(f"rdb: cannot write {shown} into {self.ctx.table}.{self.col.name} ({self.type_name}): {why}")


def int_bounds(col_type: Any, family: str) -> tuple[int, int]:
    """Inclusive range of an integer column type on its backend."""
    name = type(col_type).__name__.upper()
    if family == "mysql":
        bits = _BITS.get(name, 64)
        if getattr(col_type, "unsigned", False):
            return 0, 2**bits - 1
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if family == "sqlite":
        return -(2**63), 2**63 - 1  # INTEGER affinity is always 64-bit
    if isinstance(col_type, sa.SmallInteger):
        return -(2**15), 2**15 - 1
    if isinstance(col_type, sa.BigInteger):
        return -(2**63), 2**63 - 1
    return -(2**31), 2**31 - 1


def parse_time(text: str) -> tuple[bool, int, int, int, int]:
    """MySQL TIME text → (negative, hours, minutes, seconds, microseconds); ValueError if malformed."""
    m = _TIME.match(text.strip())
    if not m:
        raise ValueError(text)
    frac = int((m[5] or "0").ljust(6, "0"))
    return bool(m[1]), int(m[2]), int(m[3]), int(m[4]), frac


def timedelta_to_mysql(td: dt.timedelta) -> str:
    """A driver's TIME timedelta → MySQL's text form (what the stream carries)."""
    us = (td.days * 86400 + td.seconds) * 1_000_000 + td.microseconds
    sign = "-" if us < 0 else ""
    us = abs(us)
    secs, frac = divmod(us, 1_000_000)
    h, rem = divmod(secs, 3600)
    out = f"{sign}{h:02d}:{rem // 60:02d}:{rem % 60:02d}"
    return f"{out}.{frac:06d}" if frac else out


def _parse_datetime(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None


def _zero(ctx: ConvContext, fail: _Fail, value: str) -> Any:
    if ctx.zero_date == "keep":
        return value
    if ctx.zero_date == "error":
        raise fail(value, "zero or invalid date (mapping zeroDate: error)")
    return None


def _datetime_conv(ctx: ConvContext, col: sa.Column[Any], fail: _Fail, source_type: str) -> Converter:
    aware = bool(getattr(col.type, "timezone", False)) and ctx.family == "postgresql"
    mysql_ts = ctx.family == "mysql" and isinstance(col.type, sa.TIMESTAMP)
    # binlog TIMESTAMP values are UTC instants; DATETIME values are wall-clock in the configured zone.
    src_tz = UTC if source_type.startswith("timestamp") else ctx.tz

    def conv(v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, str):
            parsed = _parse_datetime(v)
            if parsed is None:
                return _zero(ctx, fail, v)
            v = parsed
        elif not isinstance(v, dt.datetime):
            if isinstance(v, dt.date):
                v = dt.datetime(v.year, v.month, v.day)
            else:
                raise fail(v, "expected a datetime")
        if aware:
            return v if v.tzinfo else v.replace(tzinfo=src_tz)
        if mysql_ts:  # the session runs in UTC, so a TIMESTAMP column gets the same instant
            return (v if v.tzinfo else v.replace(tzinfo=src_tz)).astimezone(UTC).replace(tzinfo=None)
        return v.astimezone(UTC).replace(tzinfo=None) if v.tzinfo else v

    return conv


def _date_conv(ctx: ConvContext, fail: _Fail) -> Converter:
    def conv(v: Any) -> Any:
        if v is None or (isinstance(v, dt.date) and not isinstance(v, dt.datetime)):
            return v
        if isinstance(v, dt.datetime):
            return v.date()
        if isinstance(v, str):
            parsed = _parse_datetime(v)
            return _zero(ctx, fail, v) if parsed is None else parsed.date()
        raise fail(v, "expected a date")

    return conv


def _time_conv(ctx: ConvContext, fail: _Fail) -> Converter:
    def conv(v: Any) -> Any:
        if isinstance(v, dt.timedelta):
            v = timedelta_to_mysql(v)
        if v is None or isinstance(v, dt.time) or ctx.family == "mysql":
            return v
        try:
            neg, h, m, s, us = parse_time(str(v))
        except ValueError:
            raise fail(v, "not a TIME value") from None
        if neg or h > 23:
            raise fail(v, "outside 00:00:00..23:59:59, which this column type cannot hold (use interval/text)")
        return dt.time(h, m, s, us)

    return conv


def _interval_conv(fail: _Fail) -> Converter:
    def conv(v: Any) -> Any:
        if v is None or isinstance(v, dt.timedelta):
            return v
        try:
            neg, h, m, s, us = parse_time(str(v))
        except ValueError:
            raise fail(v, "not a TIME value") from None
        td = dt.timedelta(hours=h, minutes=m, seconds=s, microseconds=us)
        return -td if neg else td

    return conv


def _int_conv(ctx: ConvContext, col: sa.Column[Any], fail: _Fail) -> Converter:
    lo, hi = int_bounds(col.type, ctx.family)

    def conv(v: Any) -> Any:
        if v is None:
            return None
        if type(v) is not int:
            if isinstance(v, bytes):  # BIT read by a driver as bytes
                v = int.from_bytes(v, "big")
            else:
                try:
                    d = Decimal(str(v).strip()) if not isinstance(v, Decimal) else v
                    if d != d.to_integral_value():
                        raise fail(v, "not an integer")
                    v = int(d)
                except (InvalidOperation, ValueError):
                    raise fail(v, "not an integer") from None
        if v < lo or v > hi:
            raise fail(v, f"out of range {lo}..{hi}")
        return v

    return conv


def _numeric_conv(ctx: ConvContext, col: sa.Column[Any], fail: _Fail) -> Converter:
    precision = getattr(col.type, "precision", None)
    scale = getattr(col.type, "scale", None)
    exp = Decimal(1).scaleb(-scale) if scale is not None else None

    def conv(v: Any) -> Any:
        if v is None or isinstance(v, float):
            return v
        try:
            d = v if isinstance(v, Decimal) else Decimal(str(v).strip())
        except InvalidOperation:
            raise fail(v, "not a number") from None
        if not d.is_finite():
            raise fail(v, "not a finite number")
        if exp is not None and d.quantize(exp) != d:
            raise fail(v, f"more than {scale} fractional digits")
        if precision is not None:
            int_digits = max(d.adjusted() + 1, 0)
            if int_digits > precision - (scale or 0):
                raise fail(v, f"more than {precision - (scale or 0)} integer digits")
        if ctx.family == "sqlite" and Decimal(repr(float(d))) != d:
            raise fail(v, "SQLite stores NUMERIC as a 64-bit float and would change this value (use a TEXT column)")
        return d

    return conv


def _bool_conv(fail: _Fail) -> Converter:
    def conv(v: Any) -> Any:
        if v is None or isinstance(v, bool):
            return v
        if v in (0, 1):
            return bool(v)
        if isinstance(v, str) and v.strip().lower() in ("0", "1", "true", "false"):
            return v.strip().lower() in ("1", "true")
        raise fail(v, "a boolean column holds only 0/1 (use smallint for tinyint(1) values beyond 0/1)")

    return conv


def _string_conv(col: sa.Column[Any], fail: _Fail, check_length: bool = True) -> Converter:
    length = getattr(col.type, "length", None) if check_length else None

    def conv(v: Any) -> Any:
        if v is None:
            return None
        if type(v) is not str:
            if isinstance(v, bytes):
                try:
                    v = v.decode("utf-8")
                except UnicodeDecodeError:
                    raise fail(v, "binary value is not UTF-8 text") from None
            elif isinstance(v, (dict, list)):
                v = orjson.dumps(v).decode()
            elif isinstance(v, bool):
                v = str(int(v))
            else:
                v = str(v)  # int/Decimal/date/datetime print as MySQL does
        if length is not None and len(v) > length:
            raise fail(v, f"longer than {length} characters")
        return v

    return conv


def _json_conv(fail: _Fail) -> Converter:
    def conv(v: Any) -> Any:
        if v is None or isinstance(v, str):
            return v
        if isinstance(v, bytes):
            return v.decode("utf-8")
        try:
            return orjson.dumps(v).decode()
        except TypeError:
            raise fail(v, "not JSON-serialisable") from None

    return conv


def _binary_conv(fail: _Fail) -> Converter:
    def conv(v: Any) -> Any:
        if v is None or isinstance(v, bytes):
            return v
        if isinstance(v, str):
            return v.encode("utf-8")
        if isinstance(v, (bytearray, memoryview)):
            return bytes(v)
        raise fail(v, "expected bytes")

    return conv


def _pg_bit_conv(col: sa.Column[Any], fail: _Fail) -> Converter:
    length = getattr(col.type, "length", None) or 1
    varying = bool(getattr(col.type, "varying", False))

    def conv(v: Any) -> Any:
        if v is None or isinstance(v, str):
            return v
        n = int.from_bytes(v, "big") if isinstance(v, bytes) else int(v)
        if n < 0 or n.bit_length() > length:
            raise fail(v, f"does not fit in {length} bits")
        return format(n, "b") if varying else format(n, f"0{length}b")

    return conv


def _array_conv(fail: _Fail) -> Converter:
    def conv(v: Any) -> Any:
        if v is None or isinstance(v, list):
            return v
        if isinstance(v, str):  # a MySQL SET value "a,b" → ['a', 'b']
            return [p for p in v.split(",") if p] if v else []
        raise fail(v, "expected a SET string")

    return conv


def _int_to_bytes_conv() -> Converter:
    def conv(v: Any) -> Any:
        return int.from_bytes(v, "big") if isinstance(v, bytes) else v

    return conv


def converter_for(ctx: ConvContext, col: sa.Column[Any], source_type: str = "") -> Converter | None:
    """The converter for values of a source column (MySQL type ``source_type``) into ``col``."""
    t = col.type
    fail = _Fail(ctx, col)
    if isinstance(t, sa.JSON):
        return _json_conv(fail)
    if isinstance(t, pg.BIT):
        return _pg_bit_conv(col, fail)
    if isinstance(t, (my.BIT, my.YEAR)):
        return _int_to_bytes_conv()
    if isinstance(t, sa.Boolean):
        return _bool_conv(fail)
    if isinstance(t, sa.Integer):
        return _int_conv(ctx, col, fail)
    if isinstance(t, sa.Float):
        return None
    if isinstance(t, sa.Numeric):
        return _numeric_conv(ctx, col, fail)
    if isinstance(t, sa.DateTime):
        return _datetime_conv(ctx, col, fail, source_type)
    if isinstance(t, sa.Date):
        return _date_conv(ctx, fail)
    if isinstance(t, sa.Time):
        return _time_conv(ctx, fail)
    if isinstance(t, sa.Interval):
        return _interval_conv(fail)
    if isinstance(t, sa.ARRAY):
        return _array_conv(fail)
    if isinstance(t, (sa.LargeBinary, sa.types._Binary)):
        return _binary_conv(fail)
    if isinstance(t, (sa.Enum, my.SET)):
        return _string_conv(col, fail, check_length=False)  # the target checks membership itself
    if isinstance(t, sa.String):
        return _string_conv(col, fail)
    return None
