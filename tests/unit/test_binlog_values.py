"""Row-image value decoders and canal type mapping (binlog bytes → canal value text)."""

from __future__ import annotations

import datetime
import struct
import zoneinfo

import pytest
from pymysqlreplication.constants import FIELD_TYPE as T

from adapter.errors import FatalError
from adapter.server.binlog.tabledef import ColumnDef
from adapter.server.binlog.typemap import java_double, java_float, mysql_type, sql_type
from adapter.server.binlog.values import decimal_size, make_decoder

UTC = datetime.timezone.utc


def dec(col: ColumnDef, raw: bytes, tz: datetime.tzinfo = UTC) -> str:
    value, end = make_decoder(col, tz)(b"\xee" + raw + b"\xee", 1)
    assert end == 1 + len(raw), "decoder consumed the wrong number of bytes"
    return value.decode()


def col(t: int, **kw: object) -> ColumnDef:
    return ColumnDef(0, "c", t, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- encoders (MySQL's storage formats)
def enc_decimal(text: str, precision: int, scale: int) -> bytes:
    negative = text.startswith("-")
    ip, _, fp = text.lstrip("-").partition(".")
    fp = fp.ljust(scale, "0")
    intg = precision - scale
    ip = ip.rjust(intg, "0")
    dig2 = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4]
    out = b""
    lead = intg % 9
    if lead:
        out += int(ip[:lead]).to_bytes(dig2[lead], "big")
    for k in range(lead, intg, 9):
        out += int(ip[k : k + 9]).to_bytes(4, "big")
    full = scale // 9
    for k in range(full):
        out += int(fp[k * 9 : k * 9 + 9]).to_bytes(4, "big")
    tail = scale % 9
    if tail:
        out += int(fp[full * 9 :]).to_bytes(dig2[tail], "big")
    b = bytearray(out)
    b[0] ^= 0x80
    if negative:
        b = bytearray(x ^ 0xFF for x in b)
    return bytes(b)


def enc_datetime2(y: int, mo: int, d: int, h: int, mi: int, s: int, us: int, fsp: int) -> bytes:
    v = ((y * 13 + mo) << 22 | d << 17 | h << 12 | mi << 6 | s) + 0x8000000000
    return v.to_bytes(5, "big") + enc_frac(us, fsp)


def enc_frac(us: int, fsp: int) -> bytes:
    if fsp in (1, 2):
        return (us // 10000).to_bytes(1, "big")
    if fsp in (3, 4):
        return (us // 100).to_bytes(2, "big")
    if fsp in (5, 6):
        return us.to_bytes(3, "big")
    return b""


def enc_time2(negative: bool, h: int, mi: int, s: int, us: int, fsp: int) -> bytes:
    """MySQL TIME2 (my_time_packed_to_binary): packed = ±((hms << 24) + micros); the integer part is
    packed >> 24 (floor) and the fraction is C's truncating ``packed % 2**24``, stored per fsp."""
    packed = ((h << 12 | mi << 6 | s) << 24) + us
    if negative:
        packed = -packed
    if fsp >= 5:
        return (packed + 0x800000000000).to_bytes(6, "big")
    intpart = packed >> 24
    frac_c = -((-packed) % (1 << 24)) if packed < 0 else packed % (1 << 24)
    head = (intpart + 0x800000).to_bytes(3, "big")
    if fsp in (1, 2):
        return head + (int(frac_c / 10000) & 0xFF).to_bytes(1, "big")
    if fsp in (3, 4):
        return head + (int(frac_c / 100) & 0xFFFF).to_bytes(2, "big")
    return head


# ---------------------------------------------------------------- integers
@pytest.mark.parametrize(
    ("t", "unsigned", "raw", "text"),
    [
        (T.TINY, False, b"\xff", "-1"),
        (T.TINY, True, b"\xff", "255"),
        (T.TINY, False, b"\x01", "1"),
        (T.SHORT, False, struct.pack("<h", -32768), "-32768"),
        (T.SHORT, True, struct.pack("<H", 65535), "65535"),
        (T.INT24, False, (-5).to_bytes(3, "little", signed=True), "-5"),
        (T.INT24, True, (16777215).to_bytes(3, "little"), "16777215"),
        (T.LONG, False, struct.pack("<i", -2147483648), "-2147483648"),
        (T.LONG, True, struct.pack("<I", 4294967295), "4294967295"),
        (T.LONGLONG, False, struct.pack("<q", -(2**63)), str(-(2**63))),
        (T.LONGLONG, True, struct.pack("<Q", 2**64 - 1), "18446744073709551615"),
    ],
)
def test_integers_plain_and_unsigned(t: int, unsigned: bool, raw: bytes, text: str) -> None:
    assert dec(col(t, unsigned=unsigned), raw) == text


# ---------------------------------------------------------------- decimals
@pytest.mark.parametrize(
    ("text", "precision", "scale", "expected"),
    [
        ("12.34", 12, 2, "12.34"),
        ("-12.30", 12, 2, "-12.30"),
        ("0.00", 12, 2, "0.00"),
        ("-0.05", 12, 2, "-0.05"),
        ("1234567890.12", 12, 2, "1234567890.12"),
        ("123", 10, 0, "123"),
        ("-123", 10, 0, "-123"),
        ("99999999999999999999.123456789012", 32, 12, "99999999999999999999.123456789012"),
        ("-1.000000001", 20, 9, "-1.000000001"),
        ("0.5", 1, 1, "0.5"),
    ],
)
def test_decimal_keeps_column_scale(text: str, precision: int, scale: int, expected: str) -> None:
    raw = enc_decimal(text, precision, scale)
    assert len(raw) == decimal_size(precision, scale)
    assert dec(col(T.NEWDECIMAL, precision=precision, decimals=scale), raw) == expected


# ---------------------------------------------------------------- floats (Java toString)
@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1.0"), (100.0, "100.0"), (0.001, "0.001"), (1e-4, "1.0E-4"), (1234567.0, "1234567.0"),
     (1e7, "1.0E7"), (2.5e-5, "2.5E-5"), (-3.25, "-3.25"), (0.0, "0.0"), (-0.0, "-0.0"), (1e16, "1.0E16"),
     (123456.789, "123456.789"), (0.1, "0.1")],
)
def test_java_double(value: float, text: str) -> None:
    assert java_double(value) == text


@pytest.mark.parametrize(("value", "text"), [(1.1, "1.1"), (0.1, "0.1"), (3.4028235e38, "3.4028235E38"),
                                             (16777216.0, "1.6777216E7"), (-2.5, "-2.5"), (1e-10, "1.0E-10")])
def test_java_float_uses_float32_shortest_digits(value: float, text: str) -> None:
    f32 = struct.unpack("<f", struct.pack("<f", value))[0]
    assert java_float(f32) == text
    assert dec(col(T.FLOAT), struct.pack("<f", value)) == text


def test_double_column() -> None:
    assert dec(col(T.DOUBLE), struct.pack("<d", 2.5e-5)) == "2.5E-5"


# ---------------------------------------------------------------- dates and times
def test_datetime2_with_and_without_fraction() -> None:
    assert dec(col(T.DATETIME2, fsp=6), enc_datetime2(2024, 1, 2, 3, 4, 5, 678900, 6)) == "2024-01-02 03:04:05.678900"
    assert dec(col(T.DATETIME2, fsp=0), enc_datetime2(2024, 12, 31, 23, 59, 59, 0, 0)) == "2024-12-31 23:59:59"
    assert dec(col(T.DATETIME2, fsp=3), enc_datetime2(2000, 2, 29, 0, 0, 0, 120000, 3)) == "2000-02-29 00:00:00.120"
    assert dec(col(T.DATETIME2, fsp=1), enc_datetime2(1999, 5, 6, 7, 8, 9, 500000, 1)) == "1999-05-06 07:08:09.5"


def test_zero_and_partial_zero_dates_kept() -> None:
    zero = (0x8000000000).to_bytes(5, "big")
    assert dec(col(T.DATETIME2, fsp=0), zero) == "0000-00-00 00:00:00"
    assert dec(col(T.DATETIME2, fsp=2), zero + b"\x00") == "0000-00-00 00:00:00.00"
    assert dec(col(T.DATETIME2, fsp=0), enc_datetime2(2020, 0, 0, 0, 0, 0, 0, 0)) == "2020-00-00 00:00:00"
    assert dec(col(T.DATE), b"\x00\x00\x00") == "0000-00-00"
    assert dec(col(T.TIMESTAMP2, fsp=0), b"\x00\x00\x00\x00") == "0000-00-00 00:00:00"
    assert dec(col(T.DATETIME), b"\x00" * 8) == "0000-00-00 00:00:00"


def test_date() -> None:
    v = 2024 << 9 | 1 << 5 | 2
    assert dec(col(T.DATE), v.to_bytes(3, "little")) == "2024-01-02"


def test_timestamp_in_source_time_zone() -> None:
    sec = int(datetime.datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC).timestamp())
    assert dec(col(T.TIMESTAMP2, fsp=0), sec.to_bytes(4, "big")) == "2024-03-04 05:06:07"
    shanghai = zoneinfo.ZoneInfo("Asia/Shanghai")
    assert dec(col(T.TIMESTAMP2, fsp=0), sec.to_bytes(4, "big"), shanghai) == "2024-03-04 13:06:07"
    assert dec(col(T.TIMESTAMP2, fsp=6), sec.to_bytes(4, "big") + (12).to_bytes(3, "big")) == (
        "2024-03-04 05:06:07.000012")
    assert dec(col(T.TIMESTAMP), sec.to_bytes(4, "little")) == "2024-03-04 05:06:07"


