"""The worker's ack / rollback / retry / exhausted table, with a fake source, fake writers and no sleeping."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapter.coordination.switch import LocalSwitch
from adapter.node.configload import TaskSpec, WriterSpec
from adapter.node.deadletter import DeadLetters
from adapter.node.mappings import WriterSlot
from adapter.node.metrics import NodeMetrics
from adapter.node.router import Router
from adapter.node.worker import Backoff, Worker, WorkerSettings, chunk_rows
from adapter.testing import (
    FailingWriter,
    FakeSource,
    RecordingWriter,
    make_ddl_entry,
    make_dml,
    make_entry,
    make_tx_entry,
    recording,
    wait_until,
)
from adapter.writers.base import Routed, WriterConfig, WriterContext

_n = 0


def uniq(prefix: str) -> str:
    global _n
    _n += 1
    return f"{prefix}-{_n}"


def writer_slot(cls: type[RecordingWriter], sink: str, props: dict[str, Any] | None = None) -> WriterSlot:
    p = {"sink": sink, **(props or {})}
    spec = WriterSpec(cls.name, sink, True, None, None, p, "x")
    task = TaskSpec("example", "g1", 1001, (spec,), "y")
    return WriterSlot(cls(WriterConfig(cls.name, sink, None, p, "example", "g1"), WriterContext()), spec, task)


def rows(*ids: int) -> list[Any]:
    return [make_tx_entry(True), make_entry("db", "t", "INSERT", [{"id": i} for i in ids]), make_tx_entry(False)]


class Harness:
    def __init__(self, slots: list[WriterSlot], batches: list[list[Any]], tmp: Path | None = None,
                 **settings: Any) -> None:
        self.source = FakeSource(batches)
        self.switch = LocalSwitch()
        self.sleeps: list[float] = []
        self.metrics = NodeMetrics()
        task = slots[0].task
        self.worker = Worker(task, self.source, Router(slots), self.switch,
                             settings=WorkerSettings(**settings), backoff=Backoff(0.5, 2.0, 8.0),
                             dead_letters=DeadLetters(str(tmp)) if tmp else None, metrics=self.metrics,
                             clock=lambda: 1000.0, sleep=self.sleeps.append)

    def step(self) -> str:
        assert self.worker._switch_on() and self.worker._ensure_connected()
        return self.worker.poll_once()

    def acks(self) -> list[str]:
        return [x for x in self.source.log if x.startswith("ack")]


def test_success_acks_after_the_write() -> None:
    s = writer_slot(RecordingWriter, uniq("rec"))
    h = Harness([s], [rows(1, 2)])
    assert h.step() == "acked"
    assert h.acks() == ["ack:1"]
    assert [r[3]["id"] for r in s.writer.sink.rows()] == [1, 2]
    assert h.step() == "empty" and h.acks() == ["ack:1"]


def test_only_transaction_markers_are_acked_without_writes() -> None:
    s = writer_slot(RecordingWriter, uniq("rec"))
    h = Harness([s], [[make_tx_entry(True), make_tx_entry(False)]])
    assert h.step() == "acked" and s.writer.sink.calls == 0


def test_retriable_then_success_rolls_back_and_redelivers() -> None:
    name = uniq("fail")
    s = writer_slot(FailingWriter, name, {"times": 2})
    h = Harness([s], [rows(1)], attempts=None)
    assert [h.step(), h.step(), h.step()] == ["retry", "retry", "acked"]
    assert h.source.log.count("rollback") == 2
    assert h.acks() == ["ack:3"]  # the re-delivered batch, a fresh get each time
    assert h.sleeps == [0.5, 1.0]
    assert [r[3]["id"] for r in s.writer.sink.rows()] == [1]


def test_unknown_errors_are_retried_like_retriable() -> None:
    s = writer_slot(FailingWriter, uniq("fail"), {"times": 1, "error": "unknown"})
    h = Harness([s], [rows(1)])
    assert [h.step(), h.step()] == ["retry", "acked"]


def test_exhausted_stop_rolls_back_switches_off_and_acks_nothing() -> None:
    s = writer_slot(FailingWriter, uniq("fail"), {"failing": True})
    h = Harness([s], [rows(1)], attempts=3, on_exhausted="stop")
    assert [h.step(), h.step(), h.step()] == ["retry", "retry", "stopped"]
    assert h.acks() == [] and h.source.log.count("rollback") == 3
    assert not h.switch.is_on("example")
    assert not h.worker._switch_on()  # paused: no more gets
    # operator fixes the target and turns the switch on: the same rows arrive
    s.writer.control.failing = False
    h.switch.set("example", True)
    assert h.step() == "acked"
    assert [r[3]["id"] for r in s.writer.sink.rows()] == [1]


def test_fatal_stops_at_once() -> None:
    s = writer_slot(FailingWriter, uniq("fail"), {"times": 1, "error": "fatal"})
    h = Harness([s], [rows(1)], attempts=None)
    assert h.step() == "stopped"
    assert h.acks() == [] and not h.switch.is_on("example")


def test_exhausted_skip_dead_letters_then_acks(tmp_path: Path) -> None:
    s = writer_slot(FailingWriter, uniq("fail"), {"failing": True})
    h = Harness([s], [rows(7, 8), rows(9)], tmp=tmp_path, attempts=2, on_exhausted="skip")
    assert [h.step(), h.step()] == ["retry", "skipped"]
    assert h.acks() == ["ack:2"]
    [f] = list((tmp_path / "example").glob("g1-*.jsonl"))
    lines = [orjson.loads(x) for x in f.read_bytes().splitlines()]
    assert lines[0]["error"].startswith("RetriableError") and lines[0]["batchId"] == 2
    assert lines[1]["data"] == [{"id": 7}, {"id": 8}] and lines[1]["table"] == "t"
    assert h.switch.is_on("example")
    s.writer.control.failing = False
    assert h.step() == "acked"  # the next batch goes on normally
    assert [r[3]["id"] for r in s.writer.sink.rows()] == [9]


def test_skip_without_dead_letter_store_stops() -> None:
    s = writer_slot(FailingWriter, uniq("fail"), {"failing": True})
    h = Harness([s], [rows(1)], attempts=1, on_exhausted="skip")
    assert h.step() == "stopped" and h.acks() == []


def test_one_failing_writer_fails_the_group_and_all_writers_see_the_replay() -> None:
    ok = writer_slot(RecordingWriter, uniq("rec"))
    bad = writer_slot(FailingWriter, uniq("fail"), {"times": 1})
    h = Harness([ok, bad], [rows(1)])
    assert [h.step(), h.step()] == ["retry", "acked"]
    assert [r[3]["id"] for r in ok.writer.sink.rows()] == [1, 1]  # idempotent writers see the replay
    assert [r[3]["id"] for r in bad.writer.sink.rows()] == [1]


def test_source_faults_reconnect_and_redeliver() -> None:
    s = writer_slot(RecordingWriter, uniq("rec"))
    h = Harness([s], [rows(1), rows(2)])
    h.source.fail_next = 1
    assert h.step() == "source-error" and not h.worker.connected
    assert h.step() == "acked"
    assert h.source.log.count("connect") == 2
    # ack lost: the applied batch comes again (duplicate, never a gap)
    h.source.fail_next = 0
    orig_ack = h.source.ack
    calls = {"n": 0}

    def flaky_ack(bid: int) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("reset")
        orig_ack(bid)

    h.source.ack = flaky_ack  # type: ignore[method-assign]
    assert h.step() == "source-error"
    assert h.step() == "acked"
    assert [r[3]["id"] for r in s.writer.sink.rows()] == [1, 2, 2]


def test_connect_failures_back_off() -> None:
    s = writer_slot(RecordingWriter, uniq("rec"))
    h = Harness([s], [rows(1)])
    h.source.connect = lambda: (_ for _ in ()).throw(ConnectionRefusedError("down"))  # type: ignore[method-assign]
    assert not h.worker._ensure_connected() and not h.worker._ensure_connected()
    assert h.sleeps == [0.5, 1.0]


def test_ddl_is_routed_and_chunking_counts_rows() -> None:
    items = [Routed(None, make_dml(data=[{"id": i} for i in range(n)])) for n in (3, 3, 0, 5, 1)]
    assert [len(c) for c in chunk_rows(items, 4)] == [2, 2, 1]
    assert chunk_rows([], 4) == []
    s = writer_slot(RecordingWriter, uniq("rec"))
    batch = [make_ddl_entry("db", "t", "ALTER TABLE t ADD c INT")]
    batch += [make_entry("db", "t", "INSERT", [{"id": i}]) for i in (1, 2, 3)]
    h = Harness([s], [batch], sync_batch_size=2)
    assert h.step() == "acked"
    assert s.writer.sink.calls == 2 and s.writer.sink.dmls[0].is_ddl


def test_metrics_count_batches_rows_and_lag() -> None:
    s = writer_slot(RecordingWriter, uniq("rec"))
    h = Harness([s], [[make_entry("db", "t", "INSERT", [{"id": 1}, {"id": 2}], execute_time=999_000,
                                  position=("mysql-bin.000002", 77))]])
    assert h.step() == "acked"
    text = h.metrics.render().decode()
    assert 'canal_adapter_rows_total{destination="example",group="g1"} 2.0' in text
    assert 'canal_adapter_lag_ms{destination="example",group="g1"} 1000.0' in text
    assert 'canal_adapter_last_acked_offset{destination="example",group="g1",journal="mysql-bin.000002"} 77.0' in text


@pytest.mark.timeout(60)
def test_run_loop_in_a_thread_pauses_on_switch_and_stops() -> None:
    sink = uniq("rec")
    s = writer_slot(RecordingWriter, sink)
    source = FakeSource([rows(1)])
    switch = LocalSwitch()
    w = Worker(s.task, source, Router([s]), switch, settings=WorkerSettings(timeout_ms=10))
    w.start()
    wait_until(lambda: len(recording(sink).rows()) == 1, what="first batch")
    switch.set("example", False)
    wait_until(lambda: w._off_since is not None, what="pause")
    source.add(rows(2))
    switch.set("example", True)
    wait_until(lambda: len(recording(sink).rows()) == 2, what="second batch after resume")
    w.stop(timeout=30)
    assert not w.alive and source.log[-1] == "disconnect"
    assert threading.active_count() >= 1
