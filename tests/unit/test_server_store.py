"""EventStore: batch/ack/rollback rules, get modes and timeouts, DDL isolation, back-pressure, multi-client."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from adapter.errors import ProtocolError
from adapter.protocol import EntryProtocol_pb2 as epb
from adapter.server.events import Event, LogPosition
from adapter.server.store import ITEMSIZE, MEMSIZE, EventStore

NOSTOP = threading.Event()


def ev(n: int, *, boundary: bool = False, ddl: bool = False, size: int = 100, payload: int = 10) -> Event:
    return Event(
        entry=bytes([n % 256]) * payload,
        size=size,
        position=LogPosition("mysql-bin.000001", 1000 + n),
        entry_type=epb.TRANSACTIONEND if boundary else epb.ROWDATA,
        is_ddl=ddl,
        boundary=boundary or ddl,
    )


def txn(start: int, rows: int) -> list[Event]:
    """``rows`` row events then a boundary (TRANSACTIONEND), numbered from ``start``."""
    return [ev(start + i) for i in range(rows)] + [ev(start + rows, boundary=True)]


def item_store(**kw: object) -> EventStore:
    return EventStore(batch_mode=ITEMSIZE, **kw)  # type: ignore[arg-type]


def nums(events: list[Event]) -> list[int]:
    return [e.position.position - 1000 for e in events]


# ---------------------------------------------------------------- batches, ack, rollback
def test_batch_ids_start_at_1_and_empty_get_is_minus_one() -> None:
    s = item_store()
    s.subscribe(1)
    assert s.get(1, 10, 0) == (-1, [])
    s.put(txn(0, 2), NOSTOP)
    bid, events = s.get(1, 2, 0)
    assert bid == 1 and nums(events) == [0, 1]
    bid, events = s.get(1, 2, 0)
    assert bid == 2 and nums(events) == [2]
    assert s.get(1, 2, 0) == (-1, [])  # no id used up by an empty get
    s.put([ev(3)], NOSTOP)
    assert s.get(1, 2, 0)[0] == 3


def test_ack_must_name_oldest_and_moves_cursor_to_last_boundary() -> None:
    s = item_store()
    s.subscribe(1)
    s.put(txn(0, 2) + txn(3, 1), NOSTOP)  # 0 1 2(B) 3 4(B)
    b1, _ = s.get(1, 2, 0)  # 0 1
    b2, _ = s.get(1, 2, 0)  # 2(B) 3
    b3, _ = s.get(1, 2, 0)  # 4(B)
    with pytest.raises(ProtocolError, match="is not the firstly"):
        s.ack(1, b2)
    with pytest.raises(ProtocolError, match="is not exist"):
        s.ack(1, 99)
    assert s.ack(1, b1) is None  # no boundary in the batch: the cursor does not move
    assert s.ack(1, b2) == LogPosition("mysql-bin.000001", 1002)
    assert s.ack(1, b3) == LogPosition("mysql-bin.000001", 1004)
    with pytest.raises(ProtocolError):
        s.ack(1, b3)  # already acked
    assert s.fill() == (0, 0)


def test_rollback_zero_rewinds_to_ack_and_new_ids_continue() -> None:
    s = item_store()
    s.subscribe(1)
    s.put(txn(0, 3), NOSTOP)
    b1, _ = s.get(1, 2, 0)
    s.ack(1, b1)
    s.get(1, 1, 0)
    s.get(1, 1, 0)
    s.rollback(1, 0)
    assert s.outstanding(1) == []
    bid, events = s.get(1, 10, 0)
    assert bid == 4 and nums(events) == [2, 3]


def test_rollback_of_a_batch_must_be_oldest_and_drops_later_marks() -> None:
    s = item_store()
    s.subscribe(1)
    s.put(txn(0, 3), NOSTOP)
    b1, _ = s.get(1, 1, 0)
    b2, _ = s.get(1, 1, 0)
    with pytest.raises(ProtocolError, match="is not the firstly"):
        s.rollback(1, b2)
    s.rollback(1, b1)
    assert s.outstanding(1) == []
    assert nums(s.get(1, 10, 0)[1]) == [0, 1, 2, 3]


def test_unsubscribed_client_cannot_get_or_ack() -> None:
    s = item_store()
    with pytest.raises(ProtocolError, match="subscribe first"):
        s.get(7, 1, 0)
    with pytest.raises(ProtocolError):
        s.ack(7, 1)
    with pytest.raises(ProtocolError):
        s.rollback(7, 0)


# ---------------------------------------------------------------- sizes and modes
def test_memsize_budget_at_least_one_and_may_go_one_over() -> None:
    s = EventStore(batch_mode=MEMSIZE, memunit=100)
    s.subscribe(1)
    s.put([ev(i, size=60) for i in range(5)] + [ev(5, size=1000)], NOSTOP)
    # budget 1 x 100 bytes: take while sum < 100 -> 60, 120 (one over)
    assert nums(s.get(1, 1, 0)[1]) == [0, 1]
    assert nums(s.get(1, 2, 0)[1]) == [2, 3, 4, 5][:4]  # budget 200: 60,120,180,1180
    s2 = EventStore(batch_mode=MEMSIZE, memunit=10)
    s2.subscribe(1)
    s2.put([ev(0, size=1000), ev(1, size=5)], NOSTOP)
    assert nums(s2.get(1, 1, 0)[1]) == [0]  # a single huge event still travels


def test_itemsize_counts_entries() -> None:
    s = item_store()
    s.subscribe(1)
    s.put([ev(i) for i in range(7)], NOSTOP)
    assert len(s.get(1, 3, 0)[1]) == 3
    assert len(s.get(1, 3, 0)[1]) == 3
    assert len(s.get(1, 3, 0)[1]) == 1


def test_ddl_isolation_ddl_travels_alone() -> None:
    s = item_store(ddl_isolation=True)
    s.subscribe(1)
    s.put([ev(0), ev(1, ddl=True), ev(2, ddl=True), ev(3)], NOSTOP)
    assert nums(s.get(1, 10, 0)[1]) == [0]
    assert nums(s.get(1, 10, 0)[1]) == [1]
    assert nums(s.get(1, 10, 0)[1]) == [2]
    assert nums(s.get(1, 10, 0)[1]) == [3]
    s2 = item_store()
    s2.subscribe(1)
    s2.put([ev(0), ev(1, ddl=True), ev(3)], NOSTOP)
    assert nums(s2.get(1, 10, 0)[1]) == [0, 1, 3]


# ---------------------------------------------------------------- timeouts
class FakeClock:
    """Advances one second per reading, so any wait shorter than that expires at the next check."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_poll_returns_partial_batch() -> None:
    s = item_store()
    s.subscribe(1)
    s.put([ev(0)], NOSTOP)
    assert nums(s.get(1, 10, 0)[1]) == [0]