@pytest.mark.parametrize(
    ("negative", "h", "mi", "s", "us", "fsp", "text"),
    [
        (False, 12, 34, 56, 0, 0, "12:34:56"),
        (True, 838, 59, 59, 0, 0, "-838:59:59"),
        (False, 100, 0, 1, 0, 0, "100:00:01"),
        (True, 838, 59, 59, 123000, 3, "-838:59:59.123"),
        (True, 0, 0, 0, 10000, 2, "-00:00:00.01"),
        (True, 0, 0, 1, 100000, 1, "-00:00:01.1"),
        (False, 1, 2, 3, 456789, 6, "01:02:03.456789"),
        (True, 1, 2, 3, 456789, 6, "-01:02:03.456789"),
        (True, 25, 0, 0, 500000, 4, "-25:00:00.5000"),
    ],
)
def test_time2_negative_and_beyond_24h(negative: bool, h: int, mi: int, s: int, us: int, fsp: int, text: str) -> None:
    assert dec(col(T.TIME2, fsp=fsp), enc_time2(negative, h, mi, s, us, fsp)) == text


def test_old_time_and_datetime_formats() -> None:
    assert dec(col(T.TIME), (-1234567).to_bytes(3, "little", signed=True)) == "-123:45:67"
    assert dec(col(T.DATETIME), (20240102030405).to_bytes(8, "little")) == "2024-01-02 03:04:05"


