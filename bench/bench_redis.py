"""Writer-level Redis throughput (rows/s): direct inserts/updates (hash, json), joined-table read-backs, ETL.

    .venv/bin/python bench/bench_redis.py [--rows 50000] [--batch 1000] [--redis 127.0.0.1:16379]

Uses the MariaDB test service (app/apppass on 13306) and the shared Redis; creates and drops its own
database, and deletes its own keys (a unique prefix). Also reports planning+command building alone
(no Redis round trip), to separate Python cost from network/server cost.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import uuid
from decimal import Decimal
from typing import Any

import pymysql
import redis

from adapter.dml import INSERT, UPDATE, Dml
from adapter.writers.base import DataSource, MappingHeader, Routed, WriterConfig, WriterContext
from adapter.writers.redis import RedisWriter
from adapter.writers.redis.commands import build
from adapter.writers.redis.plan import Planner


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=50000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--redis", default="127.0.0.1:16379")
    ap.add_argument("--mysql-port", type=int, default=13306)
    ap.add_argument("--e2e", action="store_true", help="also MariaDB → canal-server → node → Redis (rows/s)")
    args = ap.parse_args()

    db = "bench_" + uuid.uuid4().hex[:8]
    conn = pymysql.connect(host="127.0.0.1", port=args.mysql_port, user="app", password="apppass", autocommit=True)
    cur = conn.cursor()
    cur.execute(f"CREATE DATABASE `{db}`")
    cur.execute(f"USE `{db}`")
    cur.execute("CREATE TABLE role (id INT PRIMARY KEY, name VARCHAR(50))")
    cur.execute("CREATE TABLE user (id INT PRIMARY KEY, name VARCHAR(50), email VARCHAR(100), role_id INT, "
                "price DECIMAL(10,2), c_time DATETIME, KEY (role_id))")
    cur.executemany("INSERT INTO role VALUES (%s, %s)", [(i, f"role{i}") for i in range(100)])
    now = dt.datetime(2024, 1, 1, 12, 30)
    users = [(i, f"user{i}", f"u{i}@example.com", i % 100, Decimal(i % 10000) / 100, now)
             for i in range(1, args.rows + 1)]
    for i in range(0, len(users), 5000):
        cur.executemany("INSERT INTO user VALUES (%s, %s, %s, %s, %s, %s)", users[i:i + 5000])
    cols = ("id", "name", "email", "role_id", "price", "c_time")
    rows = [dict(zip(cols, u, strict=True)) for u in users]

    ctx = WriterContext(data_sources={"ds": DataSource("ds", f"mysql+pymysql://app:apppass@127.0.0.1:"
                                                               f"{args.mysql_port}/{db}", db)})
    w = RedisWriter(WriterConfig("redis", None, args.redis, {}, "example", "g1"), ctx)
    w.open()
    prefix = "bench" + uuid.uuid4().hex[:8] + ":"

    def mapping(name: str, **body: Any) -> Any:
        header = MappingHeader(name + ".yml", name + ".yml", "ds", "example", "g1", None)
        return RedisWriter.parse_mapping(header, {"redisMapping": {"prefix": prefix, "commitBatch": args.batch,
                                                                   **body}}, ctx)

    direct = mapping("direct", sql="select a.id, a.name, a.email, a.role_id, a.price, a.c_time from user a",
                     key="d:{id}")
    as_json = mapping("json", sql="select a.id, a.name, a.email, a.price, a.c_time from user a", key="j:{id}",
                      type="json")
    joined = mapping("joined", sql="select a.id, a.name, a.price, b.name as role from user a "
                                   "left join role b on b.id = a.role_id", key="r:{id}")

    def batches(type_: str, data: list[dict[str, Any]], old: list[dict[str, Any]] | None = None) -> list[Dml]:
        out = []
        for i in range(0, len(data), args.batch):
            o = tuple(old[i:i + args.batch]) if old is not None else None
            out.append(Dml("example", "g1", db, "user", type_, ("id",), tuple(data[i:i + args.batch]), o))
        return out

    def timed(label: str, n: int, fn: Any) -> None:
        t0 = time.perf_counter()
        fn()
        dt_s = time.perf_counter() - t0
        print(f"{label:<44} {n:>8} rows {dt_s:8.2f} s {n / dt_s:>10,.0f} rows/s")

    ins = batches(INSERT, rows)
    updated = [{**r, "name": r["name"] + "x"} for r in rows]
    upd = batches(UPDATE, updated, [{"name": r["name"]} for r in rows])
    try:
        print(f"redis writer bench: {args.rows} rows, batches of {args.batch}, redis {args.redis}")
        timed("plan+build only, direct hash insert", args.rows,
              lambda: [build(direct, Planner(direct, None).plan([d])) for d in ins])
        timed("plan+build only, direct hash update", args.rows,
              lambda: [build(direct, Planner(direct, None).plan([d])) for d in upd])
        timed("stream: direct hash insert (DEL+HSET)", args.rows, lambda: [w.write([Routed(direct, d)]) for d in ins])
        timed("stream: direct hash update (EVAL patch)", args.rows,
              lambda: [w.write([Routed(direct, d)]) for d in upd])
        timed("stream: json insert (SET)", args.rows, lambda: [w.write([Routed(as_json, d)]) for d in ins])
        timed("stream: joined insert (read-back by pk)", args.rows,
              lambda: [w.write([Routed(joined, d)]) for d in ins])
        role_rows = [{"id": i, "name": f"role{i}"} for i in range(100)]
        role_upd = Dml("example", "g1", db, "role", UPDATE, ("id",), tuple(role_rows),
                       tuple({"name": "old"} for _ in role_rows))
        timed("stream: 100 role renames → every user patched", args.rows,
              lambda: w.write([Routed(joined, role_upd)]))
        timed(f"etl: joined (keyset pages of {args.batch})", args.rows, lambda: w.etl(joined, [], lambda n: None))
        timed("count: SCAN of the joined mapping's keys", w.count(joined), lambda: w.count(joined))
        if args.e2e:
            end_to_end(db, cur, args, prefix)
    finally:
        w.close()
        r = redis.Redis(host=args.redis.split(":")[0], port=int(args.redis.split(":")[1]))
        keys = list(r.scan_iter(match=prefix + "*", count=5000))
        for i in range(0, len(keys), 5000):
            r.delete(*keys[i:i + 5000])
        cur.execute(f"DROP DATABASE `{db}`")
        conn.close()


def end_to_end(db: str, cur: Any, args: Any, prefix: str) -> None:
    """Rows/s through the whole pipeline: multi-row INSERTs/UPDATEs on MariaDB until the last row's key
    appears in Redis (batches are applied in order, so the last key means all are written)."""
    import json
    import pathlib
    import sys
    import tempfile

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
    from pipeline import pipeline

    host, port = args.redis.split(":")
    r = redis.Redis(host=host, port=int(port))
    cur.execute("CREATE TABLE e2e (id INT PRIMARY KEY, name VARCHAR(50), price DECIMAL(10,2), c_time DATETIME)")
    conf = {"srcDataSources": {"defaultDS": {"url": f"jdbc:mysql://127.0.0.1:{args.mysql_port}/{db}",
                                             "username": "app", "password": "apppass"}},
            "canalAdapters": [{"instance": "example", "groups": [{"groupId": "g1", "outerAdapters": [
                {"name": "redis", "key": "redis1", "hosts": args.redis}]}]}]}
    body = {"dataSourceKey": "defaultDS", "destination": "example", "groupId": "g1", "outerAdapterKey": "redis1",
            "redisMapping": {"sql": "select a.id, a.name, a.price, a.c_time from e2e a", "key": "e2e:{id}",
                             "prefix": prefix}}
    n = args.rows
    with tempfile.TemporaryDirectory() as tmp, \
            pipeline(pathlib.Path(tmp), db, conf, {"redis/e2e.yml": json.dumps(body)}):
        t0 = time.perf_counter()
        for i in range(1, n + 1, 1000):
            cur.execute("INSERT INTO e2e VALUES " + ", ".join(
                f"({j}, 'n{j}', {j % 1000}.25, '2024-01-01 00:00:00')" for j in range(i, min(n, i + 999) + 1)))
        last = f"{prefix}e2e:{n}"
        while not r.exists(last):
            time.sleep(0.05)
        dt_s = time.perf_counter() - t0
        print(f"{'end to end: INSERT (1000-row statements)':<44} {n:>8} rows {dt_s:8.2f} s {n / dt_s:>10,.0f} rows/s")
        t0 = time.perf_counter()
        for i in range(1, n + 1, 1000):
            cur.execute(f"UPDATE e2e SET name = CONCAT(name, 'x') WHERE id BETWEEN {i} AND {i + 999}")
        while r.hget(last, "name") != f"n{n}x".encode():
            time.sleep(0.05)
        dt_s = time.perf_counter() - t0
        print(f"{'end to end: UPDATE (1000-row statements)':<44} {n:>8} rows {dt_s:8.2f} s {n / dt_s:>10,.0f} rows/s")
    r.close()


if __name__ == "__main__":
    main()
