"""Test support shipped in the package: Dml/Entry builders, recording and failing writers, a fake source.

Writers are found by tests through ``RECORDINGS`` / ``FAILURES`` by name, so a test can inspect a
writer that the app built from config. Plugin authors subclass ``adapter.testing.WriterContract``
(defined in ``adapter.testing_contract``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapter.dml import INSERT, Dml
from adapter.errors import ConfigError, FatalError, RetriableError
from adapter.protocol import EntryProtocol_pb2 as pb
from adapter.writers.base import EtlResult, MappingHeader, Routed, Writer, WriterConfig, WriterContext

# ------------------------------------------------------------------ builders


def make_dml(
    table: str = "t",
    type: str = INSERT,
    data: Sequence[Mapping[str, Any]] = ({"id": 1},),
    *,
    old: Sequence[Mapping[str, Any]] | None = None,
    database: str = "db",
    destination: str = "example",
    group_id: str | None = "g1",
    pk_names: Sequence[str] = ("id",),
    es: int = 0,
    ts: int = 0,
    sql: str = "",
    is_ddl: bool = False,
    position: str = "",
) -> Dml:
    """A Dml with canal's fields; defaults describe one INSERT of ``{"id": 1}`` into ``db.t``."""
    return Dml(destination, group_id, database, table, type, tuple(pk_names), tuple(dict(r) for r in data),
               tuple(dict(r) for r in old) if old is not None else None, es, ts, sql, is_ddl, position=position)


def _columns(row: Mapping[str, Any], pks: Sequence[str], types: Mapping[str, int], changed: Iterable[str] = ()
             ) -> list[pb.Column]:
    changed = set(changed)
    cols = []
    for i, (name, value) in enumerate(row.items()):
        c = pb.Column(index=i, name=name, sqlType=types.get(name, 12 if isinstance(value, str) else 4),
                      isKey=name in pks, updated=name in changed, mysqlType="varchar(255)")
        if value is None:
            c.isNull = True
        else:
            c.value = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        cols.append(c)
    return cols


def make_entry(
    database: str,
    table: str,
    event: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    before: Sequence[Mapping[str, Any]] | None = None,
    pk_names: Sequence[str] = ("id",),
    types: Mapping[str, int] | None = None,
    execute_time: int = 0,
    position: tuple[str, int] = ("mysql-bin.000001", 4),
) -> pb.Entry:
    """A ROWDATA Entry as canal-server sends it. ``rows`` are after-images (before-images for DELETE);
    for UPDATE ``before`` holds the before-images and ``updated`` flags mark the columns that differ."""
    types = types or {}
    etype = pb.EventType.Value(event)
    rc = pb.RowChange(eventType=event, isDdl=False)
    for i, row in enumerate(rows):
        rd = rc.rowDatas.add()
        if etype == pb.DELETE:
            rd.beforeColumns.extend(_columns(row, pk_names, types))
        else:
            prev = before[i] if before else None
            changed = [k for k in row if prev is not None and prev.get(k) != row[k]]
            rd.afterColumns.extend(_columns(row, pk_names, types, changed if etype == pb.UPDATE else row.keys()))
            if prev is not None:
                rd.beforeColumns.extend(_columns(prev, pk_names, types))
    header = pb.Header(logfileName=position[0], logfileOffset=position[1], executeTime=execute_time,
                       schemaName=database, tableName=table, eventType=event,
                       sourceType="MYSQL")
    return pb.Entry(header=header, entryType=pb.ROWDATA, storeValue=rc.SerializeToString())


def make_ddl_entry(database: str, table: str, sql: str, event: str = "ALTER") -> pb.Entry:
    rc = pb.RowChange(eventType=event, isDdl=True, sql=sql, ddlSchemaName=database)
    header = pb.Header(schemaName=database, tableName=table, eventType=event)
    return pb.Entry(header=header, entryType=pb.ROWDATA, storeValue=rc.SerializeToString())


