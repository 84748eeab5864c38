"""Deterministic rendering of Dml values for Redis: key parts, hash fields, JSON documents.

Rules (documented in docs/writers/redis.md):

- int/BIT → decimal digits; bool → "1"/"0" (JSON: true/false); float → Python's shortest repr;
- Decimal → its exact string (JSON: a string too, so no precision is lost);
- datetime → "yyyy-MM-dd HH:mm:ss[.ffffff]" (no "T", no zone; naive values stay naive);
  date → "yyyy-MM-dd"; timedelta (TIME) → "[-]HH:MM:SS[.ffffff]"; str (TIME, zero dates, JSON,
  ENUM, SET) → unchanged;
- bytes → base64 (``binary: base64``, the default) or the raw bytes (``binary: raw``, hash and
  string forms only; JSON cannot carry raw bytes);
- None → the hash field is absent / the JSON member is null / the string key is absent.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson

BASE64 = "base64"
RAW = "raw"
BINARY_MODES = (BASE64, RAW)


def _fmt_datetime(v: dt.datetime) -> str:
    # isoformat(" ") yields exactly "yyyy-MM-dd HH:mm:ss[.ffffff]" for naive values
    return v.isoformat(" ")


def _fmt_timedelta(v: dt.timedelta) -> str:
    sign = "-" if v < dt.timedelta(0) else ""
    v = abs(v)
    total = v.days * 86400 + v.seconds
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    frac = f".{v.microseconds:06d}" if v.microseconds else ""
    return f"{sign}{h:02d}:{m:02d}:{s:02d}{frac}"


def scalar_text(v: Any) -> str:
    """Render a non-None, non-bytes value as text (key parts, hash fields, string values)."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, dt.datetime):
        return _fmt_datetime(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return _fmt_timedelta(v)
    if isinstance(v, dt.time):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)).decode("ascii")
    return str(v)


def field_value(v: Any, binary: str = BASE64) -> str | bytes:
    """A hash field or string value (never called with None)."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v) if binary == RAW else base64.b64encode(bytes(v)).decode("ascii")
    return scalar_text(v)


def key_part(v: Any) -> str:
    """One placeholder of a key template. Bytes are base64 so keys stay printable."""
    return scalar_text(v)


def _json_default(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, dt.timedelta):
        return _fmt_timedelta(v)
    return str(v)


def _json_value(v: Any) -> Any:
    # orjson renders datetimes with "T"; pre-render them so JSON and hash agree
    if isinstance(v, dt.datetime):
        return _fmt_datetime(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, float) and v != v:  # NaN is not JSON
        return None
    return v


def json_document(fields: Sequence[str], row: Mapping[str, Any]) -> bytes:
    """A JSON object with the fields in mapping order; None → null. Deterministic bytes."""
    doc = {f: _json_value(row.get(f)) for f in fields}
    return orjson.dumps(doc, default=_json_default, option=orjson.OPT_NON_STR_KEYS)
