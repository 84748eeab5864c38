"""rdb writer: dbMapping parsing (canal's sample file unchanged), properties, and load-time validation."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import services
import yaml

from adapter.errors import ConfigError
from adapter.writers.base import MappingHeader, WriterConfig, WriterContext
from adapter.writers.rdb import RdbWriter, parse_rdb_mapping
from adapter.writers.rdb.mapping import split_dotted
from adapter.writers.rdb.props import jdbc_to_url, parse_props

# The project root's sibling ../shared holds canal's sample files, which must load unchanged.
COMPAT = Path(services.COMPAT) / "adapter-conf/rdb/mytest_user.yml"


def header(task: str = "m.yml") -> MappingHeader:
    return MappingHeader(task=task, file=f"/conf/rdb/{task}", data_source_key="defaultDS", destination="example",
                         group_id="g1", outer_adapter_key="k1")


def doc(**body: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"database": "mytest", "table": "user", "targetTable": "user", "targetColumns": {"id": None}}
    base.update(body)
    return {"dataSourceKey": "defaultDS", "destination": "example", "dbMapping": base}


def test_canal_sample_file_parses_unchanged() -> None:
    raw = yaml.safe_load(COMPAT.read_text())
    m = parse_rdb_mapping(header("mytest_user.yml"), raw)
    assert (m.database, m.table) == ("mytest", "user")
    assert (m.target_db, m.target_table) == ("mytest2", "user")  # the dotted form is split (canal #2941)
    assert m.target_pk == {"id": "id"}
    assert m.target_columns == {c: c for c in ("id", "name", "role_id", "c_time", "test1")}
    assert m.concurrent is True and m.commit_batch == 3000 and m.map_all is False
    assert m.etl_condition == "where c_time>={}"
    assert m.source_tables() == frozenset({("mytest", "user")})
    assert m.display_target() == "mytest2.user"


def test_mirror_db_mapping_reads_every_table_of_the_database() -> None:
    m = parse_rdb_mapping(header(), {"dbMapping": {"mirrorDb": True, "database": "MyTest"}})
    assert m.mirror_db and m.map_all
    assert m.source_tables() == frozenset({("mytest", "*")})


@pytest.mark.parametrize(("given", "expected"), [
    ("mytest2.user", ("mytest2", "user")), ("user", (None, "user")), ("`my.table`", (None, "my.table")),
    ("a.b.c", (None, "a.b.c")),
])
def test_dotted_target_table(given: str, expected: tuple[str | None, str]) -> None:
    assert split_dotted(given) == expected


def test_target_columns_null_means_same_name_and_values_rename() -> None:
    m = parse_rdb_mapping(header(), doc(targetColumns={"id": None, "nm": "name", "x": ""}, targetPk={"id": None}))
    assert m.target_columns == {"id": "id", "nm": "name", "x": "x"}
    assert m.target_pk == {"id": "id"}


def test_beyond_canal_options() -> None:
    m = parse_rdb_mapping(header(), doc(mapAll=True, ddl="addColumns", zeroDate="error", caseInsensitive=True))
    assert m.add_columns and m.zero_date == "error" and m.case_insensitive
    assert parse_rdb_mapping(header(), doc(mapAll=True, syncAddColumn=True)).add_columns
    assert parse_rdb_mapping(header(), doc(zeroDate=None)).zero_date == "null"  # YAML `zeroDate: null`
    assert parse_rdb_mapping(header(), doc()).zero_date is None


@pytest.mark.parametrize(("raw", "key", "words"), [
    ({"destination": "x"}, "dbMapping", "required"),
    (doc(targetColums={"a": None}), "dbMapping.targetColums", "unknown key"),
    ({**doc(), "outerAdapterKy": "x"}, "outerAdapterKy", "unknown key"),
    (doc(table=None), "dbMapping.table", "required"),
    (doc(targetTable=None), "dbMapping.targetTable", "required"),
    (doc(targetColumns=None), "dbMapping.targetColumns", "mapAll"),
    (doc(targetColumns=["id"]), "dbMapping.targetColumns", "expected a map"),
    (doc(targetColumns={"id": None, "order_no": False}), "dbMapping.targetColumns.order_no", "quote it"),
    (doc(commitBatch=0), "dbMapping.commitBatch", "positive"),
    (doc(mapAll="yes"), "dbMapping.mapAll", "true or false"),
    (doc(ddl="all"), "dbMapping.ddl", "addColumns"),
    (doc(ddl="addColumns"), "dbMapping.ddl", "mapAll"),
    (doc(zeroDate="zero"), "dbMapping.zeroDate", "null, error or keep"),
    ({"dbMapping": "x"}, "dbMapping", "expected a map"),
])
def test_mapping_errors_name_file_and_key(raw: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as ei:
        parse_rdb_mapping(header("bad.yml"), raw)
    assert ei.value.source == "/conf/rdb/bad.yml"
    assert ei.value.key == key
    assert words in str(ei.value)


# ---------------------------------------------------------------- properties
@pytest.mark.parametrize(("url", "expected"), [
    ("jdbc:mysql://127.0.0.1:3306/mytest2?useUnicode=true&characterEncoding=utf8",
     "mysql+pymysql://root:pw@127.0.0.1:3306/mytest2?charset=utf8mb4"),
    ("jdbc:mariadb://db:3307/x", "mysql+pymysql://root:pw@db:3307/x?charset=utf8mb4"),
    ("jdbc:postgresql://localhost:5432/postgres", "postgresql+psycopg://root:pw@localhost:5432/postgres"),
    ("postgresql+psycopg://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
])
def test_jdbc_urls_translate(url: str, expected: str) -> None:
    assert jdbc_to_url(url, "root", "pw").render_as_string(hide_password=False) == expected


def test_sqlite_jdbc_url_and_credentials_in_query() -> None:
    assert jdbc_to_url("jdbc:sqlite:/tmp/x.db").database == "/tmp/x.db"
    u = jdbc_to_url("jdbc:mysql://h/db?user=a&password=b")
    assert (u.username, u.password) == ("a", "b")


@pytest.mark.parametrize(("props", "key"), [
    ({}, "jdbc.url"),
    ({"jdbc.url": "jdbc:oracle:thin:@h:1521:XE"}, "jdbc.url"),
    ({"jdbc.url": "jdbc:mysql://a,b/db"}, "jdbc.url"),
    ({"url": "sqlite://", "threads": "many"}, "threads"),
    ({"url": "sqlite://", "threads": 0}, "threads"),
    ({"url": "sqlite://", "timezone": "Mars/Base"}, "timezone"),
    ({"url": "sqlite://", "colour": "red"}, "colour"),
    ({"url": "mssql+pyodbc://h/db"}, "url"),
])
def test_property_errors(props: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as ei:
        parse_props(props, source="application.yml")
    assert ei.value.key == key


def test_canal_properties_accepted() -> None:
    p = parse_props({"jdbc.driverClassName": "org.postgresql.Driver", "jdbc.url": "jdbc:postgresql://h:5432/postgres",
                     "jdbc.username": "postgres", "jdbc.password": "121212", "threads": 1, "commitSize": 3000,
                     "druid.stat.enable": False})
    assert (p.threads, p.commit_size, p.family) == (1, 3000, "postgresql")
    assert parse_props({"url": "mysql+pymysql://h/db"}).threads == 3  # canal's default
    assert parse_props({"url": "sqlite:///x.db", "threads": 4}).threads == 1  # SQLite has one writer


# ---------------------------------------------------------------- validation against the target (open)
def make_writer(db: Path) -> RdbWriter:
    return RdbWriter(WriterConfig("rdb", "k1", None, {"jdbc.url": f"jdbc:sqlite:{db}"}, "example", "g1"),
                     WriterContext())


@pytest.fixture
def target(tmp_path: Path) -> Path:
    db = tmp_path / "t.db"
    c = sqlite3.connect(db)
    c.executescript("""
        create table user (id integer primary key, name text);
        create table nokey (a integer, b text);
        create table ukey (a integer, b text, unique (b));
    """)
    c.close()
    return db


@pytest.mark.parametrize(("body", "key", "words"), [
    ({"targetTable": "missing"}, "dbMapping.targetTable", "does not exist"),
    ({"targetColumns": {"id": None, "nope": "name"}}, "dbMapping.targetColumns.nope", "no column 'nope'"),
    ({"targetTable": "nokey", "targetColumns": {"a": None}}, "dbMapping.targetPk", "no primary key"),
    ({"targetTable": "nokey", "targetColumns": {"a": None}, "targetPk": {"a": None}}, "dbMapping.targetPk", "unique"),
    ({"targetPk": {"idx": "id"}}, "dbMapping.targetPk.idx", "no column 'idx'"),
])
def test_open_rejects_bad_targets(target: Path, body: dict[str, Any], key: str, words: str) -> None:
    w = make_writer(target)
    w.set_mappings([parse_rdb_mapping(header("bad.yml"), doc(**body))])
    with pytest.raises(ConfigError) as ei:
        w.open()
    w.close()
    assert ei.value.source == "/conf/rdb/bad.yml" and ei.value.key == key
    assert words in str(ei.value)


def test_mirror_target_schema_must_exist(target: Path) -> None:
    w = make_writer(target)
    w.set_mappings([parse_rdb_mapping(header("mirror.yml"), {"dbMapping": {"mirrorDb": True, "database": "shop",
                                                                           "targetDb": "nope"}})])
    with pytest.raises(ConfigError) as ei:
        w.open()
    w.close()
    assert ei.value.key == "dbMapping.targetDb"


def test_open_accepts_unique_key_and_case_mismatch(target: Path) -> None:
    w = make_writer(target)
    ok = [parse_rdb_mapping(header("a.yml"), doc(targetTable="ukey", targetPk={"B": "b"}, targetColumns={"a": None})),
          parse_rdb_mapping(header("b.yml"), doc(targetTable="USER", targetColumns={"ID": "id", "Name": "name"}))]
    w.set_mappings(ok)
    w.open()
    w.close()


def test_zero_date_keep_needs_mysql_target(target: Path) -> None:
    w = make_writer(target)
    with pytest.raises(ConfigError) as ei:
        w.set_mappings([parse_rdb_mapping(header(), doc(zeroDate="keep"))])
    assert ei.value.key == "dbMapping.zeroDate"
