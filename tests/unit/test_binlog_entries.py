"""Hand-written protobuf encoding of canal Entries: byte-identical to the generated classes."""

from __future__ import annotations

import datetime
import struct

from pymysqlreplication.constants import FIELD_TYPE as T

from adapter.protocol import EntryProtocol_pb2 as pb
from adapter.protocol.pbwire import varint
from adapter.server.binlog import entries as E
from adapter.server.binlog.rowcodec import DELETE, INSERT, UPDATE, RowCodec
from adapter.server.binlog.tabledef import ColumnDef, TableDef

UTC = datetime.timezone.utc


def test_varint_negative_int32_is_ten_bytes() -> None:
    assert varint(-7) == pb.Column(sqlType=-7).SerializeToString()[1:]
    assert len(varint(-7)) == 10
    assert varint(300) == b"\xac\x02"
    assert varint(0) == b"\x00"
    for n in (1, 127, 128, 16383, 16384, 2**21 - 1, 2**21, 2**28 - 1, 2**28, 2**63 - 1):
        assert varint(n) == pb.TransactionBegin(threadId=n).SerializeToString()[1:], n


def test_header_matches_generated_code() -> None:
    got = E.header("mysql-bin.000003", 1234, 1, 1700000000000, 77, schema="db", table="t", event_type=pb.INSERT,
                   props=[("rowsCount", "3")], gtid="0-1-9")
    want = pb.Header(version=1, logfileName="mysql-bin.000003", logfileOffset=1234, serverId=1, serverenCode="UTF-8",
                     executeTime=1700000000000, sourceType=pb.MYSQL, schemaName="db", tableName="t", eventLength=77,
                     eventType=pb.INSERT, props=[pb.Pair(key="rowsCount", value="3")], gtid="0-1-9")
    assert got == want.SerializeToString()


def test_transaction_entries_always_carry_entry_type_but_no_event_type() -> None:
    head = E.header("f", 4, 1, 1000, 42)
    begin = pb.Entry()
    begin.ParseFromString(E.entry(head, E.TRANSACTIONBEGIN, E.transaction_begin(12)))
    assert begin.HasField("entryType") and begin.entryType == pb.TRANSACTIONBEGIN
    assert not begin.header.HasField("eventType")
    assert begin.header.HasField("version") and begin.header.HasField("sourceType")
    tb = pb.TransactionBegin()
    tb.ParseFromString(begin.storeValue)
    assert tb.threadId == 12
    end = pb.Entry()
    end.ParseFromString(E.entry(head, E.TRANSACTIONEND, E.transaction_end("99")))
    te = pb.TransactionEnd()
    te.ParseFromString(end.storeValue)
    assert end.entryType == pb.TRANSACTIONEND and te.transactionId == "99"


def test_ddl_rowchange() -> None:
    rc = pb.RowChange()
    rc.ParseFromString(E.statement_change(pb.CREATE, "CREATE TABLE t (a int)", "db", is_ddl=True))
    assert rc.HasField("eventType") and rc.eventType == pb.CREATE
    assert rc.HasField("isDdl") and rc.isDdl
    assert rc.sql == "CREATE TABLE t (a int)" and rc.ddlSchemaName == "db"
    want = pb.RowChange(eventType=pb.CREATE, isDdl=True, sql="CREATE TABLE t (a int)", ddlSchemaName="db")
    assert E.statement_change(pb.CREATE, "CREATE TABLE t (a int)", "db", is_ddl=True) == want.SerializeToString()


TABLE = TableDef(42, "db", "t", (
    ColumnDef(0, "id", T.LONG, is_key=True),
    ColumnDef(1, "name", T.VARCHAR, charset="utf8mb4", max_length=256),
    ColumnDef(2, "qty", T.LONGLONG, unsigned=True),
))


