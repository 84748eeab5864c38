"""The per-destination event store: a bounded ring buffer with per-client get/ack sequences and batches.

canal's MemoryEventStoreWithBuffer plus the batch marks of its MetaManager, extended to several
client ids per destination: each client has its own get and ack sequence and its own batch ids
(starting at 1 per store, i.e. per instance start). Slots are freed up to the minimum ack over the
subscribed clients. ``put`` blocks while the ring is full by count or by bytes (back-pressure).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from adapter.errors import ProtocolError
from adapter.server.events import Event, LogPosition

MEMSIZE = "MEMSIZE"
ITEMSIZE = "ITEMSIZE"
_STOP_POLL = 0.2  # seconds between checks of the producer's stop flag while blocked
_CANCEL_POLL = 1.0  # seconds between checks of a waiting consumer's cancel callback


@dataclass(slots=True)
class _Batch:
    start: int
    end: int  # exclusive
    ack_position: LogPosition | None  # position of the batch's last boundary event


@dataclass(slots=True)
class _Client:
    get_seq: int
    ack_seq: int
    skip_until: LogPosition | None  # after a restart: skip events at or before this cursor
    next_batch: int = 1
    batches: OrderedDict[int, _Batch] = field(default_factory=OrderedDict)


class EventStore:
    """Bounded ring of Events (implements ``EventSink``).

    ``capacity`` bounds the entry count, ``max_bytes`` the bytes held (``len(entry)`` summed).
    A batch that does not fit an empty store is stored in chunks; anything fits once the store is empty.
    """

    def __init__(
        self,
        *,
        capacity: int = 16384,
        max_bytes: int = 16384 * 1024,
        memunit: int = 1024,
        batch_mode: str = MEMSIZE,
        ddl_isolation: bool = False,
        clock: Callable[[], float] = time.monotonic,
        floor_source: Callable[[], LogPosition | None] | None = None,
    ) -> None:
        if capacity <= 0 or max_bytes <= 0 or memunit <= 0:
            raise ValueError("capacity, max_bytes and memunit must be positive")
        if batch_mode not in (MEMSIZE, ITEMSIZE):
            raise ValueError(f"batch_mode must be MEMSIZE or ITEMSIZE, not {batch_mode!r}")
        self.capacity, self.max_bytes, self.memunit = capacity, max_bytes, memunit
        self.batch_mode, self.ddl_isolation = batch_mode, ddl_isolation
        self._clock = clock
        # where the producer starts (the parser's start position): read before the first put, so it
        # is a boundary before every event this store will hold
        self._floor_source = floor_source
        self._ring: list[Event | None] = [None] * capacity
        self._put_seq = 0  # next sequence to write
        self._free_seq = 0  # every sequence below this is released
        self._used_bytes = 0
        self._floor: LogPosition | None = None  # last boundary position released (or the resume point)
        self._clients: dict[int, _Client] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._producer_blocked = False

    # ------------------------------------------------------------ producer side
    def put(self, events: Sequence[Event], stop: threading.Event) -> bool:
        """Store ``events`` in order, blocking while full. False if ``stop`` was set or the store closed.

        A batch that fits an empty store is stored atomically (nothing is stored when False is
        returned). A larger one is stored piece by piece as room appears, so a transaction far larger
        than the store still flows while consumers ack; on stop a prefix of it may be stored already.
        """
        n = len(events)
        with self._cond:
            self._read_floor()
            first, size = self._chunk(events, 0)
            if first == n:
                if not self._wait_room(n, size, stop):
                    return False
                self._append(events, size)
                return True
            i = 0
            while i < n:
                if not self._wait_room(1, len(events[i].entry), stop):
                    return False
                j, size = i, 0
                while j < n and self._room(j - i + 1, size + len(events[j].entry)):
                    size += len(events[j].entry)
                    j += 1
                self._append(events[i:j], size)
                i = j
        return True

    def _wait_room(self, count: int, size: int, stop: threading.Event) -> bool:
        while not self._closed and not self._room(count, size):
            if stop.is_set():
                return False
            # a consumer waiting for a fuller batch must not wait for a producer that waits for it
            self._producer_blocked = True
            self._cond.notify_all()
            self._cond.wait(_STOP_POLL)
        self._producer_blocked = False
        return not self._closed and not stop.is_set()

    def _append(self, events: Sequence[Event], size: int) -> None:
        for e in events:
            self._ring[self._put_seq % self.capacity] = e
            self._put_seq += 1
        self._used_bytes += size
        self._cond.notify_all()

    def _read_floor(self) -> None:
        if self._floor is None and self._put_seq == 0 and self._floor_source is not None:
            self._floor = self._floor_source()

    def _chunk(self, events: Sequence[Event], i: int) -> tuple[int, int]:
        """The longest run from ``i`` that fits an empty store (at least one event), and its bytes."""
        j, size = i, 0
        while j < len(events) and j - i < self.capacity:
            w = len(events[j].entry)
            if j > i and size + w > self.max_bytes:
                break
            size += w
            j += 1
        return j, size

    def _room(self, count: int, size: int) -> bool:
        held = self._put_seq - self._free_seq
        if held + count > self.capacity:
            return False
        if self._used_bytes + size <= self.max_bytes:
            return True
        return held == 0 and count == 1  # one event larger than the whole budget travels alone

    # ------------------------------------------------------------ clients
    def subscribe(self, client_id: int, cursor: LogPosition | None = None) -> LogPosition | None:
        """Register a client (idempotent). A new client starts at the first event still held; with a
        ``cursor`` (after a restart) events at or before it are skipped. Returns the position a
        cursor-less client should persist as its cursor (the store's floor), if known."""
        with self._cond:
            if client_id not in self._clients:
                self._clients[client_id] = _Client(self._free_seq, self._free_seq, cursor)
            self._read_floor()
            return None if cursor is not None else self._floor

    def unsubscribe(self, client_id: int) -> None:
        with self._cond:
            if self._clients.pop(client_id, None) is not None:
                self._release()

    def is_subscribed(self, client_id: int) -> bool:
        with self._cond:
            return client_id in self._clients

    def set_floor(self, position: LogPosition | None) -> None:
        """The position the parser resumes from (a boundary before every event this store will hold)."""
        with self._cond:
            self._floor = position

    def get(self, client_id: int, fetch_size: int, timeout: float | None,
            cancel: Callable[[], bool] | None = None) -> tuple[int, list[Event]]:
        """Next batch for ``client_id``: ``timeout`` 0 polls, None blocks until a full batch, > 0 waits
        that many seconds for a full batch and then returns what there is. ``(-1, [])`` when empty.

        ``cancel`` is checked about every second while waiting (the requester went away): then
        nothing is taken, so no batch is handed to a connection that can no longer receive it.
        """
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            c = self._client(client_id)
            while True:
                self._skip(c)
                end, full = self._collect(c, fetch_size)
                if full or self._closed or self._producer_blocked or self._clients.get(client_id) is not c:
                    break
                remaining = None if deadline is None else deadline - self._clock()
                if remaining is not None and remaining <= 0:
                    break
                if cancel is not None:
                    remaining = _CANCEL_POLL if remaining is None else min(remaining, _CANCEL_POLL)
                self._cond.wait(remaining)
                if cancel is not None and cancel():
                    return -1, []
            if end == c.get_seq or self._clients.get(client_id) is not c:
                return -1, []
            events = [self._at(s) for s in range(c.get_seq, end)]
            ack_pos = next((e.position for e in reversed(events) if e.boundary), None)
            batch_id = c.next_batch
            c.next_batch += 1
            c.batches[batch_id] = _Batch(c.get_seq, end, ack_pos)
            c.get_seq = end
            return batch_id, events

    def ack(self, client_id: int, batch_id: int) -> LogPosition | None:
        """Acknowledge the oldest outstanding batch; frees its slots (once every client passed them).

        Returns the new cursor (the batch's last boundary event position) or None if it had none.
        """
        with self._cond:
            c = self._client(client_id)
            self._check_oldest(c, client_id, batch_id, "ack")
            batch = c.batches.pop(batch_id)
            c.ack_seq = batch.end
            self._release()
            return batch.ack_position

    def rollback(self, client_id: int, batch_id: int = 0) -> None:
        """Rewind the client's get sequence to its ack sequence. ``batch_id`` != 0 must be the oldest;
        every later batch mark is dropped too, since its data will be handed out again (canal keeps them)."""
        with self._cond:
            c = self._client(client_id)
            if batch_id != 0:
                self._check_oldest(c, client_id, batch_id, "rollback")
            c.batches.clear()
            c.get_seq = c.ack_seq

    def close(self) -> None:
        """Wake every blocked producer and consumer; later puts return False."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # ------------------------------------------------------------ observation
    @property
    def floor(self) -> LogPosition | None:
        """A boundary at or before every event not yet released: a safe cursor for any client."""
        with self._cond:
            self._read_floor()
            return self._floor

    def fill(self) -> tuple[int, int]:
        """(events held, bytes held)."""
        with self._cond:
            return self._put_seq - self._free_seq, self._used_bytes

    def outstanding(self, client_id: int) -> list[int]:
        with self._cond:
            c = self._clients.get(client_id)
            return list(c.batches) if c else []

    # ------------------------------------------------------------ internals
    def _client(self, client_id: int) -> _Client:
        c = self._clients.get(client_id)
        if c is None:
            raise ProtocolError(f"clientId:{client_id} should subscribe first")
        return c

    @staticmethod
    def _check_oldest(c: _Client, client_id: int, batch_id: int, what: str) -> None:
        if batch_id not in c.batches:
            raise ProtocolError(f"{what} error, clientId:{client_id} batchId:{batch_id} is not exist, please check")
        first = next(iter(c.batches))
        if batch_id != first:
            raise ProtocolError(f"batchId:{batch_id} is not the firstly:{first}")

    def _at(self, seq: int) -> Event:
        e = self._ring[seq % self.capacity]
        assert e is not None, f"slot {seq} was released while still referenced"
        return e

    def _skip(self, c: _Client) -> None:
        moved = False
        while c.skip_until is not None and c.get_seq == c.ack_seq and c.get_seq < self._put_seq:
            e = self._at(c.get_seq)
            # a boundary's position is where it ends; any other event carries the boundary its
            # transaction starts at, so it lies after that position
            if e.position > c.skip_until or (not e.boundary and e.position == c.skip_until):
                c.skip_until = None
                break
            c.get_seq += 1
            c.ack_seq += 1
            moved = True
        if moved:
            self._release()

    def _collect(self, c: _Client, fetch_size: int) -> tuple[int, bool]:
        """End sequence of the next batch for ``c`` and whether it is full (budget reached or DDL cut)."""
        seq, count, size = c.get_seq, 0, 0
        mem = self.batch_mode == MEMSIZE
        budget = max(fetch_size, 1) * (self.memunit if mem else 1)
        while seq < self._put_seq:
            if (size if mem else count) >= budget:
                return seq, True
            e = self._at(seq)
            if self.ddl_isolation and e.is_ddl:
                return (seq + 1 if count == 0 else seq), True
            seq += 1
            count += 1
            size += (e.size or len(e.entry)) if mem else 1
        return seq, (size if mem else count) >= budget

    def _release(self) -> None:
        if not self._clients:
            return
        low = min(c.ack_seq for c in self._clients.values())
        if low <= self._free_seq:
            return
        for seq in range(self._free_seq, low):
            i = seq % self.capacity
            e = self._ring[i]
            if e is not None:
                self._used_bytes -= len(e.entry)
                if e.boundary:
                    self._floor = e.position
            self._ring[i] = None
        self._free_seq = low
        self._cond.notify_all()