def test_wait_returns_partial_batch_after_timeout() -> None:
    clock = FakeClock()
    s = item_store(clock=clock)
    s.subscribe(1)
    s.put([ev(0)], NOSTOP)
    result: list[tuple[int, list[Event]]] = []
    t = threading.Thread(target=lambda: result.append(s.get(1, 10, 0.05)))
    t.start()
    t.join(30)
    assert result and nums(result[0][1]) == [0]


def test_wait_returns_as_soon_as_batch_is_full() -> None:
    s = item_store()
    s.subscribe(1)
    result: list[tuple[int, list[Event]]] = []
    t = threading.Thread(target=lambda: result.append(s.get(1, 3, 3600)))
    t.start()
    s.put([ev(0), ev(1)], NOSTOP)
    s.put([ev(2), ev(3)], NOSTOP)
    t.join(30)
    assert result and nums(result[0][1]) == [0, 1, 2]


def test_blocking_get_waits_for_full_batch_and_close_wakes_it() -> None:
    s = item_store()
    s.subscribe(1)
    result: list[tuple[int, list[Event]]] = []
    t = threading.Thread(target=lambda: result.append(s.get(1, 5, None)))
    t.start()
    s.put([ev(0)], NOSTOP)
    t.join(0.2)
    assert t.is_alive()  # one event is not a full batch of five
    s.close()
    t.join(30)
    assert result and nums(result[0][1]) == [0]


# ---------------------------------------------------------------- back-pressure
def test_put_blocks_when_full_by_count_until_ack() -> None:
    s = item_store(capacity=4)
    s.subscribe(1)
    assert s.put([ev(i) for i in range(4)], NOSTOP)
    done = threading.Event()
    t = threading.Thread(target=lambda: (s.put([ev(4), ev(5)], NOSTOP), done.set()))
    t.start()
    assert not done.wait(0.3)
    bid, _ = s.get(1, 1, 0)
    s.ack(1, bid)  # frees one slot: not enough for two
    assert not done.wait(0.3)
    bid, _ = s.get(1, 1, 0)
    s.ack(1, bid)
    assert done.wait(30)
    t.join(30)
    assert s.fill()[0] == 4


def test_put_blocks_when_full_by_bytes_and_stop_aborts() -> None:
    s = item_store(max_bytes=100)
    s.subscribe(1)
    assert s.put([ev(i, payload=40) for i in range(2)], NOSTOP)  # 80 bytes
    stop = threading.Event()
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(s.put([ev(2, payload=40)], stop)))
    t.start()
    t.join(0.3)
    assert t.is_alive()
    stop.set()
    t.join(30)
    assert result == [False]
    assert s.fill() == (2, 80)


