"""Redis writer: value rendering and key operations → command tuples (pure, no server)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import orjson

from adapter.writers.redis import values as V
from adapter.writers.redis.commands import HASH, JSON, PATCH_SCRIPT, STRING, Delete, Patch, Put, build


@dataclass(frozen=True)
class Spec:
    value_form: str = HASH
    value_fields: tuple[str, ...] = ("id", "name", "price")
    ttl: int = 0
    binary: str = V.BASE64


def test_scalar_text_rendering() -> None:
    assert V.scalar_text(5) == "5"
    assert V.scalar_text(2**64 - 1) == "18446744073709551615"
    assert V.scalar_text(Decimal("10.50")) == "10.50"
    assert V.scalar_text(1.5) == "1.5"
    assert V.scalar_text(dt.datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02 03:04:05"
    assert V.scalar_text(dt.datetime(2024, 1, 2, 3, 4, 5, 120)) == "2024-01-02 03:04:05.000120"
    assert V.scalar_text(dt.date(2024, 1, 2)) == "2024-01-02"
    assert V.scalar_text(dt.timedelta(hours=-1, minutes=-30)) == "-01:30:00"
    assert V.scalar_text(dt.timedelta(hours=838, microseconds=5)) == "838:00:00.000005"
    assert V.scalar_text("0000-00-00 00:00:00") == "0000-00-00 00:00:00"
    assert V.scalar_text(True) == "1"
    assert V.field_value(b"\x00\xff") == "AP8="
    assert V.field_value(b"\x00\xff", V.RAW) == b"\x00\xff"


def test_json_document_is_deterministic_and_typed() -> None:
    row = {"b": None, "a": Decimal("1.10"), "t": dt.datetime(2024, 5, 6, 7, 8, 9), "raw": b"hi", "n": 3, "f": 0.5}
    doc = V.json_document(("n", "a", "t", "raw", "b", "f"), row)
    assert doc == b'{"n":3,"a":"1.10","t":"2024-05-06 07:08:09","raw":"aGk=","b":null,"f":0.5}'
    assert doc == V.json_document(("n", "a", "t", "raw", "b", "f"), dict(reversed(list(row.items()))))


def test_put_hash_replaces_whole_key_and_skips_nulls() -> None:
    cmds = build(Spec(ttl=60), [Put("u:1", {"id": 1, "name": None, "price": Decimal("2.5")})])
    assert cmds == [("DEL", "u:1"), ("HSET", "u:1", "id", "1", "price", "2.5"), ("EXPIRE", "u:1", 60)]


def test_put_hash_all_null_is_a_delete() -> None:
    assert build(Spec(), [Put("u:1", {})]) == [("DEL", "u:1")]


def test_put_json_and_string() -> None:
    spec = Spec(value_form=JSON, value_fields=("id", "name"), ttl=5)
    assert build(spec, [Put("k", {"id": 1, "name": None})]) == [("SET", "k", b'{"id":1,"name":null}', "EX", 5)]
    spec = Spec(value_form=STRING, value_fields=("name",))
    assert build(spec, [Put("k", {"name": "x", "id": 1})]) == [("SET", "k", "x")]
    assert build(spec, [Put("k", {"name": None})]) == [("DEL", "k")]


def test_patch_hash_sends_changed_removed_and_full_fallback() -> None:
    op = Patch("u:1", {"name": None, "price": Decimal("3")}, full={"id": 1, "price": Decimal("3")})
    [cmd] = build(Spec(ttl=9), [op])
    assert cmd[:4] == ("EVAL", PATCH_SCRIPT, 1, "u:1")
    assert cmd[4:] == (9, 1, 1, 2, "price", "3", "name", "id", "1", "price", "3")


def test_patch_ignores_fields_outside_the_value() -> None:
    assert build(Spec(), [Patch("u:1", {"other": 1})]) == []


def test_patch_of_json_rewrites_whole_or_nothing() -> None:
    spec = Spec(value_form=JSON, value_fields=("id",))
    assert build(spec, [Patch("k", {"id": 2}, full={"id": 2})]) == [("SET", "k", b'{"id":2}')]
    assert build(spec, [Patch("k", {"id": 2})]) == []


def test_order_is_kept() -> None:
    cmds = build(Spec(), [Delete("a"), Put("b", {"id": 1}), Delete("b")])
    assert [c[0] for c in cmds] == ["DEL", "DEL", "HSET", "DEL"]
    assert orjson.dumps([c[1] for c in cmds]) == b'["a","b","b","b"]'
