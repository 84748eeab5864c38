"""ETL and count requests: find the mapping(s), check the task runs here, take the ETL lock, call the writer.

Deviation from canal: the sync switch is NOT turned off during an ETL. The writer serializes each
ETL chunk's select+write with stream batches (``Writer.sync_lock``), so the stream keeps flowing and
a streamed row is never overwritten by an older snapshot. For that the ETL must run on the node
that streams the mapping's (destination, group); other nodes report ``NotHere`` with the holder.
The lock is canal's: ``/canal-adapter/sync-etl/<type>-<destination>`` with ZooKeeper, in-memory otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from adapter.node.mappings import MappingStore, WriterSlot, effective_destination
from adapter.writers.base import EtlResult, SupportsCountInfo, SupportsEtl

log = logging.getLogger(__name__)


class EtlLocks(Protocol):
    """Named try-locks: coordination's ``ZkEtlLock`` or ``LocalEtlLock``."""

    def try_acquire(self, name: str) -> bool: ...

    def release(self, name: str) -> None: ...


class Placement(Protocol):
    """Which node runs a task (``TaskSpec.task_id``): this one, or whose REST address."""

    def holds(self, task_id: str) -> bool: ...

    def holder(self, task_id: str) -> str | None: ...


@dataclass(frozen=True)
class Reply:
    """An HTTP status and canal's JSON body."""

    status: int
    body: Any


class NotHere(Exception):
    """The task runs on another node (``holder`` = its REST host:port, None when nobody runs it)."""

    def __init__(self, task_id: str, holder: str | None) -> None:
        self.task_id, self.holder = task_id, holder
        super().__init__(f"task {task_id} runs on {holder or 'no node right now'}")


def _fail(status: int, message: str) -> Reply:
    return Reply(status, {"succeeded": False, "errorMessage": message})


class EtlService:
    def __init__(self, store: MappingStore, locks: EtlLocks, placement: Placement | None = None,
                 progress_every_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.locks, self.placement = store, locks, placement
        self.progress_every_s, self.clock = progress_every_s, clock

    def _targets(self, writer_type: str, task: str, key: str | None) -> list[tuple[WriterSlot, Any]]:
        found = self.store.find(writer_type, task, key)
        if found:
            return found
        # canal: the task may be a destination name → every mapping of that destination
        out = []
        for s, specs in self.store.bindings().items():
            if (s.name.lower() == writer_type.lower() and s.task.destination == task
                    and (key is None or s.spec.key.lower() == key.lower())):
                out += [(s, spec) for spec in specs if effective_destination(spec.header, s) == task]
        return out

    def _check_here(self, targets: Sequence[tuple[WriterSlot, Any]]) -> None:
        if self.placement is None:
            return
        for s, _ in targets:
            if not self.placement.holds(s.task.task_id):
                raise NotHere(s.task.task_id, self.placement.holder(s.task.task_id))

    def etl(self, writer_type: str, task: str, key: str | None, params: Sequence[str]) -> Reply:
        """Run an ETL synchronously (as canal). Raises ``NotHere`` when another node must run it."""
        targets = self._targets(writer_type, task, key)
        if not targets:
            return _fail(404, f"task {task!r} not found for writer {writer_type!r}"
                              + (f" with key {key!r}" if key else ""))
        for s, _ in targets:
            if not isinstance(s.writer, SupportsEtl):
                return _fail(400, f"writer {s.name!r} does not support ETL")
        self._check_here(targets)
        dest = targets[0][0].task.destination
        lock = f"{writer_type}-{dest or task}"
        if not self.locks.try_acquire(lock):
            return _fail(409, f"{task} 有其他进程正在导入中, 请稍后再试")
        try:
            results = [self._run_one(s, spec, task, params) for s, spec in targets]
        finally:
            self.locks.release(lock)
        ok = all(r.succeeded for r in results)
        body: dict[str, Any] = {"succeeded": ok,
                                "resultMessage": "\n".join(r.result_message for r in results if r.result_message)}
        errors = [r.error_message for r in results if r.error_message]
        if errors:
            body["errorMessage"] = "\n".join(errors)
        return Reply(200, body)

    def _run_one(self, slot: WriterSlot, spec: Any, task: str, params: Sequence[str]) -> EtlResult:
        writer = slot.writer
        assert isinstance(writer, SupportsEtl)
        info = {"writer": slot.name, "key": slot.spec.key, "task": spec.header.task,
                "destination": slot.task.destination}
        last = [self.clock()]

        def progress(rows: int) -> None:
            now = self.clock()
            if now - last[0] >= self.progress_every_s:
                last[0] = now
                log.info("etl progress", extra={**info, "rows": rows})

        log.info("etl started", extra={**info, "params": list(params)})
        try:
            result = writer.etl(spec, list(params), progress)
        except Exception as e:  # the writer failed: report it in canal's shape, keep serving
            log.exception("etl failed", extra=info)
            return EtlResult(False, "", f"{spec.header.task} etl failed! ==>{type(e).__name__}: {e}")
        log.info("etl finished", extra={**info, "succeeded": result.succeeded, "rows": result.rows})
        return result

    def count(self, writer_type: str, task: str, key: str | None) -> Reply:
        targets = self.store.find(writer_type, task, key)
        if not targets:
            return _fail(404, f"task {task!r} not found for writer {writer_type!r}")
        slot, spec = targets[0]
        writer = slot.writer
        try:
            if isinstance(writer, SupportsCountInfo):
                return Reply(200, writer.count_info(spec))
            if isinstance(writer, SupportsEtl):
                return Reply(200, {"count": writer.count(spec)})
        except Exception as e:
            log.exception("count failed", extra={"writer": slot.name, "task": task})
            return _fail(502, f"count failed: {type(e).__name__}: {e}")
        return _fail(400, f"writer {slot.name!r} does not support count")