def test_oversized_batch_is_stored_in_chunks_with_bounded_memory() -> None:
    """A transaction far larger than the store flows through while the consumer acks mid-transaction."""
    s = item_store(capacity=8, max_bytes=200)
    s.subscribe(1)
    big = txn(0, 999)  # 1000 events of 10 bytes
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(s.put(big, NOSTOP)))
    t.start()
    got: list[int] = []
    peak = 0
    cursor = None
    while len(got) < len(big):
        bid, events = s.get(1, 5, 0)
        if bid == -1:
            time.sleep(0.01)
        peak = max(peak, s.fill()[1])
        got += nums(events)
        if bid != -1:
            cursor = s.ack(1, bid) or cursor
    t.join(30)
    assert result == [True]
    assert got == list(range(1000))
    assert peak <= 200
    assert cursor == LogPosition("mysql-bin.000001", 1999)


def test_huge_single_event_fits_an_empty_store() -> None:
    s = item_store(max_bytes=10)
    s.subscribe(1)
    assert s.put([ev(0, payload=1000)], NOSTOP)


def test_close_releases_blocked_producer() -> None:
    s = item_store(capacity=1)
    s.put([ev(0)], NOSTOP)
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(s.put([ev(1)], NOSTOP)))
    t.start()
    s.close()
    t.join(30)
    assert result == [False]


# ---------------------------------------------------------------- multiple clients
def test_clients_have_own_sequences_and_slots_free_at_min_ack() -> None:
    s = item_store(capacity=4)
    s.subscribe(1)
    s.subscribe(2)
    s.put([ev(i) for i in range(4)], NOSTOP)
    b = s.get(1, 4, 0)[0]
    assert b == 1
    s.ack(1, b)
    assert s.fill()[0] == 4  # client 2 still holds them
    b2, events = s.get(2, 2, 0)
    assert b2 == 1 and nums(events) == [0, 1]
    s.ack(2, b2)
    assert s.fill()[0] == 2
    s.unsubscribe(2)
    assert s.fill()[0] == 0


def test_new_subscriber_starts_at_first_event_still_in_store() -> None:
    s = item_store()
    s.put([ev(i) for i in range(3)], NOSTOP)
    s.subscribe(1)
    b, _ = s.get(1, 2, 0)
    s.ack(1, b)
    s.subscribe(2)
    assert nums(s.get(2, 10, 0)[1]) == [2]
    s3 = item_store()
    s3.put([ev(0)], NOSTOP)
    s3.subscribe(5)
    assert nums(s3.get(5, 10, 0)[1]) == [0]


def parser_txn(start: int, rows: int) -> list[Event]:
    """As the parser positions them: non-boundary events carry their transaction's start boundary."""
    body = [replace(ev(start + i), position=LogPosition("mysql-bin.000001", 1000 + start - 1)) for i in range(rows)]
    return [*body, ev(start + rows, boundary=True)]


def test_restart_each_client_starts_after_its_own_cursor() -> None:
    s = item_store()
    s.subscribe(1, LogPosition("mysql-bin.000001", 1002))
    s.subscribe(2, LogPosition("mysql-bin.000001", 1005))
    s.subscribe(3, LogPosition("mysql-bin.000001", 999))
    events = parser_txn(0, 2) + parser_txn(3, 2) + parser_txn(6, 1)  # boundaries end at 2, 5, 7
    s.put(events, NOSTOP)

    def offsets(got: list[Event]) -> list[int]:
        return [events.index(e) for e in got]

    assert offsets(s.get(1, 10, 0)[1]) == [3, 4, 5, 6, 7]
    assert offsets(s.get(2, 10, 0)[1]) == [6, 7]
    assert offsets(s.get(3, 10, 0)[1]) == list(range(8))


def test_cursorless_subscriber_gets_the_floor_as_cursor() -> None:
    s = item_store()
    s.set_floor(LogPosition("mysql-bin.000001", 900))
    assert s.subscribe(1) == LogPosition("mysql-bin.000001", 900)
    s.put([*txn(0, 1), ev(2)], NOSTOP)
    b, _ = s.get(1, 10, 0)
    s.ack(1, b)
    assert s.subscribe(2) == LogPosition("mysql-bin.000001", 1001)
    assert s.subscribe(3, LogPosition("mysql-bin.000001", 1)) is None


def test_floor_source_is_read_before_the_first_put() -> None:
    where = [LogPosition("mysql-bin.000001", 4)]
    s = item_store(floor_source=lambda: where[0])
    s.put([ev(0)], NOSTOP)
    where[0] = LogPosition("mysql-bin.000009", 4)  # the producer moved on: no longer a floor
    assert s.subscribe(1) == LogPosition("mysql-bin.000001", 4)


def test_chunked_put_into_an_empty_store_respects_the_byte_bound() -> None:
    s = item_store(capacity=64, max_bytes=100)
    s.subscribe(1)
    big = [ev(i, payload=30) for i in range(200)]  # 6000 bytes: stored in chunks
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(s.put(big, NOSTOP)))
    t.start()
    got = 0
    while got < 200:
        bid, events = s.get(1, 10, 0)
        assert s.fill()[1] <= 100
        if bid == -1:
            time.sleep(0.01)
        got += len(events)
        if bid != -1:
            s.ack(1, bid)
    t.join(30)
    assert result == [True]
