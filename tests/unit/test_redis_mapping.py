"""Redis writer: mapping file validation (every refusal names the file, the key and the reason)."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.errors import ConfigError
from adapter.writers.base import DataSource, MappingHeader, WriterContext
from adapter.writers.redis import RedisWriter
from adapter.writers.redis.mapping import parse_key_template

CTX = WriterContext(data_sources={"ds": DataSource("ds", "mysql+pymysql://u:p@127.0.0.1:3306/shop", "shop")})
FILE = "/conf/redis/user.yml"


def header(ds: str | None = "ds") -> MappingHeader:
    return MappingHeader("user.yml", FILE, ds, "example", None, "redis1")


def parse(body: dict[str, Any], ds: str | None = "ds") -> Any:
    return RedisWriter.parse_mapping(header(ds), {"redisMapping": body}, CTX)


BASE = {"sql": "select a.id, a.name, a.email from user a", "key": "user:{id}"}


def test_minimal_hash_mapping() -> None:
    m = parse(BASE)
    assert (m.value_form, m.value_fields, m.ttl, m.prefix, m.commit_batch, m.binary) == (
        "hash", ("id", "name", "email"), 0, "", 1000, "base64")  # fmt: skip
    assert m.direct and not m.filtered
    assert m.source_tables() == frozenset({("shop", "user")})
    assert m.render_key({"id": 7}) == "user:7"
    assert m.render_key({"id": None}) is None
    assert m.key_pattern() == "user:*"


def test_full_mapping_with_join_prefix_ttl_skips() -> None:
    m = parse({
        "sql": "select a.id, a.tenant, concat(a.first, ' ', a.last) as full_name, b.name as role "
               "from user a left join role b on b.id = a.role_id",
        "key": "{{{tenant}}}:u:{id}", "prefix": "app:", "type": "json", "ttl": 60, "skips": ["tenant"],
        "etlCondition": "where a.id > {}", "commitBatch": 50,
    })  # fmt: skip
    assert m.value_fields == ("id", "full_name", "role")
    assert m.render_key({"id": 1, "tenant": "acme"}) == "app:{acme}:u:1"
    assert m.key_pattern() == "app:{*}:u:*"
    assert not m.direct
    assert m.source_tables() == frozenset({("shop", "user"), ("shop", "role")})
    assert (m.ttl, m.commit_batch, m.etl_condition) == (60, 50, "where a.id > {}")


def test_string_form_picks_the_only_non_key_field() -> None:
    m = parse({"sql": "select a.id, a.name from user a", "key": "name:{id}", "type": "string"})
    assert m.value_fields == ("name",)
    m = parse({"sql": "select a.id, a.email from user a", "key": "email:{email}", "type": "string", "value": "id"})
    assert m.value_fields == ("id",)


def test_glob_characters_in_literals_are_escaped() -> None:
    assert parse_key_template("a*b[{id}]?", FILE).pattern("p?") == "p\\?a\\*b\\[*\\]\\?"


@pytest.mark.parametrize(
    "body, key, match",
    [
        ({"key": "user:{id}"}, "redisMapping.sql", "is required"),
        ({"sql": BASE["sql"]}, "redisMapping.key", "is required"),
        ({**BASE, "key": "user:{uid}"}, "redisMapping.key", "'uid' is not a field of the mapping SQL"),
        ({**BASE, "key": "user"}, "redisMapping.key", "no {field} placeholder"),
        ({**BASE, "key": "user:{id!r}"}, "redisMapping.key", "no format spec"),
        ({**BASE, "key": "user:{id"}, "redisMapping.key", "bad key template"),
        ({**BASE, "type": "list"}, "redisMapping.type", "unknown value form 'list'"),
        ({**BASE, "type": "string"}, "redisMapping.value", "exactly one field"),
        ({**BASE, "type": "string", "value": "name"}, "redisMapping.sql", r"fields \['email'\] would be computed"),
        ({**BASE, "value": "name"}, "redisMapping.value", "only applies to type: string"),
        ({**BASE, "ttl": -1}, "redisMapping.ttl", "must be >= 0"),
        ({**BASE, "ttl": "soon"}, "redisMapping.ttl", "expected an integer"),
        ({**BASE, "commitBatch": 0}, "redisMapping.commitBatch", "must be >= 1"),
        ({**BASE, "binary": "hex"}, "redisMapping.binary", "unknown binary mode"),
        ({**BASE, "type": "json", "binary": "raw"}, "redisMapping.binary", "cannot be used with type: json"),
        ({**BASE, "skips": ["id", "name", "email"]}, "redisMapping.skips", "value would be empty"),
        ({**BASE, "skips": ["nope"]}, "redisMapping.skips", "'nope' is not a field"),
        ({**BASE, "tll": 5}, "redisMapping", r"unknown keys \['tll'\]"),
        ({**BASE, "sql": "select a.id from user a join role b on b.id = a.role_id"}, "redisMapping.sql",
         "only LEFT JOIN"),
        ({"sql": "select a.id, b.name from user a left join role b on b.id = a.role_id", "key": "r:{name}"},
         "redisMapping.key", "main-table"),
        ({"sql": "select a.id, count(*) as n from user a group by a.id", "key": "n:{n}"}, "redisMapping.key",
         "aggregate"),
    ],
)
def test_bad_mappings_are_refused(body: dict[str, Any], key: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as e:
        parse(body)
    assert e.value.source == FILE and e.value.key == key
    assert FILE in str(e.value)


def test_missing_section_and_unknown_database() -> None:
    with pytest.raises(ConfigError, match="'redisMapping' section is required"):
        RedisWriter.parse_mapping(header(), {"esMapping": {}}, CTX)
    with pytest.raises(ConfigError, match="cannot tell the database"):
        parse(BASE, ds=None)
    m = parse({**BASE, "sql": "select a.id from other.user a"}, ds=None)
    assert m.source_tables() == frozenset({("other", "user")})


def test_example_mappings_load() -> None:
    import pathlib

    import yaml

    files = sorted((pathlib.Path(__file__).parents[2] / "mappings" / "redis").glob("*.yml"))
    assert files
    ctx = WriterContext(data_sources={"defaultDS": DataSource("defaultDS", "mysql+pymysql://u:p@h/mytest", "mytest")})
    for f in files:
        raw = yaml.safe_load(f.read_text())
        h = MappingHeader(f.name, str(f), raw.pop("dataSourceKey"), raw.pop("destination"), raw.pop("groupId"),
                          raw.pop("outerAdapterKey", None))
        m = RedisWriter.parse_mapping(h, raw, ctx)
        assert ("mytest", "user") in m.source_tables()