def image(id_: int, name: str | None, qty: int | None) -> bytes:
    nulls = (name is None) << 1 | (qty is None) << 2
    out = bytes([nulls]) + struct.pack("<i", id_)
    if name is not None:
        raw = name.encode()
        out += len(raw).to_bytes(2, "little") + raw
    if qty is not None:
        out += struct.pack("<Q", qty)
    return out


def rowchange(codec: RowCodec, kind: int, data: bytes) -> tuple[bytes, pb.RowChange]:
    parts, _ = codec.encode(kind, data, 0, len(data), b"\x07", b"\x07")
    raw = E.rows_change_head(42, kind) + b"".join(parts)
    rc = pb.RowChange()
    rc.ParseFromString(raw)
    return raw, rc


def column(index: int, name: str, sql: int, mysql: str, value: str | None, *, key: bool = False,
           updated: bool = False) -> pb.Column:
    c = pb.Column(index=index, sqlType=sql, name=name, isKey=key, updated=updated, mysqlType=mysql,
                  isNull=value is None)
    if value is not None:
        c.value = value
    return c


def test_insert_rows_are_byte_identical_to_generated_code() -> None:
    codec = RowCodec(TABLE, UTC)
    raw, rc = rowchange(codec, INSERT, image(1, "a😀", 2**64 - 1) + image(2, None, None))
    want = pb.RowChange(tableId=42, eventType=pb.INSERT, isDdl=False, rowDatas=[
        pb.RowData(afterColumns=[
            column(0, "id", 4, "int(11)", "1", key=True, updated=True),
            column(1, "name", 12, "varchar(64)", "a😀", updated=True),
            column(2, "qty", 3, "bigint(20) unsigned", "18446744073709551615", updated=True),
        ]),
        pb.RowData(afterColumns=[
            column(0, "id", 4, "int(11)", "2", key=True, updated=True),
            column(1, "name", 12, "varchar(64)", None, updated=True),
            column(2, "qty", 3, "bigint(20) unsigned", None, updated=True),
        ]),
    ])
    assert raw == want.SerializeToString()
    assert rc.rowDatas[0].afterColumns[1].HasField("isNull")  # canal always sets isNull


def test_delete_has_before_columns_only() -> None:
    _, rc = rowchange(RowCodec(TABLE, UTC), DELETE, image(7, "x", 1))
    (rd,) = rc.rowDatas
    assert not rd.afterColumns
    assert [c.value for c in rd.beforeColumns] == ["7", "x", "1"]
    assert not any(c.updated for c in rd.beforeColumns)


def test_update_marks_changed_after_columns_including_key_and_null_changes() -> None:
    data = image(1, "a", None) + image(2, "a", 5) + image(3, None, 5) + image(3, None, 5)
    _, rc = rowchange(RowCodec(TABLE, UTC), UPDATE, data)
    first, second = rc.rowDatas
    assert [c.value for c in first.beforeColumns] == ["1", "a", ""]
    assert [c.updated for c in first.beforeColumns] == [False, False, False]
    assert [c.updated for c in first.afterColumns] == [True, False, True]  # key changed, NULL → 5
    assert [c.updated for c in second.afterColumns] == [False, False, False]
    assert second.afterColumns[1].isNull


def test_mysql_type_override_and_partial_images() -> None:
    codec = RowCodec(TABLE, UTC, ["int(5)", "varchar(64)", "bigint(20) unsigned"])
    # only id and qty present (a MINIMAL-image style bitmap)
    data = bytes([0]) + struct.pack("<i", 9) + struct.pack("<Q", 3)
    parts, n = codec.encode(INSERT, data, 0, len(data), b"\x05")
    rc = pb.RowChange()
    rc.ParseFromString(E.rows_change_head(42, INSERT) + b"".join(parts))
    assert n == 1
    assert [(c.name, c.mysqlType, c.value) for c in rc.rowDatas[0].afterColumns] == [
        ("id", "int(5)", "9"), ("qty", "bigint(20) unsigned", "3")]
