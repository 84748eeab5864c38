"""FairLock grants the lock in arrival order (an ETL page is not starved by the stream)."""

from __future__ import annotations

import threading
import time

from adapter.writers.es.fairlock import FairLock


def test_waiters_are_served_in_arrival_order() -> None:
    lock = FairLock()
    order: list[str] = []
    lock.acquire()

    def worker(name: str) -> None:
        with lock:
            order.append(name)

    threads = []
    for i, name in enumerate(["etl", "stream-1", "stream-2"]):
        t = threading.Thread(target=worker, args=(name,))
        t.start()
        threads.append(t)
        while lock._next_ticket != i + 2:  # wait until this thread holds its ticket
            time.sleep(0.001)
    lock.release()
    for t in threads:
        t.join(timeout=10)
    assert order == ["etl", "stream-1", "stream-2"]


def test_a_releasing_thread_queues_behind_a_waiter() -> None:
    lock = FairLock()
    got: list[str] = []
    lock.acquire()
    waiter = threading.Thread(target=lambda: (lock.acquire(), got.append("waiter"), lock.release()))
    waiter.start()
    while lock._next_ticket != 2:
        time.sleep(0.001)
    lock.release()
    with lock:  # re-acquiring right away must wait for the waiter's turn
        got.append("again")
    waiter.join(timeout=10)
    assert got == ["waiter", "again"]
