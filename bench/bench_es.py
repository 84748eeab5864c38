"""Writer-level ES throughput (docs/s) into the ES-API server: ETL, direct stream, re-query stream.

    .venv/bin/python bench/bench_es.py [--rows 20000] [--batch 1000] [--es http://127.0.0.1:19201]

Uses the MariaDB test service (app/apppass on 13306); creates and drops its own database and indices.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import uuid
from typing import Any

import pymysql

from adapter.dml import Dml
from adapter.writers.base import DataSource, MappingHeader, Routed, WriterConfig, WriterContext
from adapter.writers.es import Es8Writer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--es", default="http://127.0.0.1:19201")
    ap.add_argument("--mysql-port", type=int, default=13306)
    args = ap.parse_args()

    db = "bench_" + uuid.uuid4().hex[:8]
    conn = pymysql.connect(host="127.0.0.1", port=args.mysql_port, user="app", password="apppass", autocommit=True)
    cur = conn.cursor()
    cur.execute(f"CREATE DATABASE `{db}`")
    cur.execute(f"USE `{db}`")
    cur.execute("CREATE TABLE role (id INT PRIMARY KEY, role_name VARCHAR(50))")
    cur.execute("CREATE TABLE user (id INT PRIMARY KEY, name VARCHAR(50), role_id INT, c_time DATETIME, KEY (role_id))")
    cur.executemany("INSERT INTO role VALUES (%s, %s)", [(i, f"role{i}") for i in range(100)])
    now = dt.datetime(2024, 1, 1)
    users = [(i, f"user{i}", i % 100, now) for i in range(1, args.rows + 1)]
    for i in range(0, len(users), 5000):
        cur.executemany("INSERT INTO user VALUES (%s, %s, %s, %s)", users[i:i + 5000])

    ctx = WriterContext(data_sources={"ds": DataSource("ds", f"mysql+pymysql://app:apppass@127.0.0.1:"
                                                               f"{args.mysql_port}/{db}", db)})
    w = Es8Writer(WriterConfig("es8", None, args.es, {"timezone": "UTC"}, "example", "g1"), ctx)
    w.open()
    prefix = "bench_" + uuid.uuid4().hex[:8] + "_"

    def mapping(index: str, sql: str) -> Any:
        header = MappingHeader(index + ".yml", index + ".yml", "ds", "example", "g1", None)
        return Es8Writer.parse_mapping(header, {"esMapping": {"_index": prefix + index, "_id": "_id", "sql": sql,
                                                              "commitBatch": args.batch}}, ctx)

    joined = mapping("joined", "select a.id as _id, a.name, a.role_id, b.role_name, a.c_time from user a "
                               "left join role b on b.id = a.role_id")
    direct = mapping("direct", "select a.id as _id, a.name, a.role_id, a.c_time from user a")
    rows = [{"id": u[0], "name": u[1], "role_id": u[2], "c_time": u[3]} for u in users]
    try:
        t0 = time.perf_counter()
        result = w.etl(joined, [], lambda n: None)
        t_etl = time.perf_counter() - t0
        assert result.succeeded, result.error_message

        def stream(m: Any) -> float:
            t = time.perf_counter()
            for i in range(0, len(rows), args.batch):
                d = Dml("example", "g1", db, "user", "INSERT", ("id",), tuple(rows[i:i + args.batch]))
                w.write([Routed(m, d)])
            return time.perf_counter() - t

        t_direct = stream(direct)
        t_joined = stream(joined)
        # a joined-table change touching 1% of the documents, 100 times
        t0 = time.perf_counter()
        for r in range(100):
            d = Dml("example", "g1", db, "role", "UPDATE", ("id",), ({"id": r, "role_name": f"x{r}"},),
                    ({"role_name": f"role{r}"},))
            w.write([Routed(joined, d)])
        t_role = time.perf_counter() - t0
        n = args.rows
        print(f"rows={n} batch={args.batch}")
        print(f"ETL (join, keyset pages)         {n / t_etl:10.0f} docs/s  ({t_etl:.2f} s)")
        print(f"stream inserts, direct mapping   {n / t_direct:10.0f} docs/s  ({t_direct:.2f} s)")
        print(f"stream inserts, join (re-query)  {n / t_joined:10.0f} docs/s  ({t_joined:.2f} s)")
        print(f"role updates (each {n // 100} docs)   {n / t_role:10.0f} docs/s  ({t_role:.2f} s)")
    finally:
        for m in (joined, direct):
            w.client.call("DELETE", f"/{m.index}", ok=(404,))
        w.close()
        cur.execute(f"DROP DATABASE `{db}`")
        conn.close()


if __name__ == "__main__":
    main()