def test_year() -> None:
    assert dec(col(T.YEAR), bytes([124])) == "2024"
    assert dec(col(T.YEAR), b"\x00") == "0000"


# ---------------------------------------------------------------- enum, set, bit
def test_enum_label_and_set_labels() -> None:
    e = col(T.ENUM, pack_length=1, labels=("a", "b"))
    assert dec(e, b"\x02") == "b"
    assert dec(e, b"\x00") == ""  # the invalid-value index
    assert dec(col(T.ENUM, pack_length=2, labels=tuple(f"v{i}" for i in range(300))), (300).to_bytes(2, "little")) \
        == "v299"
    s = col(T.SET, pack_length=1, labels=("x", "y", "z"))
    assert dec(s, b"\x05") == "x,z"
    assert dec(s, b"\x00") == ""


def test_bit_as_number() -> None:
    assert dec(col(T.BIT, bits=10), (10).to_bytes(2, "big")) == "10"
    assert dec(col(T.BIT, bits=1), b"\x01") == "1"
    assert dec(col(T.BIT, bits=64), (2**64 - 1).to_bytes(8, "big")) == "18446744073709551615"


# ---------------------------------------------------------------- strings
def test_utf8mb4_string_with_emoji_is_passed_through() -> None:
    raw = "héllo 😀".encode()
    assert dec(col(T.VARCHAR, charset="utf8mb4", max_length=128), bytes([len(raw)]) + raw) == "héllo 😀"
    assert dec(col(T.VARCHAR, charset="utf8mb4", max_length=1024), len(raw).to_bytes(2, "little") + raw) == \
        "héllo 😀"


