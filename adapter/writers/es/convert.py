"""Source values → JSON values by the index mapping's field types (and ``objFields``)."""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from adapter.writers.es.config import ObjField

log = logging.getLogger(__name__)

INTEGER_TYPES = frozenset({"long", "integer", "short", "byte", "unsigned_long"})
FLOAT_TYPES = frozenset({"double", "float", "half_float", "scaled_float"})
DATE_TYPES = frozenset({"date", "date_nanos"})
OBJECT_TYPES = frozenset({"object", "nested", "flattened"})


def field_types(mapping_response: Mapping[str, Any]) -> dict[str, str]:
    """Top-level field → type from a ``GET /<index>/_mapping`` answer (typed es6 or typeless 7/8 shape).

    A field with sub-``properties`` counts as ``object``; several indices (an alias) are merged.
    """
    out: dict[str, str] = {}
    for body in mapping_response.values():
        mappings = (body or {}).get("mappings") or {}
        if "properties" not in mappings:  # es6: {type_name: {properties: ...}}
            typed = [v for v in mappings.values() if isinstance(v, Mapping) and "properties" in v]
            mappings = typed[0] if typed else {}
        for name, spec in (mappings.get("properties") or {}).items():
            if isinstance(spec, Mapping):
                out.setdefault(name, str(spec.get("type") or "object"))
    return out


def is_zero_date(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("0000-00-00")


class Converter:
    """Converts one value for one field; ``tz`` is the zone of naive DATETIME/TIMESTAMP values."""

    def __init__(self, tz: dt.tzinfo) -> None:
        self.tz = tz

    def doc(self, doc: Mapping[str, Any], types: Mapping[str, str],
            obj_fields: Mapping[str, ObjField]) -> dict[str, Any]:
        return {k: self.value(v, types.get(k), obj_fields.get(k), k) for k, v in doc.items()}

    def value(self, v: Any, es_type: str | None, obj: ObjField | None = None, name: str = "") -> Any:
        if v is None or is_zero_date(v):
            return None
        if obj is not None:
            return self._obj(v, obj, name)
        if es_type == "join":
            return v
        try:
            if es_type in INTEGER_TYPES:
                return self._int(v)
            if es_type in FLOAT_TYPES:
                return float(self._number(v))
            if es_type == "boolean":
                return self._bool(v)
            if es_type in DATE_TYPES:
                return self.date(v)
            if es_type == "binary":
                raw = v if isinstance(v, (bytes, bytearray)) else str(v).encode()
                return base64.b64encode(bytes(raw)).decode("ascii")
            if es_type == "geo_point" and isinstance(v, str) and "," in v:
                lat, lon = (p.strip() for p in v.split(",", 1))
                return {"lat": float(lat), "lon": float(lon)}
            if es_type in OBJECT_TYPES and isinstance(v, (str, bytes)):
                return self._json(v, name)
        except (ValueError, TypeError, InvalidOperation):
            pass  # leave it to Elasticsearch, which reports the field in its error
        return self.generic(v)

    def generic(self, v: Any) -> Any:
        """A JSON form for fields the index mapping does not type (dynamic mapping)."""
        if isinstance(v, (bool, int, float, str)) or v is None:
            return v
        if isinstance(v, Decimal):
            return float(v)
        if isinstance(v, (dt.datetime, dt.date)):
            return self.date(v)
        if isinstance(v, dt.timedelta):
            total = int(v.total_seconds())
            h, rem = divmod(abs(total), 3600)
            return f"{'-' if total < 0 else ''}{h:02d}:{rem // 60:02d}:{rem % 60:02d}"
        if isinstance(v, (bytes, bytearray, memoryview)):
            raw = bytes(v)
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                return base64.b64encode(raw).decode("ascii")
        if isinstance(v, Mapping):
            return {str(k): self.generic(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [self.generic(x) for x in v]
        return str(v)

    def date(self, v: Any) -> Any:
        """DATE → ``yyyy-MM-dd``; DATETIME → ISO-8601 with the zone's offset (naive = in ``tz``)."""
        if isinstance(v, dt.datetime):
            aware = v.replace(tzinfo=self.tz) if v.tzinfo is None else v.astimezone(self.tz)
            return aware.isoformat(timespec="milliseconds" if v.microsecond else "seconds")
        if isinstance(v, dt.date):
            return v.isoformat()
        return v if not isinstance(v, (bytes, bytearray)) else bytes(v).decode("utf-8", "replace")

    @staticmethod
    def _number(v: Any) -> Any:
        if isinstance(v, (bytes, bytearray)):
            return int.from_bytes(v, "big")  # BIT(n) read back from the source database
        if isinstance(v, str):
            return Decimal(v.strip())
        return v

    def _int(self, v: Any) -> int:
        n = self._number(v)
        if isinstance(n, (Decimal, float)) and n != int(n):
            raise ValueError("not an integer")
        return int(n)

    def _bool(self, v: Any) -> bool:
        if isinstance(v, bool):
            return v
        if isinstance(v, str):
            s = v.strip().lower()
            if s in ("true", "false"):
                return s == "true"
        return bool(self._number(v) != 0)

    def _json(self, v: Any, name: str) -> Any:
        try:
            return orjson.loads(v)
        except orjson.JSONDecodeError:
            log.warning("field is not valid JSON; written as null", extra={"field": name})
            return None

    def _obj(self, v: Any, obj: ObjField, name: str) -> Any:
        if obj.kind == "json":
            return self._json(v, name) if isinstance(v, (str, bytes)) else self.generic(v)
        if isinstance(v, (bytes, bytearray)):
            v = bytes(v).decode("utf-8", "replace")
        if isinstance(v, str):
            # canal splits on a Java regex; a literal separator avoids its '|' and '.' surprises.
            return [p for p in v.split(obj.separator)] if v != "" else []
        if isinstance(v, (list, tuple)):
            return [self.generic(x) for x in v]
        return [self.generic(v)]
