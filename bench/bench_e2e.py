"""Benchmark: MariaDB -> canal-server -> canal-adapter -> writer, end-to-end rows/s and lag, per writer.

Both programs run as child processes from their CLIs (``canal-server --conf``, ``canal-adapter
--config``), on free ports. Writers: ``logger`` (output to /dev/null) and ``rdb`` into PostgreSQL
(a fresh schema, upsert by primary key, canal's defaults: 3 threads, ``concurrent: true``).

For each writer, in one run:

1. backlog: ``--rows`` rows in 1000-row transactions and ``--single`` single-row transactions are
   written first; then the server (stored cursor at the backlog's start) and the adapter start and
   drain it. Rows/s per shape, counted from the adapter's ``canal_adapter_rows`` metric (rows applied
   by every writer and acked), from the first applied row (process start-up is not counted).
2. live: ``--live-rate`` rows/s in ``--live-txn``-row transactions for ``--live-seconds`` while the
   pipeline runs; lag = time from each transaction's COMMIT returning to its rows being acked
   (p50/p95/p99/max; the metric is sampled every 25 ms, so figures are +0..25 ms).

Baseline in the same run: raw python-mysql-replication decode of the same backlog ranges (a fresh
process): the decode ceiling any Python binlog consumer starts from. For rdb the rows in PostgreSQL
are counted at the end.

    .venv/bin/python bench/bench_e2e.py [--rows 100000] [--single 10000] [--writers logger,rdb]
"""

from __future__ import annotations

import argparse
import bisect
import re
import statistics
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psycopg
from common import (
    INSERT,
    PG,
    PG_TABLE,
    Child,
    Range,
    adapter_conf,
    create_database,
    drop_database,
    free_port,
    load,
    load_note,
    master,
    port_open,
    proc_cpu_s,
    proc_mem_mb,
    rate,
    raw_decode,
    row,
    start_server,
    wait_until,
)

_ROWS = re.compile(r'^canal_adapter_rows_total\{[^}]*destination="example"[^}]*\} ([0-9.e+]+)$', re.M)


