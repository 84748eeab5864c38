"""Entry → Dml conversion: types, pkNames, aligned old, DDL, transaction markers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from adapter.node import convert as cv
from adapter.node.convert import entries_to_dmls, typed_value
from adapter.testing import make_ddl_entry, make_entry, make_tx_entry


def test_typed_values() -> None:
    assert typed_value(cv.INTEGER, "42") == 42
    assert typed_value(cv.BIGINT, "18446744073709551615") == 18446744073709551615
    assert typed_value(cv.TINYINT, "-1") == -1
    assert typed_value(cv.DECIMAL, "12.340") == Decimal("12.340")
    assert typed_value(cv.DOUBLE, "1.5") == 1.5
    assert typed_value(cv.REAL, "2.25") == 2.25
    assert typed_value(cv.DATE, "2024-02-29") == dt.date(2024, 2, 29)
    assert typed_value(cv.TIMESTAMP, "2024-01-02 03:04:05") == dt.datetime(2024, 1, 2, 3, 4, 5)
    assert typed_value(cv.TIMESTAMP, "2024-01-02 03:04:05.5") == dt.datetime(2024, 1, 2, 3, 4, 5, 500000)
    assert typed_value(cv.TIMESTAMP, "2024-01-02 03:04:05.123456") == dt.datetime(2024, 1, 2, 3, 4, 5, 123456)
    assert typed_value(cv.TIMESTAMP, "0000-00-00 00:00:00") == "0000-00-00 00:00:00"
    assert typed_value(cv.DATE, "0000-00-00") == "0000-00-00"
    assert typed_value(cv.DATE, "2024-02-30") == "2024-02-30"
    assert typed_value(cv.TIME, "838:59:59") == "838:59:59"
    assert typed_value(cv.BLOB, "\x00\xff") == b"\x00\xff"
    assert typed_value(cv.VARBINARY, "") == b""
    assert typed_value(cv.BIT, "5") == 5
    assert typed_value(12, "hello") == "hello"
    assert typed_value(12, "") == ""
    assert typed_value(cv.INTEGER, "") is None  # canal: empty non-text → null


def test_insert_types_pk_and_maps() -> None:
    types = {"id": cv.INTEGER, "amount": cv.DECIMAL, "at": cv.TIMESTAMP, "b": cv.BLOB, "n": 12}
    e = make_entry("shop", "orders", "INSERT", [{"id": 1, "amount": "9.50", "at": "2024-01-02 03:04:05",
                                                 "b": b"\x01\x02", "n": None}],
                   types=types, execute_time=1700000000000, position=("mysql-bin.000003", 1234))
    [d] = entries_to_dmls([make_tx_entry(True), e, make_tx_entry(False)], "example", "g1", ts=99)
    assert (d.destination, d.group_id, d.database, d.table, d.type) == ("example", "g1", "shop", "orders", "INSERT")
    assert d.pk_names == ("id",)
    assert d.data == ({"id": 1, "amount": Decimal("9.50"), "at": dt.datetime(2024, 1, 2, 3, 4, 5),
                       "b": b"\x01\x02", "n": None},)
    assert d.old is None
    assert (d.es, d.ts, d.position, d.is_ddl, d.sql) == (1700000000000, 99, "mysql-bin.000003:1234", False, "")
    assert d.sql_types["amount"] == cv.DECIMAL and d.mysql_types["id"] == "varchar(255)"


def test_update_old_is_aligned_with_data() -> None:
    e = make_entry("db", "t", "UPDATE",
                   [{"id": 1, "name": "a2", "v": 1}, {"id": 2, "name": "b", "v": 2}, {"id": 3, "name": "c", "v": 9}],
                   before=[{"id": 1, "name": "a", "v": 1}, {"id": 2, "name": "b", "v": 2}, {"id": 3, "name": "c",
                                                                                          "v": 3}],
                   types={"id": cv.INTEGER, "v": cv.INTEGER})
    [d] = entries_to_dmls([e], "example", "g1", ts=0)
    assert [r["id"] for r in d.data] == [1, 2, 3]
    assert d.old == ({"name": "a"}, {}, {"v": 3})  # row 2 changed nothing: an empty entry keeps alignment


def test_delete_uses_before_image() -> None:
    e = make_entry("db", "t", "DELETE", [{"id": 7, "name": "x"}], types={"id": cv.INTEGER})
    [d] = entries_to_dmls([e], "example", None, ts=0)
    assert d.type == "DELETE" and d.data == ({"id": 7, "name": "x"},) and d.old is None and d.group_id is None


def test_ddl_and_composite_keys() -> None:
    ddl = make_ddl_entry("db", "t", "ALTER TABLE t ADD c INT")
    row = make_entry("db", "t", "INSERT", [{"a": 1, "b": 2, "v": "x"}], pk_names=("a", "b"))
    d1, d2 = entries_to_dmls([ddl, row], "example", "g1", ts=0)
    assert (d1.is_ddl, d1.type, d1.sql, d1.data, d1.database) == (True, "ALTER", "ALTER TABLE t ADD c INT", (), "db")
    assert d2.pk_names == ("a", "b")


def test_canal_json_shape() -> None:
    e = make_entry("db", "t", "UPDATE", [{"id": 1, "name": "b"}], before=[{"id": 1, "name": "a"}],
                   types={"id": cv.INTEGER})
    [d] = entries_to_dmls([e], "example", "g1", ts=5)
    assert d.to_canal_dict() == {"data": [{"id": 1, "name": "b"}], "database": "db", "destination": "example",
                                 "es": 0, "groupId": "g1", "isDdl": False, "old": [{"name": "a"}],
                                 "pkNames": ["id"], "sql": "", "table": "t", "ts": 5, "type": "UPDATE"}


def test_large_batch() -> None:
    types = {"id": cv.INTEGER, "a": cv.DECIMAL, "t": cv.TIMESTAMP, "d": cv.DATE}
    rows = [{"id": i, "a": "1.25", "t": "2024-01-02 03:04:05", "d": "2024-01-02", "s": "text", "s2": "more"}
            for i in range(1000)]
    entries = [make_entry("db", "t", "INSERT", rows, types=types) for _ in range(20)]
    dmls = entries_to_dmls(entries, "example", "g1", ts=0)
    assert sum(len(d.data) for d in dmls) == 20000
    assert dmls[-1].data[-1]["id"] == 999
