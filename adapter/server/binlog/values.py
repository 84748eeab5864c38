"""Row-image value decoders: binlog bytes → canal's value text (UTF-8 bytes), one closure per column.

Each decoder takes ``(buf, pos)`` and returns ``(value, next_pos)`` for a non-NULL value. The text
follows canal's RowsLogBuffer/LogEventConvert (zero dates kept, TIME beyond 24h, decimals at the
column scale, Java float/double text, BLOB/BINARY as ISO-8859-1), except where docs/parser.md says.
"""

from __future__ import annotations

import codecs
import datetime
import json
import struct
from collections.abc import Callable
from typing import Any

from pymysqlreplication.constants import FIELD_TYPE as T

from adapter.errors import FatalError
from adapter.server.binlog.tabledef import ColumnDef
from adapter.server.binlog.typemap import java_double, java_float

Decoder = Callable[[bytes, int], tuple[bytes, int]]

_ZERO_DATETIME = b"0000-00-00 00:00:00"
_UTF8 = frozenset({"utf8mb4", "utf8mb3", "utf8", "ascii"})
_PY_CODEC = {
    "latin1": "cp1252", "koi8r": "koi8_r", "koi8u": "koi8_u", "ucs2": "utf-16-be", "utf16": "utf-16-be",
    "utf16le": "utf-16-le", "utf32": "utf-32-be", "sjis": "shift_jis", "euckr": "euc_kr", "ujis": "euc_jp",
    "eucjpms": "euc_jp", "tis620": "tis_620", "hebrew": "iso8859_8", "greek": "iso8859_7",
    "latin2": "iso8859_2", "latin5": "iso8859_9", "latin7": "iso8859_13", "macce": "mac_latin2",
    "macroman": "mac_roman",
}
_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
_SIGNED_TINY = tuple(b"%d" % (i - 256 if i > 127 else i) for i in range(256))
_UNSIGNED_TINY = tuple(b"%d" % i for i in range(256))
_YEARS = tuple(b"0000" if i == 0 else b"%d" % (i + 1900) for i in range(256))
_FRAC_BYTES = (0, 1, 1, 2, 2, 3, 3)
_FRAC_SCALE = (1, 10000, 10000, 100, 100, 1, 1)


def _int_decoder(fmt: str) -> Decoder:
    unpack = struct.Struct(fmt).unpack_from
    size = struct.calcsize(fmt)

    def dec(buf: bytes, pos: int) -> tuple[bytes, int]:
        return b"%d" % unpack(buf, pos)[0], pos + size

    return dec


def _int24(signed: bool) -> Decoder:
    def dec(buf: bytes, pos: int) -> tuple[bytes, int]:
        return b"%d" % int.from_bytes(buf[pos : pos + 3], "little", signed=signed), pos + 3

    return dec


def _tiny(table: tuple[bytes, ...]) -> Decoder:
    def dec(buf: bytes, pos: int) -> tuple[bytes, int]:
        return table[buf[pos]], pos + 1

    return dec


def _float(size: int, fmt: str, text: Callable[[float], str]) -> Decoder:
    unpack = struct.Struct(fmt).unpack_from

    def dec(buf: bytes, pos: int) -> tuple[bytes, int]:
        return text(unpack(buf, pos)[0]).encode(), pos + size

    return dec


def decimal_size(precision: int, scale: int) -> int:
    intg0, intg0x = divmod(precision - scale, 9)
    frac0, frac0x = divmod(scale, 9)
    return intg0 * 4 + _DIG2BYTES[intg0x] + frac0 * 4 + _DIG2BYTES[frac0x]


def _decimal(precision: int, scale: int) -> Decoder:
    """MySQL's packed DECIMAL: base-10^9 groups, sign in the top bit, negatives bit-inverted."""
    intg0, intg0x = divmod(precision - scale, 9)
    frac0, frac0x = divmod(scale, 9)
    size = decimal_size(precision, scale)
    sign_bit = 1 << (size * 8 - 1)
    mask = (1 << (size * 8)) - 1
    tail_bits = _DIG2BYTES[frac0x] * 8
    frac_bits = frac0 * 32 + tail_bits
    int_groups = [_DIG2BYTES[intg0x] * 8] if intg0x else []
    int_groups += [32] * intg0

    def dec(buf: bytes, pos: int) -> tuple[bytes, int]:
        negative = not buf[pos] & 0x80
        v = int.from_bytes(buf[pos : pos + size], "big") ^ sign_bit
        if negative:
            v ^= mask
        frac = v & ((1 << frac_bits) - 1)
        v >>= frac_bits
        ipart = 0
        shift = sum(int_groups)
        for bits in int_groups:
            shift -= bits
            ipart = ipart * 1_000_000_000 + ((v >> shift) & ((1 << bits) - 1))
        text = b"%d" % ipart
        if scale:
            parts = []
            shift = frac_bits
            for _ in range(frac0):
                shift -= 32
                parts.append(b"%09d" % ((frac >> shift) & 0xFFFFFFFF))
            if frac0x:
                parts.append(b"%0*d" % (frac0x, frac & ((1 << tail_bits) - 1)))
            text += b"." + b"".join(parts)
            if negative and (ipart or frac):
                text = b"-" + text
        elif negative and ipart:
            text = b"-" + text
        return text, pos + size

    return dec