# ---------------------------------------------------------------- adapter metrics
def adapter_rows(rest_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/metrics", timeout=10) as r:
        m = _ROWS.search(r.read().decode())
    return int(float(m.group(1))) if m else 0


class Sampler(threading.Thread):
    """(monotonic time, rows acked) every ``every`` seconds from the adapter's /metrics."""

    def __init__(self, rest_port: int, every: float = 0.025) -> None:
        super().__init__(daemon=True)
        self.port, self.every = rest_port, every
        self.times: list[float] = []
        self.counts: list[int] = []
        self.stop = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                n = adapter_rows(self.port)
            except OSError as e:  # the adapter is still starting
                self.error = e
                n = -1
            if n >= 0:
                self.times.append(time.monotonic())
                self.counts.append(n)
            self.stop.wait(self.every)

    def last(self) -> int:
        return self.counts[-1] if self.counts else 0

    def first_at_least(self, n: int) -> float:
        i = bisect.bisect_left(self.counts, n)
        return self.times[i] if i < len(self.times) else float("inf")

    def first_positive(self) -> tuple[float, int]:
        i = bisect.bisect_left(self.counts, 1)
        return self.times[i], self.counts[i]


# ---------------------------------------------------------------- live load
def live_load(conn: Any, first_id: int, rate_rows: int, per_txn: int, seconds: float) -> list[tuple[float, int]]:
    """Insert at ``rate_rows`` rows/s; returns (commit-returned monotonic time, cumulative rows) per transaction."""
    commits: list[tuple[float, int]] = []
    n_txn = max(1, int(rate_rows * seconds / per_txn))
    interval = per_txn / rate_rows
    t0 = time.monotonic()
    i = first_id
    with conn.cursor() as cur:
        for k in range(n_txn):
            delay = t0 + k * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            conn.begin()
            cur.executemany(INSERT, [row(j) for j in range(i, i + per_txn)])
            conn.commit()
            i += per_txn
            commits.append((time.monotonic(), (k + 1) * per_txn))
    return commits


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


# ---------------------------------------------------------------- one writer
def run_writer(writer: str, conn: Any, db: str, backlog: list[Range], args: argparse.Namespace, base: Path,
               live_first_id: int) -> dict[str, Any]:
    schema = ""
    pg: Any = None
    if writer == "rdb":
        schema = "bench_" + uuid.uuid4().hex[:8]
        pg = psycopg.connect(**PG, autocommit=True)
        pg.execute(f"CREATE SCHEMA {schema}")
        pg.execute(PG_TABLE.format(schema=schema))
    out: dict[str, Any] = {"writer": writer}
    if backlog:  # earlier writers' live rows follow the backlog in the binlog and are delivered too
        start, prior = backlog[0].start, live_first_id - (args.rows + args.single + 1)
    else:
        with conn.cursor() as cur:
            start, prior = master(cur), 0
    server, server_port = start_server(base, db, start)
    rest_port = free_port()
    conf = adapter_conf(base, writer, server_port, rest_port, db, schema, args.poll_timeout, PG["dbname"])
    adapter = Child("adapter.node", ["--config", str(conf), "--log-level", "INFO" if writer == "logger" else "WARNING"],
                    Path("/dev/null") if writer == "logger" else base / "canal-adapter.log")
    sampler = Sampler(rest_port)
    try:
        wait_until("canal-adapter REST", lambda: adapter.check_alive() and port_open(rest_port), every=0.1)
        sampler.start()
        cpu0 = proc_cpu_s(server.pid), proc_cpu_s(adapter.pid)
        total = sum(r.rows for r in backlog)
        if total:
            wait_until(f"{total} backlog rows acked", lambda: adapter.check_alive() and sampler.last() >= total,
                       timeout=args.timeout)
            cpu1 = proc_cpu_s(server.pid), proc_cpu_s(adapter.pid)
            t_first, c_first = sampler.first_positive()
            t_prev, c_prev = t_first, c_first
            cum = 0
            for r in backlog:
                cum += r.rows
                t_done = sampler.first_at_least(cum)
                out[r.label] = (cum - c_prev, t_done - t_prev)
                t_prev, c_prev = t_done, cum
            out["backlog_cpu"] = (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1])
            out["backlog_rows"] = total - c_first
            out["backlog_wall"] = t_prev - t_first
        total += prior
        wait_until("earlier live rows acked", lambda: adapter.check_alive() and sampler.last() >= total,
                   timeout=args.timeout)
        if args.live_seconds > 0:
            # one warm-up row first, so the lag figures do not include the instance's lazy start
            live_load(conn, live_first_id, 1, 1, 1)
            total += 1
            out["new_rows"] = 1
            wait_until("warm-up row acked", lambda: adapter.check_alive() and sampler.last() >= total,
                       timeout=args.timeout)
            commits = live_load(conn, live_first_id + 1, args.live_rate, args.live_txn, args.live_seconds)
            out["new_rows"] += commits[-1][1]
            goal = total + commits[-1][1]
            wait_until("live rows acked", lambda: adapter.check_alive() and sampler.last() >= goal,
                       timeout=args.timeout)
            lags = [max(0.0, sampler.first_at_least(total + n) - t) * 1000 for t, n in commits]
            span = commits[-1][0] - commits[0][0] + args.live_txn / args.live_rate
            out["live"] = {"rows": commits[-1][1], "txns": len(commits), "achieved": commits[-1][1] / span,
                           "p50": statistics.median(lags), "p95": pct(lags, 95), "p99": pct(lags, 99),
                           "max": max(lags)}
            total = goal
        out["server_mem"] = proc_mem_mb(server.pid)
        out["adapter_mem"] = proc_mem_mb(adapter.pid)
        if pg is not None:
            time.sleep(0.2)
            n = pg.execute(f"SELECT count(*) FROM {schema}.bench").fetchone()[0]
            out["pg_rows"] = (n, total)
    finally:
        sampler.stop.set()
        adapter.stop()
        server.stop()
        if pg is not None:
            pg.execute(f"DROP SCHEMA {schema} CASCADE")
            pg.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000, help="backlog rows in 1000-row transactions")
    ap.add_argument("--single", type=int, default=10_000, help="backlog rows as single-row transactions")
    ap.add_argument("--writers", default="logger,rdb", help="comma-separated: logger, rdb")
    ap.add_argument("--live-rate", type=int, default=2000, help="live phase: rows/s written to MariaDB")
    ap.add_argument("--live-txn", type=int, default=10, help="live phase: rows per transaction")
    ap.add_argument("--live-seconds", type=float, default=10.0, help="live phase duration (0 = skip)")
    ap.add_argument("--poll-timeout", type=int, default=None,
                    help="canal.conf.timeout (ms a GET may wait to fill a batch); default: the adapter's (500)")
    ap.add_argument("--timeout", type=float, default=600.0, help="give up waiting for rows after this many seconds")
    ap.add_argument("--keep", action="store_true", help="keep the MariaDB bench database")
    args = ap.parse_args()
    writers = [w.strip() for w in args.writers.split(",") if w.strip()]
    if unknown := [w for w in writers if w not in ("logger", "rdb")]:
        raise SystemExit(f"--writers: unknown {unknown}; expected logger and/or rdb")

    print(f"start: {load_note()}")
    conn, db = create_database("bench_e2e")
    try:
        backlog = []
        if args.rows:
            backlog.append(load(conn, "(a) 1000-row txns", 1, args.rows, 1000))
        if args.single:
            backlog.append(load(conn, "(b) single-row txns", args.rows + 1, args.single, 1))
        for r in backlog:
            print(f"backlog {r.label}: {r.rows} rows loaded in {r.load_seconds:.1f}s "
                  f"({r.rows / r.load_seconds:,.0f} rows/s into MariaDB)")
        raws = {r.label: raw_decode(r.start, r.end, db) for r in backlog}
        for r in backlog:
            n, wall, cpu = raws[r.label]
            print(f"baseline raw python-mysql-replication decode {r.label}: {rate(n, wall):,.0f} rows/s wall, "
                  f"{rate(n, cpu):,.0f} rows/CPU-s")
        next_id = args.rows + args.single + 1
        with tempfile.TemporaryDirectory(prefix="bench_e2e_") as tmp:
            for w in writers:
                # the backlog is replayed for every writer (each server starts at its first position);
                # live rows are new, so every writer's pipeline also delivers the previous writers' live rows
                res = run_writer(w, conn, db, backlog, args, Path(tmp) / w, next_id)
                next_id += res.get("new_rows", 0)
                print(f"\n== writer {w}")
                for r in backlog:
                    n, secs = res[r.label]
                    raw_n, raw_wall, _ = raws[r.label]
                    print(f"  backlog {r.label}: {rate(n, secs):>8,.0f} rows/s end to end ({n} rows in {secs:.2f}s); "
                          f"ratio to raw decode {rate(n, secs) / rate(raw_n, raw_wall):.2f}x")
                if "backlog_cpu" in res:
                    scpu, acpu = res["backlog_cpu"]
                    print(f"  backlog CPU: server {scpu:.1f}s + adapter {acpu:.1f}s = "
                          f"{res['backlog_rows'] / (scpu + acpu):,.0f} rows/CPU-s over {res['backlog_wall']:.1f}s wall")
                if "live" in res:
                    lv = res["live"]
                    print(f"  live {lv['rows']} rows in {lv['txns']} txns at {lv['achieved']:,.0f} rows/s: "
                          f"lag commit->acked p50 {lv['p50']:.0f} ms, p95 {lv['p95']:.0f} ms, p99 {lv['p99']:.0f} ms, "
                          f"max {lv['max']:.0f} ms")
                (srss, speak), (arss, apeak) = res["server_mem"], res["adapter_mem"]
                print(f"  RSS at end: server {srss:.0f} MiB (peak {speak:.0f}), "
                      f"adapter {arss:.0f} MiB (peak {apeak:.0f})")
                if "pg_rows" in res:
                    got, want = res["pg_rows"]
                    print(f"  PostgreSQL rows: {got} (expected {want}){'' if got == want else '  <-- MISMATCH'}")
    finally:
        if not args.keep:
            drop_database(conn, db)
            print(f"end: {load_note()}")


if __name__ == "__main__":
    main()
