"""Full load (ETL) of one rdb mapping: keyset pagination over the source, idempotent chunk upserts.

Each chunk is ``SELECT cols FROM src WHERE (etlCondition) AND key > :last ORDER BY key LIMIT n``
(no OFFSET, so rows moving during the ETL cannot shift pages), read and written while holding the
writer lock that stream batches also hold. Why that makes target == source even while rows change
is argued in docs/writers/rdb.md ("ETL consistency").
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as my
from sqlalchemy.engine import Engine

from adapter.dml import INSERT, Dml
from adapter.errors import CanalError
from adapter.writers.base import EtlResult
from adapter.writers.rdb.dberrors import translate
from adapter.writers.rdb.mapping import RdbMapping
from adapter.writers.rdb.types import timedelta_to_mysql

log = logging.getLogger(__name__)
_WHERE = re.compile(r"^\s*where\s+", re.I)


class EtlError(CanalError):
    """The ETL request cannot run as asked (bad condition/params, no key)."""


def condition(mapping: RdbMapping, params: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """The etlCondition as a SQL fragment with ``{}`` bound to ``params`` in order (None when unused).

    As in canal, a condition with placeholders applies only when params are given; unlike canal, a
    condition without placeholders always applies.
    """
    cond = (mapping.etl_condition or "").strip()
    holes = cond.count("{}")
    if not cond or (holes and not params):
        return None, {}
    if holes != len(params):
        raise EtlError(f"etlCondition {cond!r} has {holes} placeholder(s) but {len(params)} param(s) were given")
    body = _WHERE.sub("", cond).replace(":", r"\:")  # a literal ':' must not become a bind name
    parts = body.split("{}")
    text = parts[0] + "".join(f":p{i}{p}" for i, p in enumerate(parts[1:]))
    return sa.text(text), {f"p{i}": v for i, v in enumerate(params)}


def _after(cols: Sequence[Any], values: Sequence[Any]) -> Any:
    """Row-value ``(a, b) > (x, y)`` spelled out (uses the index on every backend)."""
    ors = [sa.and_(*[cols[j] == values[j] for j in range(i)], cols[i] > values[i]) for i in range(len(cols))]
    return ors[0] if len(ors) == 1 else sa.or_(*ors)


def _normaliser(table: sa.Table) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Make driver values look like stream values (TIME as text, BIT as int)."""
    bits = [c.name for c in table.columns if isinstance(c.type, my.BIT)]
    times = [c.name for c in table.columns if isinstance(c.type, sa.Time)]

    def norm(row: dict[str, Any]) -> dict[str, Any]:
        for b in bits:
            v = row.get(b)
            if isinstance(v, bytes):
                row[b] = int.from_bytes(v, "big")
        for t in times:
            v = row.get(t)
            if isinstance(v, dt.timedelta):
                row[t] = timedelta_to_mysql(v)
        return row

    return norm


def _mysql_types(table: sa.Table, engine: Engine) -> dict[str, str]:
    out: dict[str, str] = {}
    for c in table.columns:
        try:
            out[c.name] = c.type.compile(dialect=engine.dialect).lower()
        except Exception:  # an exotic type without a compiler: no hint
            out[c.name] = ""
    return out


def run_etl(mapping: RdbMapping, params: Sequence[str], progress: Callable[[int], None], *, source: Engine,
            lock: threading.RLock, apply: Callable[[RdbMapping, Dml], None], target_name: str) -> EtlResult:
    """Load every source row (matching etlCondition) into the target; canal's result message."""
    total = 0
    try:
        cond, binds = condition(mapping, params)
        try:
            src = sa.Table(mapping.table, sa.MetaData(), schema=mapping.database or None, autoload_with=source)
        except sa.exc.NoSuchTableError:
            raise EtlError(f"source table {mapping.database}.{mapping.table} does not exist") from None
        keys = [c.name for c in src.primary_key.columns] or list(mapping.target_pk.values())
        if not keys:
            raise EtlError(f"source table {mapping.database}.{mapping.table} has no primary key for keyset paging; "
                           "set targetPk")
        light = sa.table(src.name, *[sa.column(c.name) for c in src.columns], schema=src.schema)
        key_cols = [light.c[k] for k in keys]
        types = _mysql_types(src, source)
        norm = _normaliser(src)
        last: tuple[Any, ...] | None = None
        while True:
            q = sa.select(light).order_by(*key_cols).limit(mapping.commit_batch)
            if cond is not None:
                q = q.where(cond)
            if last is not None:
                q = q.where(_after(key_cols, last))
            # One lock around read + write: a stream batch is applied entirely before or after this chunk.
            with lock:
                with source.connect() as conn:
                    rows = [norm(dict(r)) for r in conn.execute(q, binds).mappings()]
                if not rows:
                    break
                apply(mapping, Dml(destination=mapping.header.destination or "", group_id=mapping.header.group_id,
                                   database=mapping.database, table=mapping.table, type=INSERT, pk_names=tuple(keys),
                                   data=tuple(rows), mysql_types=types))
            total += len(rows)
            last = tuple(rows[-1][k] for k in keys)
            progress(total)
            if len(rows) < mapping.commit_batch:
                break
    except Exception as e:
        err = e if isinstance(e, CanalError) else translate(e, f"ETL source {mapping.database}.{mapping.table}")
        log.warning("rdb: ETL failed", extra={"task": mapping.task, "rows": total, "error": str(err)})
        return EtlResult(succeeded=False, result_message=f"导入RDB 数据：{total} 条",
                         error_message=f"{target_name} etl failed! ==>{err}", rows=total)
    log.info("rdb: ETL done", extra={"task": mapping.task, "rows": total})
    return EtlResult(succeeded=True, result_message=f"导入RDB 数据：{total} 条", rows=total)