def test_binary_is_iso_8859_1_and_latin1_is_decoded() -> None:
    assert dec(col(T.BLOB, charset="binary", length_size=2), b"\x02\x00\xff\x00") == "ÿ\x00"
    assert dec(col(T.STRING, charset="binary", max_length=4), b"\x02a\xff") == "aÿ"
    assert dec(col(T.STRING, charset="latin1", max_length=4), b"\x01\xe9") == "é"
    assert dec(col(T.BLOB, charset="utf8mb4", length_size=4), b"\x03\x00\x00\x00abc") == "abc"


def test_invalid_utf8_is_replaced_not_propagated() -> None:
    assert dec(col(T.VARCHAR, charset="utf8mb4", max_length=16), b"\x02\xff\xfe") == "\ufffd\ufffd"


def test_unknown_type_is_fatal() -> None:
    with pytest.raises(FatalError):
        make_decoder(col(200), UTC)


# ---------------------------------------------------------------- sqlType / mysqlType
@pytest.mark.parametrize(
    ("c", "sql", "mysql"),
    [
        (col(T.TINY), -6, "tinyint(4)"),
        (col(T.TINY, unsigned=True), 5, "tinyint(3) unsigned"),
        (col(T.SHORT), 5, "smallint(6)"),
        (col(T.LONG), 4, "int(11)"),
        (col(T.LONG, unsigned=True), -5, "int(10) unsigned"),
        (col(T.LONGLONG), -5, "bigint(20)"),
        (col(T.LONGLONG, unsigned=True), 3, "bigint(20) unsigned"),
        (col(T.NEWDECIMAL, precision=12, decimals=2), 3, "decimal(12,2)"),
        (col(T.FLOAT), 7, "float"),
        (col(T.DOUBLE), 8, "double"),
        (col(T.BIT, bits=10), -7, "bit(10)"),
        (col(T.DATE), 91, "date"),
        (col(T.TIME2, fsp=3), 92, "time(3)"),
        (col(T.DATETIME2, fsp=6), 93, "datetime(6)"),
        (col(T.TIMESTAMP2), 93, "timestamp"),
        (col(T.YEAR), 12, "year(4)"),
        (col(T.STRING, charset="utf8mb4", max_length=16), 1, "char(4)"),
        (col(T.VARCHAR, charset="utf8mb4", max_length=256), 12, "varchar(64)"),
        (col(T.VARCHAR, charset="latin1", max_length=20), 12, "varchar(20)"),
        (col(T.BLOB, charset="utf8mb4", length_size=2), 2005, "text"),
        (col(T.BLOB, charset="utf8mb4", length_size=4), 2005, "longtext"),
        (col(T.BLOB, charset="binary", length_size=2), 2004, "blob"),
        (col(T.STRING, charset="binary", max_length=16), 2004, "binary(16)"),
        (col(T.VARCHAR, charset="binary", max_length=8), 2004, "varbinary(8)"),
        (col(T.JSON, length_size=4), 12, "json"),
        (col(T.ENUM, labels=("a", "it's")), 1, "enum('a','it''s')"),
        (col(T.SET, labels=("x", "y")), 12, "set('x','y')"),
    ],
)
def test_type_mapping(c: ColumnDef, sql: int, mysql: str) -> None:
    assert sql_type(c) == sql
    assert mysql_type(c) == mysql
