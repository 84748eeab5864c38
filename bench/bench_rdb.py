"""bench_rdb: rows/s through ``RdbWriter.write`` into PostgreSQL, MariaDB and SQLite, plus ETL rows/s.

Workloads (8-column row like bench_parser's: int, varchar, datetime(6), decimal, 100-char text, json,
bigint unsigned, tinyint(1)), fed as the adapter worker would: batches of ``--batch`` rows
(canal's syncBatchSize, default 1000):

- ``bulk``: INSERT Dmls of 100 rows (multi-row transactions);
- ``oltp``: one row per Dml: 60% update, 25% insert, 10% delete, 5% key change;
- ``replay``: the bulk batches written a second time (idempotent upserts over existing rows);
- ``etl``: a full load of the bulk rows from a MariaDB source table (keyset pages of commitBatch 5000).

Each runs with ``concurrent: false`` (one partition) and ``concurrent: true`` (threads 3; SQLite is
always one writer). Usage::

    .venv/bin/python bench/bench_rdb.py [--rows 50000] [--batch 1000] [--targets postgresql,mariadb,sqlite]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymysql
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from adapter.dml import Dml
from adapter.writers.base import DataSource, MappingHeader, Routed, WriterConfig, WriterContext
from adapter.writers.rdb import RdbMapping, RdbWriter, parse_rdb_mapping

MYSQL_PORT = int(os.environ.get("MARIADB_PORT", "13306"))
PG_URL = os.environ.get("PG_URL", "postgresql+psycopg://postgres@127.0.0.1:15432/postgres")
MARIA_URL = "mysql+pymysql://app:apppass@127.0.0.1:{port}/{db}?charset=utf8mb4"
BODY = "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dol"
TYPES = {"id": "int(11)", "name": "varchar(64)", "created": "datetime(6)", "amount": "decimal(12,2)", "body": "text",
         "payload": "json", "qty": "bigint(20) unsigned", "flag": "tinyint(1)"}
DDL = {
    "postgresql": """(id integer primary key, name varchar(64), created timestamp(6), amount numeric(12,2),
        body text, payload jsonb, qty numeric(20,0), flag smallint)""",
    "mysql": """(id int primary key, name varchar(64), created datetime(6), amount decimal(12,2), body text,
        payload json, qty bigint unsigned, flag tinyint(1))""",
    "sqlite": """(id integer primary key, name varchar(64), created datetime, amount numeric(12,2), body text,
        payload text, qty text, flag integer)""",
}


def row(i: int, v: int = 0) -> dict[str, Any]:
    return {"id": i, "name": f"name-{i}-{v}", "created": dt.datetime(2024, 1, 1, 12, 0, 0, i % 1_000_000),
            "amount": Decimal(i % 100000) / 100, "body": BODY, "payload": f'{{"i": {i}, "v": {v}}}',
            "qty": 2**63 + i, "flag": i % 2}


def dml(kind: str, rows: list[dict[str, Any]], old: list[dict[str, Any]] | None = None) -> Dml:
    return Dml("example", "g1", "bench_src", "bench", kind, ("id",), tuple(rows), tuple(old) if old else None,
               mysql_types=TYPES)


def bulk(n: int) -> list[Dml]:
    return [dml("INSERT", [row(i) for i in range(s, min(n, s + 100))]) for s in range(0, n, 100)]


def oltp(n: int, existing: int, seed: int = 1) -> list[Dml]:
    rng = random.Random(seed)
    live = list(range(existing))
    next_id = existing
    out: list[Dml] = []
    for step in range(n):
        r = rng.random()
        if r < 0.25 or not live:
            out.append(dml("INSERT", [row(next_id)]))
            live.append(next_id)
            next_id += 1
            continue
        pos = rng.randrange(len(live))
        k = live[pos]
        if r < 0.35:
            out.append(dml("DELETE", [row(k)]))
            live[pos] = live[-1]
            live.pop()
        elif r < 0.40:
            out.append(dml("UPDATE", [row(next_id, step)], [{"id": k}]))
            live[pos] = next_id
            next_id += 1
        else:
            out.append(dml("UPDATE", [row(k, step)], [{"name": f"name-{k}-0"}]))
    return out


def batches(dmls: list[Dml], size: int) -> Iterator[list[Dml]]:
    """Split by rows like the worker's syncBatchSize chunking (a Dml is never split here)."""
    cur: list[Dml] = []
    rows = 0
    for d in dmls:
        cur.append(d)
        rows += len(d.data)
        if rows >= size:
            yield cur
            cur, rows = [], 0
    if cur:
        yield cur


