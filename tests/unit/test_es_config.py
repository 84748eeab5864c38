"""esMapping parsing and ES writer properties: compat files load, bad input names file and key."""

from __future__ import annotations

import datetime as dt
import pathlib
from typing import Any

import pytest
import services
import yaml

from adapter.errors import ConfigError
from adapter.writers.base import DataSource, MappingHeader, WriterConfig, WriterContext
from adapter.writers.es import Es6Writer, Es7Writer, parse_es_mapping, parse_settings
from adapter.writers.es.config import ObjField, parse_timezone

COMPAT = pathlib.Path(services.COMPAT) / "adapter-conf"
CTX = WriterContext(data_sources={"defaultDS": DataSource("defaultDS", "mysql+pymysql://u@h/mytest", "mytest")})


def header(name: str = "m.yml", ds: str | None = "defaultDS") -> MappingHeader:
    return MappingHeader(name, f"/conf/es7/{name}", ds, "example", "g1", None)


def parse(body: dict[str, Any], writer: str = "es7", ds: str | None = "defaultDS") -> Any:
    return parse_es_mapping(header(ds=ds), {"esMapping": body}, CTX, writer)


@pytest.mark.skipif(not COMPAT.exists(), reason="compat files not present")
@pytest.mark.parametrize("path", sorted(COMPAT.glob("es*/*.yml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_compat_files_load_unchanged(path: pathlib.Path) -> None:
    raw = yaml.safe_load(path.read_text())
    cls = Es6Writer if path.parent.name == "es6" else Es7Writer
    body = {k: v for k, v in raw.items() if k not in ("dataSourceKey", "destination", "groupId", "outerAdapterKey")}
    m = cls.parse_mapping(MappingHeader(path.name, str(path), raw["dataSourceKey"], raw["destination"],
                                        raw.get("groupId"), None), body, CTX)
    assert m.source_tables()
    assert all(db == "mytest" for db, _ in m.source_tables())


def test_biz_order_relations_skips_and_identity() -> None:
    m = parse({"_index": "customer", "_id": "_id",
               "relations": {"customer_order": {"name": "order", "parent": "customer_id"}},
               "sql": "select concat('oid_', t.id) as _id, t.customer_id, t.id as order_id from biz_order t",
               "skips": ["customer_id"], "etlCondition": "where t.c_time>={}", "commitBatch": 3000})
    assert m.relation.join_field == "customer_order" and m.relation.parent == "customer_id"
    assert m.skips == {"customer_id"} and m.commit_batch == 3000
    assert [f.name for f in m.identity_fields] == ["_id", "customer_id"]
    assert m.direct  # concat of a literal and a column is evaluated in Python


def test_direct_vs_requery() -> None:
    assert parse({"_index": "i", "_id": "_id", "sql": "select a.id as _id, a.name from user a"}).direct
    assert not parse({"_index": "i", "_id": "_id",
                      "sql": "select a.id as _id, b.n from user a left join r b on b.id = a.rid"}).direct
    assert not parse({"_index": "i", "_id": "_id", "sql": "select a.id as _id, date_format(a.t, '%Y') y "
                                                          "from user a"}).direct


def test_obj_fields() -> None:
    m = parse({"_index": "i", "_id": "_id", "sql": "select a.id as _id, a.tags, a.o, a.j from user a",
               "objFields": {"tags": "array:;", "o": "object", "j": "json"}})
    assert m.obj_fields == {"tags": ObjField("array", ";"), "o": ObjField("json"), "j": ObjField("json")}


@pytest.mark.parametrize(
    ("body", "writer", "key", "fragment"),
    [
        ({"_id": "_id", "sql": "select a.id as _id from user a"}, "es7", "esMapping._index", "required"),
        ({"_index": "i", "sql": "select a.id as _id from user a"}, "es7", "esMapping._id", "one of _id or pk"),
        ({"_index": "i", "_id": "_id", "sql": "select a.id as _id from user a"}, "es6", "esMapping._type", "es6"),
        ({"_index": "i", "_id": "nope", "sql": "select a.id as _id from user a"}, "es7", "esMapping._id",
         "not a field"),
        ({"_index": "i", "_id": "_id", "sql": "select b.id as _id from user a left join r b on b.id = a.rid"},
         "es7", "esMapping._id", "main-table"),
        ({"_index": "i", "_id": "_id", "sql": "select * from user a"}, "es7", "esMapping.sql", "SELECT *"),
        ({"_index": "i", "_id": "_id", "sql": "select a.id as _id, a.x from user a", "objFields": {"x": "obj:{}"}},
         "es7", "esMapping.objFields.x", "array:<separator>"),
        ({"_index": "i", "_id": "_id", "sql": "select a.id as _id from user a", "skips": ["zz"]}, "es7",
         "esMapping.skips", "not a field"),
        ({"_index": "i", "_id": "_id", "sql": "select a.id as _id from user a", "commitBatch": 0}, "es7",
         "esMapping.commitBatch", "positive"),
        ({"_index": "i", "_id": "_id", "sql": "select a.id as _id from user a", "relations": {"j": {}}}, "es7",
         "esMapping.relations.j", "name"),
    ],
)
def test_bad_mappings(body: dict[str, Any], writer: str, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(body, writer)
    assert info.value.source == "/conf/es7/m.yml"
    assert info.value.key == key
    assert fragment.lower() in str(info.value).lower()


def test_unqualified_table_needs_a_database() -> None:
    with pytest.raises(ConfigError, match="database of table"):
        parse({"_index": "i", "_id": "_id", "sql": "select a.id as _id from user a"}, ds=None)
    m = parse({"_index": "i", "_id": "_id", "sql": "select a.id as _id from db2.user a"}, ds=None)
    assert m.source_tables() == {("db2", "user")}


def wcfg(hosts: str | None, **props: Any) -> WriterConfig:
    return WriterConfig("es7", None, hosts, props, "example", "g1")


def test_settings_hosts_auth_ssl() -> None:
    s = parse_settings(wcfg("127.0.0.1:9200, http://h2:9201 ,https://h3", **{"security.auth": "u:p:x"}))
    assert s.hosts == ("http://127.0.0.1:9200", "http://h2:9201", "https://h3")
    assert (s.username, s.password) == ("u", "p:x")
    assert "p:x" not in repr(s)
    s = parse_settings(wcfg("h:9200", **{"security.ca.path": "/ca.pem", "timezone": "+08:00"}))
    assert s.hosts == ("https://h:9200",) and s.ca_path == "/ca.pem"
    assert s.timezone.utcoffset(None) == dt.timedelta(hours=8)


@pytest.mark.parametrize(
    ("hosts", "props", "key"),
    [
        (None, {}, "hosts"),
        ("h:9300", {"mode": "transport"}, "properties.mode"),
        ("h:9200", {"security.auth": "nopass"}, "properties.security.auth"),
        ("h:9200", {"timezone": "Mars/Base"}, "properties.timezone"),
        ("h:9200", {"bulk.max.bytes": "x"}, "properties.bulk.max.bytes"),
        ("h:abc", {}, "hosts"),
    ],
)
def test_bad_settings(hosts: str | None, props: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(wcfg(hosts, **props))
    assert info.value.key == key


def test_timezones() -> None:
    assert parse_timezone("UTC") == dt.timezone.utc
    assert parse_timezone("GMT-05:30").utcoffset(None) == -dt.timedelta(hours=5, minutes=30)
    assert parse_timezone("Asia/Shanghai").utcoffset(dt.datetime(2020, 1, 1)) == dt.timedelta(hours=8)


EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "mappings" / "es7"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yml")), ids=lambda p: p.name)
def test_shipped_examples_load(path: pathlib.Path) -> None:
    raw = yaml.safe_load(path.read_text())
    m = Es7Writer.parse_mapping(MappingHeader(path.name, str(path), raw["dataSourceKey"], raw["destination"],
                                              raw.get("groupId"), None), {"esMapping": raw["esMapping"]}, CTX)
    assert m.source_tables()