def make_tx_entry(begin: bool) -> pb.Entry:
    if begin:
        return pb.Entry(header=pb.Header(), entryType=pb.TRANSACTIONBEGIN,
                        storeValue=pb.TransactionBegin(threadId=1).SerializeToString())
    return pb.Entry(header=pb.Header(), entryType=pb.TRANSACTIONEND,
                    storeValue=pb.TransactionEnd(transactionId="1").SerializeToString())


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, interval: float = 0.05, what: str = "") -> None:
    """Poll ``predicate`` until true; AssertionError after ``timeout`` seconds (a limit, not a timing assert)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


# ------------------------------------------------------------------ recording writer


@dataclass
class RecordingSink:
    """What a RecordingWriter received: every Dml of every successful ``write`` call, in order."""

    dmls: list[Dml] = field(default_factory=list)
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def rows(self) -> list[tuple[str, str, str, dict[str, Any]]]:
        """(table, type, database, row) for every row received."""
        with self.lock:
            return [(d.table, d.type, d.database, dict(r)) for d in self.dmls for r in d.data]

    def clear(self) -> None:
        with self.lock:
            self.dmls.clear()
            self.calls = 0


RECORDINGS: dict[str, RecordingSink] = {}
_REG_LOCK = threading.Lock()


def recording(name: str) -> RecordingSink:
    """The sink called ``name`` (created on first use; property ``sink`` of a recording writer)."""
    with _REG_LOCK:
        return RECORDINGS.setdefault(name, RecordingSink())


@dataclass(frozen=True)
class RecordingMapping:
    """Mapping body for ``recording`` mapping files: ``database`` and ``table`` (``*`` = any table)."""

    header: MappingHeader
    database: str
    table: str

    def source_tables(self) -> frozenset[tuple[str, str]]:
        return frozenset({(self.database.lower(), self.table.lower())})


class RecordingWriter(Writer):
    """Records every Dml it is given into ``recording(properties['sink'] or key)``.

    Without mapping files it receives every Dml of its group. With ``properties: {mapped: true}``
    it is still mapping-less; use ``RecordingMappedWriter`` (name ``recording_mapped``) for routing.
    """

    name = "recording"

    def __init__(self, config: WriterConfig, context: WriterContext) -> None:
        super().__init__(config, context)
        self.sink = recording(str(config.properties.get("sink") or config.key or self.name))
        self.closed = False
        self.etl_calls: list[tuple[Any, list[str]]] = []

    def write(self, items: Sequence[Routed]) -> None:
        with self.sink.lock:
            self.sink.calls += 1
            self.sink.dmls.extend(i.dml for i in items)

    def close(self) -> None:
        self.closed = True


class RecordingMappedWriter(RecordingWriter):
    """A recording writer with mapping files (``<conf>/recording/*.yml``) and ETL/count support."""

    name = "recording_mapped"
    mapping_dir = "recording"

    @classmethod
    def parse_mapping(cls, header: MappingHeader, raw: Mapping[str, Any], context: WriterContext) -> Any:
        db, table = raw.get("database"), raw.get("table")
        if not isinstance(db, str) or not isinstance(table, str):
            raise ConfigError("expected string keys 'database' and 'table'", source=header.file, key="database")
        return RecordingMapping(header, db, table)

    def etl(self, mapping: Any, params: Sequence[str], progress: Callable[[int], None]) -> EtlResult:
        self.etl_calls.append((mapping, list(params)))
        progress(1)
        return EtlResult(True, "导入RECORDING 数据：1 条", rows=1)

    def count(self, mapping: Any) -> int:
        return len(self.sink.rows())


# ------------------------------------------------------------------ failing writer


@dataclass
class FailureControl:
    """Switchboard for a FailingWriter: fail while ``failing`` or for the next ``times`` calls."""

    failing: bool = False
    times: int = 0
    error: str = "retriable"  # retriable | fatal | unknown
    calls: int = 0
    failures: int = 0

    def exception(self) -> Exception:
        if self.error == "fatal":
            return FatalError("injected fatal failure")
        if self.error == "unknown":
            return RuntimeError("injected unexpected failure")
        return RetriableError("injected transient failure")


FAILURES: dict[str, FailureControl] = {}


def failure_control(name: str) -> FailureControl:
    with _REG_LOCK:
        return FAILURES.setdefault(name, FailureControl())


class FailingWriter(RecordingWriter):
    """A RecordingWriter that fails as told by ``failure_control(properties['sink'] or key)``.

    Properties ``failing`` (bool), ``times`` (int) and ``error`` preset the control at construction.
    """

    name = "failing"

    def __init__(self, config: WriterConfig, context: WriterContext) -> None:
        super().__init__(config, context)
        self.control = failure_control(str(config.properties.get("sink") or config.key or self.name))
        props = config.properties
        if "failing" in props:
            self.control.failing = str(props["failing"]).lower() in ("1", "true", "yes")
        if "times" in props:
            self.control.times = int(props["times"])
        if "error" in props:
            self.control.error = str(props["error"])

    def write(self, items: Sequence[Routed]) -> None:
        c = self.control
        c.calls += 1
        if c.failing or c.times > 0:
            c.times = max(0, c.times - 1)
            c.failures += 1
            raise c.exception()
        super().write(items)


# ------------------------------------------------------------------ fake source


class FakeSource:
    """A canal server in miniature for one client: batches are re-delivered until acked, in order.

    ``fail_next`` makes the next N calls of get/ack raise ``RetriableError`` (a network fault).
    """

    def __init__(self, batches: Sequence[Sequence[pb.Entry]] = ()) -> None:
        self.batches: list[list[pb.Entry]] = [list(b) for b in batches]
        self.acked = 0  # number of batches acked (prefix of ``batches``)
        self.cursor = 0  # next batch index to hand out
        self.outstanding: list[tuple[int, int]] = []  # (batch_id, index)
        self.next_id = 1
        self.connected = False
        self.log: list[str] = []
        self.fail_next = 0
        self.lock = threading.Lock()

    def add(self, entries: Sequence[pb.Entry]) -> None:
        with self.lock:
            self.batches.append(list(entries))

    def _fault(self, what: str) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            self.connected = False
            self.log.append(f"fault:{what}")
            raise RetriableError(f"injected network fault in {what}")

    def connect(self) -> None:
        with self.lock:
            self.log.append("connect")
            self.connected = True
            self.cursor, self.outstanding = self.acked, []  # rollbackOnConnect

    def get(self, batch_size: int, timeout_ms: int) -> tuple[int, list[pb.Entry]]:
        with self.lock:
            if not self.connected:
                raise RetriableError("not connected")
            self._fault("get")
            if self.cursor >= len(self.batches):
                return -1, []
            bid, self.next_id = self.next_id, self.next_id + 1
            self.outstanding.append((bid, self.cursor))
            self.cursor += 1
            self.log.append(f"get:{bid}")
            return bid, list(self.batches[self.cursor - 1])

    def ack(self, batch_id: int) -> None:
        with self.lock:
            self._fault("ack")
            if not self.outstanding or self.outstanding[0][0] != batch_id:
                raise RetriableError(f"batchId:{batch_id} is not the firstly")
            self.outstanding.pop(0)
            self.acked += 1
            self.log.append(f"ack:{batch_id}")

    def rollback(self) -> None:
        with self.lock:
            self.log.append("rollback")
            self.cursor, self.outstanding = self.acked, []

    def disconnect(self) -> None:
        with self.lock:
            self.log.append("disconnect")
            self.connected = False


def __getattr__(name: str) -> object:
    if name == "WriterContract":  # lazily: testing_contract imports this module
        from adapter.testing_contract import WriterContract

        return WriterContract
    raise AttributeError(name)
