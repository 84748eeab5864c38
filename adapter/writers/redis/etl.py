"""Full load (ETL) of one redis mapping, and counting/removing the keys a mapping owns.

ETL pages the mapping SQL over the main table's primary key (keyset: ``key > last ORDER BY key
LIMIT commitBatch``, never OFFSET), and writes each page as whole values in one pipeline. Each
page's select+write holds the writer's ``sync_lock``, so a streamed change is either applied before
the page is read (and the page sees it) or after the page is written (and overwrites it): an ETL
running while the stream flows never leaves an older value behind.

Count and TRUNCATE use ``SCAN MATCH <key pattern>``: O(all keys of the database), not O(owned keys),
one round trip per 1000 keys scanned (every master in Cluster mode). Keys are de-duplicated in
memory (SCAN may repeat keys while Redis rehashes), about 100 bytes per owned key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from adapter.errors import CanalError, ConfigError
from adapter.sqlmap import etl_condition, result_key
from adapter.writers.base import EtlResult
from adapter.writers.redis.client import RedisTarget, translate
from adapter.writers.redis.commands import Put, build
from adapter.writers.redis.mapping import RedisMapping

if TYPE_CHECKING:
    from adapter.writers.redis.writer import RedisWriter

log = logging.getLogger(__name__)

SCAN_COUNT = 1000
DELETE_CHUNK = 1000


def _main_key(writer: RedisWriter, mapping: RedisMapping) -> tuple[str, ...]:
    db = writer.source(mapping)
    database, table = mapping.main.qualified(mapping.sql.default_database)
    pk = db.primary_key(database, table)
    if pk:
        return pk
    cols = [f.column.column for f in mapping.key_fields.values() if f.column is not None]
    if cols and len(cols) == len(mapping.key_fields):
        log.warning("main table has no primary key; ETL pages over the key template's columns (they must be unique)",
                    extra={"mapping_file": mapping.header.file, "columns": cols})
        return tuple(dict.fromkeys(cols))
    raise ConfigError(f"table {database}.{table} has no primary key and the key template is computed: "
                      "ETL cannot page over it", source=mapping.header.file, key="redisMapping.key")


def run_etl(writer: RedisWriter, mapping: RedisMapping, params: Sequence[str],
            progress: Callable[[int], None]) -> EtlResult:
    """Load every row the mapping SQL (plus ``etlCondition`` with ``params``) yields."""
    total = skipped = 0
    try:
        cond = etl_condition(mapping.etl_condition, params, source=mapping.header.file)
        key_cols = _main_key(writer, mapping)
        db = writer.source(mapping)
        after: tuple[Any, ...] | None = None
        while True:
            with writer.sync_lock:  # select + write of one page never interleave with a stream batch
                rows = db.fetch(mapping.sql.select_page(key_cols, after, mapping.commit_batch, cond))
                ops = []
                for row in rows:
                    key = mapping.render_key(row)
                    if key is None:
                        skipped += 1
                    else:
                        ops.append(Put(key, row))
                writer.target.execute(build(mapping, ops))
            if not rows:
                break
            total += len(ops)
            progress(total)
            after = result_key(rows[-1], len(key_cols))
            if len(rows) < mapping.commit_batch:
                break
    except CanalError as e:
        log.error("redis etl failed", extra={"mapping_file": mapping.header.file, "rows": total, "problem": str(e)})
        return EtlResult(False, f"导入Redis 数据：{total} 条", error_message=f"{mapping.name} etl failed! ==>{e}",
                         rows=total)
    if skipped:
        log.warning("etl rows skipped: a key field is NULL", extra={"mapping_file": mapping.header.file,
                                                                   "rows": skipped})
    log.info("redis etl done", extra={"mapping_file": mapping.header.file, "rows": total})
    return EtlResult(True, f"导入Redis 数据：{total} 条", rows=total)


def scan_keys(target: RedisTarget, mapping: RedisMapping) -> set[bytes]:
    """Every key matching the mapping's key pattern (see the module doc for the cost)."""
    try:
        return {bytes(k) if not isinstance(k, str) else k.encode()
                for k in target.client.scan_iter(match=mapping.key_pattern(), count=SCAN_COUNT)}
    except Exception as exc:
        raise translate(exc, "scan") from exc


def count_keys(target: RedisTarget, mapping: RedisMapping) -> int:
    return len(scan_keys(target, mapping))


def delete_keys(target: RedisTarget, mapping: RedisMapping) -> int:
    """DEL every key of the mapping, in pipelines of 1000 single-key DELs (Cluster-safe)."""
    keys = sorted(scan_keys(target, mapping))
    for i in range(0, len(keys), DELETE_CHUNK):
        target.execute([("DEL", k) for k in keys[i:i + DELETE_CHUNK]], transaction=False)
    return len(keys)