def _frac_reader(fsp: int) -> tuple[int, int]:
    if not 0 <= fsp <= 6:
        raise FatalError(f"unsupported fractional seconds precision {fsp}")
    return _FRAC_BYTES[fsp], _FRAC_SCALE[fsp]


def _frac_text(fsp: int, micros: int) -> bytes:
    return b"." + (b"%06d" % micros)[:fsp] if fsp else b""


def _datetime2(fsp: int) -> Decoder:
    nfrac, scale = _frac_reader(fsp)

    def dec(buf: bytes, pos: int) -> tuple[bytes, int]:
        v = int.from_bytes(buf[pos : pos + 5], "big") - 0x8000000000
        end = pos + 5 + nfrac
        if v == 0:
            text = _ZERO_DATETIME
        else:
            ymd = v >> 17
            ym = ymd >> 5
            hms = v & 0x1FFFF
            text = b"%04d-%02d-%02d %02d:%02d:%02d" % (ym // 13, ym % 13, ymd & 31, hms >> 12, (hms >> 6) & 63,
                                                        hms & 63)
        if nfrac:
            text += _frac_text(fsp, int.from_bytes(buf[pos + 5 : end], "big") * scale)
        return text, end

    return dec


def _format_epoch(seconds: int, tz: datetime.tzinfo) -> bytes:
    d = datetime.datetime.fromtimestamp(seconds, tz)
    return b"%04d-%02d-%02d %02d:%02d:%02d" % (d.year, d.month, d.day, d.hour, d.minute, d.second)


def _timestamp2(fsp: int, tz: datetime.tzinfo) -> Decoder:
    nfrac, scale = _frac_reader(fsp)

    def dec(buf: bytes, pos: int) -> tuple[bytes, int]:
        sec = int.from_bytes(buf[pos : pos + 4], "big")
        end = pos + 4 + nfrac
        text = _ZERO_DATETIME if sec == 0 else _format_epoch(sec, tz)
        if nfrac:
            text += _frac_text(fsp, int.from_bytes(buf[pos + 4 : end], "big") * scale)
        return text, end

    return dec


def _time_text(negative: bool, hms: int, fsp: int, micros: int) -> bytes:
    hour = (hms >> 12) % 1024
    text = b"%s%02d:%02d:%02d" % (b"-" if negative else b"", hour, (hms >> 6) & 63, hms & 63)
    return text + _frac_text(fsp, micros)


def _time2(fsp: int) -> Decoder:
    nfrac, _ = _frac_reader(fsp)

    def dec(buf: bytes, pos: int) -> tuple[bytes, int]:
        if fsp >= 5:
            packed = int.from_bytes(buf[pos : pos + 6], "big") - 0x800000000000
            end = pos + 6
        else:
            intpart = int.from_bytes(buf[pos : pos + 3], "big") - 0x800000
            end = pos + 3 + nfrac
            frac = int.from_bytes(buf[pos + 3 : end], "big") if nfrac else 0
            if intpart < 0 and frac:
                # negative values keep the fraction in reverse order (MySQL's binary-sortable form)
                intpart += 1
                frac -= 0x100 if nfrac == 1 else 0x10000
            packed = (intpart << 24) + frac * (10000 if nfrac == 1 else 100)
        negative = packed < 0
        packed = -packed if negative else packed
        return _time_text(negative, packed >> 24, fsp, packed & 0xFFFFFF), end

    return dec


def _date(buf: bytes, pos: int) -> tuple[bytes, int]:
    v = int.from_bytes(buf[pos : pos + 3], "little")
    if v == 0:
        return b"0000-00-00", pos + 3
    return b"%04d-%02d-%02d" % (v >> 9, (v >> 5) & 15, v & 31), pos + 3


def _datetime_old(buf: bytes, pos: int) -> tuple[bytes, int]:
    v = int.from_bytes(buf[pos : pos + 8], "little")
    if v == 0:
        return _ZERO_DATETIME, pos + 8
    d, t = divmod(v, 1_000_000)
    return b"%04d-%02d-%02d %02d:%02d:%02d" % (d // 10000, d % 10000 // 100, d % 100, t // 10000, t % 10000 // 100,
                                                t % 100), pos + 8


def _timestamp_old(tz: datetime.tzinfo) -> Decoder:
    def dec(buf: bytes, pos: int) -> tuple[bytes, int]:
        sec = int.from_bytes(buf[pos : pos + 4], "little")
        return (_ZERO_DATETIME if sec == 0 else _format_epoch(sec, tz)), pos + 4

    return dec


