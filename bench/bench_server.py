"""Benchmark: canal-server decode-and-serve vs raw python-mysql-replication decode, same binlog range, same run.

Loads ``--rows`` rows into a fresh MariaDB database as 1000-row transactions and ``--single`` rows as
single-row transactions. For each range, in this run:

- raw: BinLogStreamReader decoding ``ev.rows`` (a fresh spawned process, nothing cached);
- server: ``canal-server --conf DIR`` (a child process, lazy destination starting at the range start,
  memory meta); our CanalClient connects (which starts the instance), GETs batches and acks each
  until every row of the range arrived. Time runs from connect to the last row.

Prints rows/s of both and the ratio server/raw, by wall clock and per CPU second (the server's
process plus the client's, so a second core doing the client's share is not counted as free),
and the server's RSS (current and peak) at the end.

    .venv/bin/python bench/bench_server.py [--rows 200000] [--single 20000] [--batch 1000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import (
    Range,
    create_database,
    drop_database,
    load,
    load_note,
    proc_cpu_s,
    proc_mem_mb,
    rate,
    raw_decode,
    start_server,
)

from adapter.client.tcp import CanalClient
from adapter.protocol import EntryProtocol_pb2 as epb


def serve(base: Path, db: str, r: Range, batch: int, timeout_ms: int) -> dict[str, float]:
    """One canal-server run over ``r``; returns rows, wall/cpu seconds, batches, RSS figures."""
    server, port = start_server(base, db, r.start)
    try:
        client = CanalClient("127.0.0.1", port, destination="example", so_timeout=120)
        cpu0, ccpu0 = proc_cpu_s(server.pid), time.process_time()
        t0 = time.perf_counter()
        client.connect()  # SUB starts the lazy instance: the parser connects to MariaDB from here
        rows = batches = entries = 0
        rc = epb.RowChange()
        while rows < r.rows:
            batch_id, raw = client.get_without_ack_raw(batch, timeout_ms=timeout_ms)
            if batch_id == -1:
                server.check_alive()
                continue
            batches += 1
            entries += len(raw)
            entry = epb.Entry()
            for data in raw:
                entry.ParseFromString(data)
                if entry.entryType == epb.ROWDATA:
                    rc.ParseFromString(entry.storeValue)
                    if not rc.isDdl:
                        rows += len(rc.rowDatas)
            client.ack(batch_id)
        wall = time.perf_counter() - t0
        cpu, ccpu = proc_cpu_s(server.pid) - cpu0, time.process_time() - ccpu0
        rss, peak = proc_mem_mb(server.pid)
        client.disconnect()
        return {"rows": rows, "wall": wall, "cpu": cpu, "client_cpu": ccpu, "batches": batches, "entries": entries,
                "rss": rss, "peak": peak}
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000, help="rows loaded in multi-row transactions")
    ap.add_argument("--per-txn", type=int, default=1000, help="rows per multi-row transaction")
    ap.add_argument("--single", type=int, default=20_000, help="rows loaded as single-row transactions")
    ap.add_argument("--batch", type=int, default=1000, help="client GET batch size (canal MEMSIZE units of 1 KiB)")
    ap.add_argument("--timeout-ms", type=int, default=100,
                    help="GET timeout: how long the server may wait to fill a batch (-1 = return at once)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per measurement; the fastest is reported")
    ap.add_argument("--keep", action="store_true", help="keep the bench database")
    args = ap.parse_args()

    print(f"start: {load_note()}")
    conn, db = create_database("bench_srv")
    try:
        ranges = []
        if args.rows:
            ranges.append(load(conn, f"(a) {args.per_txn}-row transactions", 1, args.rows, args.per_txn))
        if args.single:
            ranges.append(load(conn, "(b) single-row transactions", args.rows + 1, args.single, 1))
        for r in ranges:
            print(f"loaded {r.label}: {r.rows} rows in {r.load_seconds:.1f}s "
                  f"({r.rows / r.load_seconds:,.0f} rows/s into MariaDB), binlog {r.start.file}:{r.start.pos}"
                  f"..{r.end.pos}")
        print()
        with tempfile.TemporaryDirectory(prefix="bench_server_") as tmp:
            for i, r in enumerate(ranges):
                raws, srvs = [], []
                for k in range(args.repeat):  # interleaved, so a burst of load elsewhere hits both sides
                    raws.append(raw_decode(r.start, r.end, db))
                    srvs.append(serve(Path(tmp) / f"{i}-{k}", db, r, args.batch, args.timeout_ms))
                rows, rwall, rcpu = min(raws, key=lambda x: x[1])
                s = min(srvs, key=lambda x: x["wall"])
                if rows != r.rows or s["rows"] < r.rows:  # the last batch may reach into the next range
                    raise SystemExit(f"{r.label}: expected {r.rows} rows, raw decoded {rows}, server served "
                                     f"{s['rows']}")
                raw_rate, srv_rate = rate(rows, rwall), rate(r.rows, s["wall"])
                raw_cpu_rate = rate(rows, rcpu)
                srv_cpu_rate = rate(r.rows, s["cpu"] + s["client_cpu"])
                mb = (r.end.pos - r.start.pos) / 2**20
                print(f"{r.label}: {r.rows} rows, {mb:.1f} MiB of binlog")
                print(f"  raw python-mysql-replication decode: {raw_rate:>9,.0f} rows/s wall "
                      f"({rwall:.2f}s), {raw_cpu_rate:>9,.0f} rows/CPU-s")
                print(f"  canal-server decode+serve -> client: {srv_rate:>9,.0f} rows/s wall ({s['wall']:.2f}s, "
                      f"{s['batches']:.0f} batches, {s['entries']:.0f} entries), {srv_cpu_rate:>9,.0f} rows/CPU-s "
                      f"(server {s['cpu']:.2f} + client {s['client_cpu']:.2f} CPU-s)")
                print(f"  ratio server/raw: {srv_rate / raw_rate:.2f}x wall, {srv_cpu_rate / raw_cpu_rate:.2f}x per "
                      f"CPU-s | server RSS at end {s['rss']:.0f} MiB, peak {s['peak']:.0f} MiB")
                raw_runs = ", ".join(f"{x[1]:.2f}" for x in raws)
                srv_runs = ", ".join(f"{x['wall']:.2f}" for x in srvs)
                print(f"  all runs (wall s): raw {raw_runs}; server {srv_runs}")
    finally:
        if not args.keep:
            drop_database(conn, db)
            print(f"end: {load_note()}")


if __name__ == "__main__":
    main()
