"""rdb writer: value conversion per target type — lands faithfully or fails naming table, column and value."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql as my
from sqlalchemy.dialects import postgresql as pg

from adapter.errors import FatalError
from adapter.writers.rdb.types import UTC, ConvContext, converter_for, int_bounds, parse_time, timedelta_to_mysql

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def conv(type_: Any, family: str = "postgresql", source_type: str = "", zero: str = "null", tz: Any = UTC) -> Any:
    col = sa.Column("c", type_)
    sa.Table("t", sa.MetaData(), col)
    f = converter_for(ConvContext(family, "s.t", zero, tz), col, source_type)
    return f if f is not None else (lambda v: v)


def fails(f: Any, value: Any, *words: str) -> None:
    with pytest.raises(FatalError) as ei:
        f(value)
    msg = str(ei.value)
    assert "s.t.c" in msg and repr(value)[:20] in msg, msg
    for w in words:
        assert w in msg, msg


def test_unsigned_bigint_into_numeric_and_bigint() -> None:
    top = 2**64 - 1
    assert conv(sa.Numeric(20, 0))(top) == Decimal(top)
    fails(conv(sa.BigInteger()), top, "out of range")
    assert conv(my.BIGINT(unsigned=True), "mysql")(top) == top
    fails(conv(sa.INTEGER(), "sqlite"), top, "out of range")
    fails(conv(sa.Numeric(), "sqlite"), top, "SQLite")
    assert conv(sa.Text(), "sqlite")(top) == str(top)


def test_integer_bounds_by_backend() -> None:
    assert int_bounds(my.TINYINT(unsigned=True), "mysql") == (0, 255)
    assert int_bounds(my.MEDIUMINT(), "mysql") == (-(2**23), 2**23 - 1)
    assert int_bounds(sa.SmallInteger(), "postgresql") == (-32768, 32767)
    assert int_bounds(sa.Integer(), "postgresql") == (-(2**31), 2**31 - 1)
    assert int_bounds(sa.Integer(), "sqlite") == (-(2**63), 2**63 - 1)
    f = conv(sa.SmallInteger())
    assert f(Decimal("12")) == 12 and f("7") == 7 and f(b"\x01\x00") == 256
    fails(f, Decimal("1.5"), "not an integer")
    fails(f, 40000, "out of range")


def test_decimal_precision_is_checked_not_rounded() -> None:
    f = conv(sa.Numeric(10, 2))
    assert f(Decimal("12345678.91")) == Decimal("12345678.91")
    assert f(5) == Decimal(5)
    fails(f, Decimal("1.234"), "fractional digits")
    fails(f, Decimal("123456789.1"), "integer digits")
    fails(f, "abc", "not a number")
    assert conv(sa.Numeric(10, 2), "sqlite")(Decimal("1.25")) == Decimal("1.25")


def test_tinyint1_into_boolean_and_smallint() -> None:
    b = conv(sa.Boolean(), source_type="tinyint(1)")
    assert b(1) is True and b(0) is False and b("1") is True
    fails(b, 5, "0/1")
    assert conv(sa.SmallInteger(), source_type="tinyint(1)")(5) == 5  # values beyond 0/1 survive
    assert conv(my.TINYINT(display_width=1), "mysql", "tinyint(1)")(5) == 5


@pytest.mark.parametrize("family", ["postgresql", "sqlite"])
def test_zero_dates_policy(family: str) -> None:
    for type_ in (sa.DateTime(), sa.Date()):
        assert conv(type_, family, zero="null")("0000-00-00 00:00:00") is None
        fails(conv(type_, family, zero="error"), "0000-00-00", "zeroDate")
    assert conv(sa.DateTime(), "mysql", zero="keep")("0000-00-00 00:00:00") == "0000-00-00 00:00:00"
    assert conv(sa.Date(), family)("2021-02-03") == dt.date(2021, 2, 3)


def test_datetime_and_timestamp_time_zones() -> None:
    naive = dt.datetime(2024, 1, 2, 3, 4, 5, 600000)
    aware = conv(pg.TIMESTAMP(timezone=True), "postgresql", "timestamp(6)", tz=SHANGHAI)
    assert aware(naive) == naive.replace(tzinfo=UTC)  # binlog TIMESTAMP values are UTC instants
    wall = conv(pg.TIMESTAMP(timezone=True), "postgresql", "datetime(6)", tz=SHANGHAI)
    assert wall(naive) == naive.replace(tzinfo=SHANGHAI)  # DATETIME is wall-clock in the configured zone
    assert conv(pg.TIMESTAMP(), "postgresql", "timestamp")(naive) == naive  # naive column: unchanged
    my_ts = conv(my.TIMESTAMP(), "mysql", "datetime", tz=SHANGHAI)
    assert my_ts(naive) == naive - dt.timedelta(hours=8)  # session runs in UTC
    assert conv(my.DATETIME(), "mysql", "datetime", tz=SHANGHAI)(naive) == naive
    assert conv(sa.DateTime(), "sqlite")("2024-01-02 03:04:05.6") == dt.datetime(2024, 1, 2, 3, 4, 5, 600000)
    assert conv(sa.DateTime(), "sqlite")(dt.date(2024, 1, 2)) == dt.datetime(2024, 1, 2)


def test_time_values() -> None:
    assert parse_time("-838:59:59.5") == (True, 838, 59, 59, 500000)
    assert timedelta_to_mysql(dt.timedelta(hours=-1, seconds=-1)) == "-01:00:01"
    f = conv(sa.Time(), "postgresql")
    assert f("12:34:56.000123") == dt.time(12, 34, 56, 123)
    fails(f, "25:00:00", "outside")
    fails(f, "-01:00:00", "outside")
    assert conv(sa.Time(), "mysql")("-01:00:00") == "-01:00:00"
    assert conv(sa.Interval(), "postgresql")("-25:00:00") == -dt.timedelta(hours=25)


def test_json_enum_set_bit_binary() -> None:
    j = conv(pg.JSONB())
    assert j('{"a": [1, 2]}') == '{"a": [1, 2]}'  # the source text, unchanged
    assert j({"a": 1}) == '{"a":1}'
    assert conv(sa.String(5))("a,b") == "a,b"
    fails(conv(sa.String(3)), "abcd", "longer than 3")
    assert conv(pg.ARRAY(sa.Text()))("a,b") == ["a", "b"]
    assert conv(pg.ARRAY(sa.Text()))("") == []
    bit = conv(pg.BIT(8))
    assert bit(5) == "00000101"
    fails(bit, 256, "8 bits")
    assert conv(pg.BIT(8, varying=True))(5) == "101"
    assert conv(my.BIT(8), "mysql")(b"\x05") == 5
    assert conv(sa.LargeBinary())(b"\x00\xff") == b"\x00\xff"
    assert conv(pg.BYTEA())("é") == "é".encode()
    fails(conv(sa.Text()), b"\xff\xfe", "UTF-8")
    assert conv(sa.Text())(Decimal("1.50")) == "1.50"


def test_none_passes_everywhere() -> None:
    for t in (sa.Integer(), sa.Numeric(5, 2), sa.DateTime(), sa.Date(), sa.Time(), sa.Boolean(), pg.JSONB(),
              sa.String(3), pg.BIT(2), sa.LargeBinary()):
        assert conv(t)(None) is None
