"""Value conversion by index mapping type, objFields, time zones, zero dates."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from adapter.writers.es.config import ObjField, parse_timezone
from adapter.writers.es.convert import Converter, field_types

C8 = Converter(parse_timezone("+08:00"))


@pytest.mark.parametrize(
    ("value", "es_type", "expected"),
    [
        (Decimal("12"), "long", 12),
        ("42", "integer", 42),
        (b"\x01\x00", "long", 256),
        (Decimal("1.25"), "double", 1.25),
        ("2.5", "scaled_float", 2.5),
        (1, "boolean", True),
        (0, "boolean", False),
        (b"\x01", "boolean", True),
        ("true", "boolean", True),
        (dt.datetime(2020, 1, 2, 3, 4, 5), "date", "2020-01-02T03:04:05+08:00"),
        (dt.datetime(2020, 1, 2, 3, 4, 5, 120000), "date", "2020-01-02T03:04:05.120+08:00"),
        (dt.datetime(2020, 1, 2, 0, 0, tzinfo=dt.timezone.utc), "date", "2020-01-02T08:00:00+08:00"),
        (dt.date(2020, 1, 2), "date", "2020-01-02"),
        ("0000-00-00 00:00:00", "date", None),
        ("0000-00-00", None, None),
        (b"\x00\xff", "binary", "AP8="),
        ("31.2,121.5", "geo_point", {"lat": 31.2, "lon": 121.5}),
        ('{"a": [1, 2]}', "object", {"a": [1, 2]}),
        ('{"a": 1}', "nested", {"a": 1}),
        ("x", "keyword", "x"),
        (5, "text", 5),
        (None, "long", None),
        ({"name": "order", "parent": "1"}, "join", {"name": "order", "parent": "1"}),
        ("abc", "long", "abc"),  # unconvertible: left for Elasticsearch to report
    ],
)
def test_by_type(value: Any, es_type: str | None, expected: Any) -> None:
    assert C8.value(value, es_type) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1.50"), 1.5),
        (dt.datetime(2020, 1, 2, 3, 4, 5), "2020-01-02T03:04:05+08:00"),
        (dt.timedelta(hours=25, minutes=1), "25:01:00"),
        (b"caf\xc3\xa9", "café"),
        (b"\xff\xfe", "//4="),
        ("12:30:00", "12:30:00"),
        (7, 7),
    ],
)
def test_unmapped_fields(value: Any, expected: Any) -> None:
    assert C8.value(value, None) == expected


def test_obj_fields_take_precedence() -> None:
    arr = ObjField("array", ";")
    assert C8.value("a;b;;c", "keyword", arr) == ["a", "b", "", "c"]
    assert C8.value("a|b", None, ObjField("array", "|")) == ["a", "b"]  # literal, not a regex
    assert C8.value("", None, arr) == []
    assert C8.value('{"k": "v"}', "keyword", ObjField("json")) == {"k": "v"}
    assert C8.value("[1, 2]", None, ObjField("json")) == [1, 2]
    assert C8.value("not json", None, ObjField("json")) is None


def test_timezone_setting_changes_only_the_offset() -> None:
    utc = Converter(parse_timezone("UTC"))
    assert utc.value(dt.datetime(2020, 1, 2, 3, 4, 5), "date") == "2020-01-02T03:04:05+00:00"


def test_field_types_typed_and_typeless() -> None:
    typeless = {"i": {"mappings": {"properties": {"a": {"type": "long"}, "o": {"properties": {"x": {}}}}}}}
    typed = {"i": {"mappings": {"_doc": {"properties": {"a": {"type": "date"}}}}}}
    assert field_types(typeless) == {"a": "long", "o": "object"}
    assert field_types(typed) == {"a": "date"}
    assert field_types({"i": {"mappings": {}}}) == {}
