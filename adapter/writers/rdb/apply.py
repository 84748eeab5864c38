"""Applying keyed operations: one transaction per partition, batched statements, exact-order fallback.

A partition first runs collapsed (per table: one chunked DELETE ... IN, then chunked executemany
upserts). If the target rejects that with an integrity error, which can depend on order (a unique
value moving between rows, a foreign key), the partition is rolled back and re-run in exact source
order (``plan.runs``). If that fails too, a diagnosis pass (always rolled back) finds the row and
the error names table and key. Partitions run in parallel on a small thread pool.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from adapter.errors import CanalError, FatalError, RetriableError
from adapter.writers.base import chunks
from adapter.writers.rdb import sqlbuild
from adapter.writers.rdb.binding import TableBinding
from adapter.writers.rdb.dberrors import driver_message, is_constraint, is_deadlock, translate
from adapter.writers.rdb.plan import DELETE_OP, Op, collapse, partition, runs

log = logging.getLogger(__name__)
#: Attempts of one partition transaction that lost a deadlock to another partition (or another client).
_DEADLOCK_TRIES = 4


def _upsert_stmt(binding: TableBinding, family: str, columns: tuple[str, ...]) -> Any:
    stmt = binding.upserts.get(columns)
    if stmt is None:
        stmt = binding.upserts[columns] = sqlbuild.upsert(family, binding.table, binding.key_cols, columns)
    return stmt


class Applier:
    """Runs planned operations against one engine."""

    def __init__(self, engine: Engine, family: str, commit_size: int, threads: int) -> None:
        self.engine = engine
        self.family = family
        self.commit_size = commit_size
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # ------------------------------------------------------------------ entry points
    def apply(self, groups: Sequence[list[Op]]) -> None:
        """Apply row groups (partitioned when ``threads`` > 1); raises RetriableError or FatalError."""
        if not groups:
            return
        parts = partition(groups, self.threads)
        if len(parts) == 1:
            self._partition(parts[0])
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="rdb-partition")
        futures: list[Future[None]] = [self._pool.submit(self._partition, p) for p in parts]
        errors: list[BaseException] = []
        for f in futures:  # wait for all: a partition still running must not outlive the call
            exc = f.exception()
            if exc is not None:
                errors.append(exc)
        if errors:
            # Some partitions may have committed; the replayed batch is idempotent, so that is safe.
            fatal = [e for e in errors if isinstance(e, FatalError)]
            raise (fatal or errors)[0]

    def in_transaction(self, what: str, work: Callable[[Connection], None]) -> None:
        """Run ``work`` in one transaction with error translation (truncate, DDL helpers)."""
        try:
            with self.engine.begin() as conn:
                work(conn)
        except CanalError:
            raise
        except Exception as e:
            raise translate(e, what) from e

    # ------------------------------------------------------------------ one partition
    def _partition(self, ops: list[Op]) -> None:
        for attempt in range(_DEADLOCK_TRIES):
            try:
                self._partition_once(ops)
                return
            except RetriableError as e:
                cause = e.__cause__
                if attempt + 1 >= _DEADLOCK_TRIES or cause is None or not is_deadlock(cause):
                    raise
                log.info("rdb: partition hit a lock conflict; retrying it", extra={"attempt": attempt + 1})
                time.sleep(0.05 * (attempt + 1) * random.random())

    def _partition_once(self, ops: list[Op]) -> None:
        where = ", ".join(dict.fromkeys(op.binding.name for op in ops))
        try:
            try:
                with self.engine.begin() as conn:
                    self._collapsed(conn, ops)
                return
            except Exception as e:
                if not isinstance(e, sa.exc.IntegrityError):
                    raise
                log.info("rdb: collapsed batch hit a constraint; re-running in exact order",
                         extra={"tables": where, "error": driver_message(e)})
            with self.engine.begin() as conn:
                for run in runs(ops):
                    self._run(conn, run)
        except CanalError:
            raise
        except Exception as e:
            if is_constraint(e):
                raise self._diagnose(ops, e) from e
            raise translate(e, where) from e

    def _collapsed(self, conn: Connection, ops: list[Op]) -> None:
        for work in collapse(ops):
            b = work.binding
            _sort_by_key(work.deletes, work.upserts, b.key_cols)
            for chunk in chunks(work.deletes, self.commit_size):
                conn.execute(sqlbuild.delete_keys(b.table, b.key_cols, chunk))
            by_cols: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for row in work.upserts:
                by_cols.setdefault(tuple(row), []).append(row)
            for cols, rows in by_cols.items():
                stmt = _upsert_stmt(b, self.family, cols)
                for part in chunks(rows, self.commit_size):
                    conn.execute(stmt, list(part))

    def _run(self, conn: Connection, run: Sequence[Op]) -> None:
        b = run[0].binding
        if run[0].kind == DELETE_OP:
            for chunk in chunks([op.key for op in run], self.commit_size):
                conn.execute(sqlbuild.delete_keys(b.table, b.key_cols, chunk))
            return
        stmt = _upsert_stmt(b, self.family, tuple(run[0].values or ()))
        for part in chunks(run, self.commit_size):
            conn.execute(stmt, [op.values for op in part])

    def _diagnose(self, ops: list[Op], first: BaseException) -> CanalError:
        """Find the row the target rejects (in rolled-back transactions) and name table and key."""
        rs = runs(ops)
        try:
            with self.engine.connect() as conn:
                failed = None
                with conn.begin() as tx:
                    for i, run in enumerate(rs):
                        try:
                            self._run(conn, run)
                        except Exception as e:
                            if not is_constraint(e):
                                raise
                            failed = i
                            break
                    tx.rollback()
                if failed is not None:
                    with conn.begin() as tx:
                        for run in rs[:failed]:
                            self._run(conn, run)
                        for op in rs[failed]:
                            try:
                                self._run(conn, [op])
                            except Exception as e:
                                if not is_constraint(e):
                                    raise
                                tx.rollback()
                                return _row_error(op, e)
                        tx.rollback()
        except RetriableError as e:
            return e
        except Exception as e:
            if not is_constraint(e):
                return translate(e, "diagnosis")
        keys = [f"{op.binding.name}{list(op.key)}" for op in ops[:5]]
        return FatalError(f"rdb: batch rejected by the target ({driver_message(first)}); keys include {keys}")


def _sort_by_key(deletes: list[tuple[Any, ...]], upserts: list[dict[str, Any]], key_cols: Sequence[str]) -> None:
    """Key order: concurrent transactions then take row locks in the same order (fewer deadlocks)."""
    try:
        deletes.sort()
        upserts.sort(key=lambda r: tuple(r[k] for k in key_cols))
    except TypeError:  # keys of mixed or unorderable types (None, JSON): keep arrival order
        pass


def _row_error(op: Op, e: BaseException) -> FatalError:
    b = op.binding
    key = ", ".join(f"{k}={v!r}" for k, v in zip(b.key_cols, op.key, strict=False))
    what = "delete" if op.kind == DELETE_OP else "upsert"
    src = f"{op.dml.database}.{op.dml.table} {op.dml.type}" + (f" at {op.dml.position}" if op.dml.position else "")
    return FatalError(f"rdb: {b.name}: {what} of key ({key}) rejected: {driver_message(e)} (source {src})")
