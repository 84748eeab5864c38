"""The worker loop of one (instance, group): switch → get → convert → route → write → ack / rollback.

Decided by error class, never by message: writers' ``FatalError`` → rollback and switch the
destination off at once; any other writer error → rollback, back off, retry (each retry is a fresh
get after rollback, as canal). After ``attempts`` failures: ``stop`` (default) rolls back and
switches off, so nothing is acked; ``skip`` writes the batch to a dead-letter file, then acks.
Source faults (network, server restart, failover) → disconnect, back off, reconnect; the server
re-delivers everything not acked. A batch is acked only after every writer applied it.
Everything with I/O is a constructor argument, so each row of that table is a unit test.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from adapter.dml import Dml
from adapter.errors import FatalError
from adapter.node.configload import TaskSpec
from adapter.node.convert import entries_to_dmls
from adapter.node.deadletter import DeadLetters
from adapter.node.mappings import WriterSlot
from adapter.node.metrics import NodeMetrics
from adapter.node.router import Router
from adapter.node.source import BatchSource
from adapter.writers.base import Routed

log = logging.getLogger(__name__)


class Switch(Protocol):
    """The per-destination sync switch (coordination's ``ZkSwitch`` / ``LocalSwitch``)."""

    def is_on(self, destination: str) -> bool: ...

    def set(self, destination: str, on: bool) -> None: ...

    def wait_on(self, destination: str, stop_event: threading.Event, timeout: float | None) -> bool: ...


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off: ``base * factor**(failures-1)``, capped."""

    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0

    def delay(self, failures: int) -> float:
        return min(self.cap, self.base * self.factor ** max(0, failures - 1))


@dataclass(frozen=True)
class WorkerSettings:
    batch_size: int = 500  # canal.tcp.batch.size: entries per get
    timeout_ms: int = 500  # canal.conf.timeout
    sync_batch_size: int = 1000  # rows per writer call
    attempts: int | None = None  # None = retry forever (retries: -1)
    on_exhausted: str = "stop"  # stop | skip
    off_disconnect_s: float = 60.0  # switch off longer than this → disconnect (canal: 1 minute)
    writer_threads: int = 4


def chunk_rows(items: Sequence[Routed], rows: int) -> list[Sequence[Routed]]:
    """Split into calls of about ``rows`` rows (a DDL counts 1), canal's ``syncBatchSize`` rule."""
    if len(items) <= 1:
        return [items] if items else []
    out: list[Sequence[Routed]] = []
    start = count = 0
    for i, it in enumerate(items):
        count += len(it.dml.data) or 1
        if count >= rows:
            out.append(items[start : i + 1])
            start, count = i + 1, 0
    if start < len(items):
        out.append(items[start:])
    return out


class Worker:
    """Consumes one task until ``stop()``. ``run()`` is the loop; ``poll_once()`` one step of it."""

    def __init__(
        self,
        task: TaskSpec,
        source: BatchSource,
        router: Router,
        switch: Switch,
        *,
        settings: WorkerSettings | None = None,
        backoff: Backoff | None = None,
        dead_letters: DeadLetters | None = None,
        metrics: NodeMetrics | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] | None = None,
        prepare: Callable[[], None] | None = None,
    ) -> None:
        self.task = task
        self.dest, self.group = task.destination, task.group_id
        self.source, self.router, self.switch = source, router, switch
        self.settings = settings or WorkerSettings()
        self.backoff = backoff or Backoff()
        self.dead_letters = dead_letters
        self.metrics = metrics or NodeMetrics()
        self.clock = clock
        self.stop_event = threading.Event()
        self._sleep = sleep or self.stop_event.wait
        self._prepare = prepare  # e.g. open writers that were unreachable at startup
        self.connected = False
        self.failures = 0  # failed attempts of the current batch
        self.source_failures = 0
        self._off_since: float | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._log = {"destination": self.dest, "group": self.group, "client_id": task.client_id}

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"worker-{self.dest}-{self.group}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 60.0) -> None:
        """Ask the loop to end and wait for it (the current batch finishes or is rolled back first)."""
        self.stop_event.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def paused(self) -> bool:
        """True while the loop waits for the sync switch (it makes no get while paused)."""
        return self._off_since is not None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        self.metrics.set_running(self.dest, self.group, True)
        log.info("worker started", extra=self._log)
        try:
            while not self.stop_event.is_set():
                try:
                    if self._switch_on() and self._ensure_connected():
                        self.poll_once()
                except Exception:  # never die: log, back off, go on
                    log.exception("worker loop error", extra=self._log)
                    self._drop_connection()
                    self._sleep(self.backoff.cap)
        finally:
            self._drop_connection()
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            self.metrics.set_running(self.dest, self.group, False)
            log.info("worker stopped", extra=self._log)

    # ------------------------------------------------------------ steps
    def _switch_on(self) -> bool:
        if self.switch.is_on(self.dest):
            if self._off_since is not None:
                log.info("sync switch on: resuming", extra=self._log)
                self._off_since, self.failures = None, 0
            return True
        now = time.monotonic()
        if self._off_since is None:
            self._off_since = now
            log.info("sync switch off: paused", extra=self._log)
        elif self.connected and now - self._off_since > self.settings.off_disconnect_s:
            self._drop_connection()
        self.switch.wait_on(self.dest, self.stop_event, 1.0)
        return False

    def _ensure_connected(self) -> bool:
        if self.connected:
            return True
        try:
            if self._prepare is not None:
                self._prepare()
            self.source.connect()
        except Exception as e:
            self.source_failures += 1
            self.metrics.error(self.dest, self.group)
            log.warning("cannot connect (canal server or writer target); retrying",
                        extra={**self._log, "error": str(e), "attempt": self.source_failures})
            self._sleep(self.backoff.delay(self.source_failures))
            return False
        self.connected, self.source_failures = True, 0
        log.info("connected to the canal server", extra=self._log)
        return True

    def _drop_connection(self) -> None:
        if self.connected:
            self.connected = False
            try:
                self.source.disconnect()
            except Exception as e:  # closing a broken connection may fail too; it is gone either way
                log.debug("disconnect failed", extra={**self._log, "error": str(e)})

    def _source_fault(self, what: str, e: BaseException) -> str:
        self.source_failures += 1
        self.metrics.error(self.dest, self.group)
        log.warning(f"canal server {what} failed; reconnecting", extra={**self._log, "error": str(e)})
        self._drop_connection()
        self._sleep(self.backoff.delay(self.source_failures))
        return "source-error"

    def poll_once(self) -> str:
        """One get → apply → ack cycle. Returns what happened (for tests and logs)."""
        try:
            batch_id, entries = self.source.get(self.settings.batch_size, self.settings.timeout_ms)
        except Exception as e:
            return self._source_fault("get", e)
        if batch_id == -1 and not entries:
            self.metrics.idle(self.dest, self.group)
            return "empty"
        dmls = entries_to_dmls(entries, self.dest, self.group, int(self.clock() * 1000))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("batch received", extra={**self._log, "batch_id": batch_id, "entries": len(entries),
                                                "dmls": len(dmls)})
        try:
            self.apply(dmls)
        except FatalError as e:
            return self._stop(batch_id, e)
        except Exception as e:
            return self._failed(batch_id, dmls, e)
        return self._ack(batch_id, dmls)

    def apply(self, dmls: Sequence[Dml]) -> None:
        """Route and hand each writer its items (writers in parallel); raise the worst error."""
        work = [(s, items) for s, items in self.router.route(self.dest, self.group, dmls) if items]
        if not work:
            return
        if len(work) == 1:
            self._write(*work[0])
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=max(1, self.settings.writer_threads),
                                            thread_name_prefix=f"writers-{self.dest}-{self.group}")
        futures = [self._pool.submit(self._write, s, items) for s, items in work]
        errors = [e for e in (f.exception() for f in futures) if e is not None]
        if errors:
            raise next((e for e in errors if isinstance(e, FatalError)), errors[0])

    def _write(self, slot: WriterSlot, items: Sequence[Routed]) -> None:
        writer = slot.writer
        for chunk in chunk_rows(items, self.settings.sync_batch_size):
            with writer.sync_lock:
                writer.write(chunk)

    def _ack(self, batch_id: int, dmls: Sequence[Dml]) -> str:
        try:
            self.source.ack(batch_id)
        except Exception as e:
            return self._source_fault("ack", e)  # applied but not acked: re-delivered, writers are idempotent
        self.failures = 0
        if dmls:
            last = dmls[-1]
            lag = self.clock() * 1000 - max(d.es for d in dmls) if last.es else None
            self.metrics.acked(self.dest, self.group, sum(len(d.data) for d in dmls), lag, last.position)
        return "acked"

    def _rollback(self) -> None:
        try:
            self.source.rollback()
        except Exception as e:
            log.warning("rollback failed; reconnecting (the server re-delivers on connect)",
                        extra={**self._log, "error": str(e)})
            self._drop_connection()

    def _failed(self, batch_id: int, dmls: Sequence[Dml], e: BaseException) -> str:
        self.failures += 1
        self.metrics.error(self.dest, self.group)
        attempts = self.settings.attempts
        info = {**self._log, "batch_id": batch_id, "attempt": self.failures, "error": f"{type(e).__name__}: {e}",
                "position": dmls[0].position if dmls else ""}
        if attempts is not None and self.failures >= attempts:
            if self.settings.on_exhausted == "skip":
                return self._skip(batch_id, dmls, e, info)
            return self._stop(batch_id, e)
        log.warning("batch failed; rolled back, will retry", extra=info)
        self._rollback()
        self.metrics.retry(self.dest, self.group)
        self._sleep(self.backoff.delay(self.failures))
        return "retry"

    def _skip(self, batch_id: int, dmls: Sequence[Dml], e: BaseException, info: dict[str, object]) -> str:
        if self.dead_letters is None:
            return self._stop(batch_id, e)
        try:
            path = self.dead_letters.write(self.dest, self.group, batch_id, dmls, e)
        except Exception as dl_error:  # cannot keep it: do not drop it either
            log.error("dead-letter write failed; stopping instead of skipping",
                      extra={**info, "dead_letter_error": str(dl_error)})
            return self._stop(batch_id, e)
        log.error("batch skipped after retries; written to dead-letter file", extra={**info, "file": str(path)})
        self.metrics.skip(self.dest, self.group)
        outcome = self._ack(batch_id, dmls)
        return "skipped" if outcome == "acked" else outcome

    def _stop(self, batch_id: int, e: BaseException) -> str:
        self._rollback()
        self.failures = 0
        self.metrics.stop(self.dest, self.group)
        log.error("batch failed for good; rolled back and sync switch turned OFF (turn it on after fixing)",
                  extra={**self._log, "batch_id": batch_id, "error": f"{type(e).__name__}: {e}"})
        try:
            self.switch.set(self.dest, False)
        except Exception as sw_error:  # still stop locally: never go on past a failed batch
            log.error("could not turn the sync switch off", extra={**self._log, "error": str(sw_error)})
            self.stop_event.set()
        return "stopped"