class Target:
    def __init__(self, family: str) -> None:
        self.family = family
        self.name = "b_" + uuid.uuid4().hex[:10]
        self.tmp = tempfile.mkdtemp(prefix="bench_rdb_")
        if family == "postgresql":
            self.url, self.schema = PG_URL, self.name
            self._admin(f'create schema "{self.name}"')
        elif family == "mysql":
            self.url, self.schema = MARIA_URL.format(port=MYSQL_PORT, db=self.name), self.name
            self._maria(f"create database `{self.name}`")
        else:
            self.url, self.schema = f"sqlite:///{self.tmp}/bench.db", None

    def _admin(self, stmt: str) -> None:
        eng = sa.create_engine(PG_URL)
        with eng.begin() as c:
            c.exec_driver_sql(stmt)
        eng.dispose()

    @staticmethod
    def _maria(stmt: str, db: str | None = None) -> None:
        conn = pymysql.connect(host="127.0.0.1", port=MYSQL_PORT, user="app", password="apppass", autocommit=True,
                               database=db)
        with conn.cursor() as cur:
            cur.execute(stmt)
        conn.close()

    def reset_table(self) -> None:
        eng = sa.create_engine(self.url)
        q = "`" if self.family == "mysql" else '"'
        name = f"{q}{self.schema}{q}.bench" if self.schema else "bench"
        with eng.begin() as c:
            c.exec_driver_sql(f"drop table if exists {name}")
            c.exec_driver_sql(f"create table {name} {DDL[self.family]}")
        eng.dispose()

    def writer(self, concurrent: bool, source_db: str | None = None) -> tuple[RdbWriter, RdbMapping]:
        ctx = WriterContext(data_sources={"src": DataSource("src", MARIA_URL.format(port=MYSQL_PORT, db=source_db),
                                                            source_db)} if source_db else {})
        w = RdbWriter(WriterConfig("rdb", "bench", None, {"url": self.url, "threads": 3}, "example", "g1"), ctx)
        body: dict[str, Any] = {"database": source_db or "bench_src", "table": "bench", "targetTable": "bench",
                                "mapAll": True, "commitBatch": 5000}
        if self.schema:
            body["targetDb"] = self.schema
        m = parse_rdb_mapping(MappingHeader("bench.yml", "bench.yml", "src", "example", "g1", "bench"),
                              {"concurrent": concurrent, "dbMapping": body})
        w.set_mappings([m])
        w.open()
        return w, m

    def drop(self) -> None:
        if self.family == "postgresql":
            self._admin(f'drop schema if exists "{self.name}" cascade')
        elif self.family == "mysql":
            self._maria(f"drop database if exists `{self.name}`")


def timed(fn: Callable[[], int]) -> tuple[int, float]:
    t0 = time.perf_counter()
    rows = fn()
    return rows, time.perf_counter() - t0


def run_stream(w: RdbWriter, m: RdbMapping, dmls: list[Dml], batch: int) -> int:
    rows = 0
    for b in batches(dmls, batch):
        w.write([Routed(m, d) for d in b])
        rows += sum(len(d.data) for d in b)
    return rows


def make_source(n: int) -> str:
    db = "bsrc_" + uuid.uuid4().hex[:10]
    Target._maria(f"create database `{db}`")
    conn = pymysql.connect(host="127.0.0.1", port=MYSQL_PORT, user="app", password="apppass", autocommit=True,
                           database=db, charset="utf8mb4")
    with conn.cursor() as cur:
        cur.execute(f"create table bench {DDL['mysql']}")
        for s in range(0, n, 5000):
            rs = [row(i) for i in range(s, min(n, s + 5000))]
            cur.executemany("insert into bench values (%s,%s,%s,%s,%s,%s,%s,%s)",
                            [tuple(r.values()) for r in rs])
    conn.close()
    return db


def measure(t: Target, concurrent: bool, source: str, bulk_dmls: list[Dml], oltp_dmls: list[Dml],
            batch: int) -> dict[str, tuple[int, float]]:
    """(rows, seconds) per workload on a fresh table."""
    t.reset_table()
    w, m = t.writer(concurrent, source)
    res = {"bulk": timed(lambda: run_stream(w, m, bulk_dmls, batch)),
           "oltp": timed(lambda: run_stream(w, m, oltp_dmls, batch)),
           "replay": timed(lambda: run_stream(w, m, bulk_dmls, batch))}
    w.close()
    t.reset_table()
    w, m = t.writer(concurrent, source)
    res["etl"] = timed(lambda: w.etl(m, [], lambda k: None).rows)
    w.close()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=1000, help="rows per write() (syncBatchSize)")
    ap.add_argument("--targets", default="postgresql,mariadb,sqlite")
    args = ap.parse_args()
    families = {"postgresql": "postgresql", "mariadb": "mysql", "sqlite": "sqlite"}
    wanted = [t.strip() for t in args.targets.split(",") if t.strip()]
    if bad := [t for t in wanted if t not in families]:
        raise SystemExit(f"--targets: unknown {bad}; expected postgresql, mariadb, sqlite")
    n = args.rows
    print(f"bench_rdb: {n} rows per workload, {args.batch} rows per write(); rows/s (higher is better)")
    print(f"{'target':<11} {'partitions':<10} {'bulk':>9} {'oltp':>9} {'replay':>9} {'etl':>9}")
    source = make_source(n)
    bulk_dmls = bulk(n)
    oltp_dmls = oltp(n, existing=n)
    try:
        for name in wanted:
            t = Target(families[name])
            try:
                for concurrent in (False, True):
                    if concurrent and t.family == "sqlite":
                        continue
                    res = measure(t, concurrent, source, bulk_dmls, oltp_dmls, args.batch)
                    parts = "3 (conc.)" if concurrent else "1"
                    print(f"{name:<11} {parts:<10} " + " ".join(f"{r / s:>9,.0f}" for r, s in res.values()),
                          flush=True)
            finally:
                t.drop()
    finally:
        Target._maria(f"drop database if exists `{source}`")


if __name__ == "__main__":
    main()