def _time_old(buf: bytes, pos: int) -> tuple[bytes, int]:
    v = int.from_bytes(buf[pos : pos + 3], "little", signed=True)
    u = abs(v)
    h, rest = divmod(u, 10000)
    return b"%s%02d:%02d:%02d" % (b"-" if v < 0 else b"", h, rest // 100, rest % 100), pos + 3


def _year(buf: bytes, pos: int) -> tuple[bytes, int]:
    return _YEARS[buf[pos]], pos + 1


def _enum(col: ColumnDef) -> Decoder:
    labels = (b"", *(x.encode() for x in col.labels))
    size = col.pack_length or 1

    def dec(buf: bytes, pos: int) -> tuple[bytes, int]:
        i = int.from_bytes(buf[pos : pos + size], "little")
        return (labels[i] if i < len(labels) else b"%d" % i), pos + size

    return dec


def _set(col: ColumnDef) -> Decoder:
    labels = tuple(x.encode() for x in col.labels)
    size = col.pack_length or 1

    def dec(buf: bytes, pos: int) -> tuple[bytes, int]:
        mask = int.from_bytes(buf[pos : pos + size], "little")
        return b",".join(lab for i, lab in enumerate(labels) if mask >> i & 1), pos + size

    return dec


def _bit(col: ColumnDef) -> Decoder:
    size = (col.bits + 7) // 8

    def dec(buf: bytes, pos: int) -> tuple[bytes, int]:
        return b"%d" % int.from_bytes(buf[pos : pos + size], "big"), pos + size

    return dec


def text_converter(charset: str) -> Callable[[bytes], bytes]:
    """Raw column bytes in ``charset`` → UTF-8 bytes (binary → ISO-8859-1, as canal)."""
    if charset in _UTF8:

        def utf8(raw: bytes) -> bytes:
            if raw.isascii():
                return raw
            try:
                raw.decode("utf-8")
                return raw
            except UnicodeDecodeError:
                return raw.decode("utf-8", "replace").encode()

        return utf8
    if charset == "binary":
        return lambda raw: raw if raw.isascii() else raw.decode("latin-1").encode()
    name = _PY_CODEC.get(charset, charset)
    try:
        codecs.lookup(name)
    except LookupError:
        name = "latin-1"
    return lambda raw: raw if raw.isascii() and name != "utf-16-be" else raw.decode(name, "replace").encode()


def _lp_string(prefix: int, convert: Callable[[bytes], bytes]) -> Decoder:
    def dec(buf: bytes, pos: int) -> tuple[bytes, int]:
        start = pos + prefix
        end = start + int.from_bytes(buf[pos:start], "little")
        return convert(buf[start:end]), end

    return dec


def _json_text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_json_text(k): _json_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_text(v) for v in value]
    return value


def _mysql_json(prefix: int) -> Decoder:
    from pymysqlreplication.json_binary import parse_json

    def dec(buf: bytes, pos: int) -> tuple[bytes, int]:
        start = pos + prefix
        end = start + int.from_bytes(buf[pos:start], "little")
        if end == start:
            return b"", end
        value = parse_json(buf[start], buf[start + 1 : end])
        return json.dumps(_json_text(value), ensure_ascii=False).encode(), end

    return dec


def make_decoder(col: ColumnDef, tz: datetime.tzinfo) -> Decoder:
    """The decoder for one column's non-NULL values. Raises FatalError for unknown types."""
    t = col.type
    u = col.unsigned
    simple: dict[int, Decoder] = {
        T.DATE: _date, T.NEWDATE: _date, T.YEAR: _year, T.DATETIME: _datetime_old, T.TIME: _time_old,
    }
    if t in simple:
        return simple[t]
    if t == T.TINY:
        return _tiny(_UNSIGNED_TINY if u else _SIGNED_TINY)
    if t == T.SHORT:
        return _int_decoder("<H" if u else "<h")
    if t == T.INT24:
        return _int24(not u)
    if t == T.LONG:
        return _int_decoder("<I" if u else "<i")
    if t == T.LONGLONG:
        return _int_decoder("<Q" if u else "<q")
    if t == T.FLOAT:
        return _float(4, "<f", java_float)
    if t == T.DOUBLE:
        return _float(8, "<d", java_double)
    if t == T.NEWDECIMAL:
        return _decimal(col.precision, col.decimals)
    if t == T.DATETIME2:
        return _datetime2(col.fsp)
    if t == T.TIMESTAMP2:
        return _timestamp2(col.fsp, tz)
    if t == T.TIMESTAMP:
        return _timestamp_old(tz)
    if t == T.TIME2:
        return _time2(col.fsp)
    if t == T.ENUM:
        return _enum(col)
    if t == T.SET:
        return _set(col)
    if t == T.BIT:
        return _bit(col)
    if t in (T.VARCHAR, T.VAR_STRING, T.STRING):
        return _lp_string(1 if col.max_length < 256 else 2, text_converter(col.charset))
    if t == T.BLOB:
        return _lp_string(col.length_size, text_converter(col.charset))
    if t == T.GEOMETRY:
        return _lp_string(col.length_size, text_converter("binary"))
    if t == T.JSON:
        return _mysql_json(col.length_size)
    raise FatalError(f"column {col.name!r}: unsupported MySQL field type {t}")
