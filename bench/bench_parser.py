"""Benchmark: raw python-mysql-replication row decoding vs BinlogParser on the same binlog range.

Loads rows into MariaDB (multi-row transactions, then single-row transactions), then reads each
range twice in the same run: once with BinLogStreamReader decoding ``ev.rows``, once with
BinlogParser producing canal Entries into a counting sink. Prints rows/s for both and the ratio.

    .venv/bin/python bench/bench_parser.py --rows 50000 --single 3000
"""

from __future__ import annotations

import argparse
import multiprocessing
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from adapter.server.events import Event, LogPosition, ParserSettings

APP = {"host": "127.0.0.1", "port": 13306, "user": "app", "password": "apppass"}
REPL = {"host": "127.0.0.1", "port": 13306, "user": "canal", "password": "canal"}
TABLE = """CREATE TABLE bench (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(64), created DATETIME(6),
  amount DECIMAL(12,2), body TEXT, payload JSON, qty BIGINT UNSIGNED, flag TINYINT(1)) CHARACTER SET utf8mb4"""
BODY = "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dol"


def master(cur: Any) -> LogPosition:
    cur.execute("SHOW MASTER STATUS")
    f, p = cur.fetchone()[:2]
    return LogPosition(str(f), int(p))


def load(conn: Any, rows: int, single: int) -> tuple[LogPosition, LogPosition, LogPosition]:
    cur = conn.cursor()
    sql = "INSERT INTO bench (name, created, amount, body, payload, qty, flag) VALUES (%s, %s, %s, %s, %s, %s, %s)"

    def row(i: int) -> tuple[Any, ...]:
        return (f"name-{i}", "2024-01-02 03:04:05.678900", f"{i % 100000}.{i % 100:02d}", BODY,
                f'{{"i": {i}, "tags": ["a", "b"]}}', 2**40 + i, i % 2)

    p0 = master(cur)
    t0 = time.perf_counter()
    for start in range(0, rows, 1000):
        conn.begin()
        cur.executemany(sql, [row(i) for i in range(start, min(rows, start + 1000))])
        conn.commit()
    p1 = master(cur)
    t1 = time.perf_counter()
    conn.autocommit(True)
    for i in range(single):
        cur.execute(sql, row(rows + i))
    p2 = master(cur)
    t2 = time.perf_counter()
    print(f"loaded {rows} rows in 1000-row transactions in {t1 - t0:.1f}s, {single} single-row transactions "
          f"in {t2 - t1:.1f}s")
    return p0, p1, p2


def raw_decode(start: LogPosition, end: LogPosition, server_id: int, db: str) -> tuple[int, float]:
    """Run in a fresh process: importing the parser changes the library (TABLE_MAP cache)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result: tuple[int, float] = pool.apply(_raw_decode, (start, end, server_id, db))
    return result


def _raw_decode(start: LogPosition, end: LogPosition, server_id: int, db: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    stream = BinLogStreamReader(connection_settings=dict(REPL), server_id=server_id, blocking=False,
                                resume_stream=True, log_file=start.journal_name, log_pos=start.position,
                                only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, XidEvent],
                                only_schemas=[db], enable_logging=False)
    rows = 0
    try:
        for ev in stream:  # the server is shared: count only the bench schema, stop at the range end
            if isinstance(ev, XidEvent):
                if (stream.log_file, stream.log_pos) >= (end.journal_name, end.position):
                    break
                continue
            rows += len(ev.rows)
    finally:
        stream.close()
    return rows, time.perf_counter() - t0


class CountingSink:
    def __init__(self, end: LogPosition) -> None:
        self.end = end
        self.done = threading.Event()
        self.events = 0
        self.stats: Any = None
        self.rows = 0

    def put(self, events: Sequence[Event], stop: threading.Event) -> bool:
        self.events += len(events)
        last = events[-1]
        if last.boundary and (last.position.journal_name, last.position.position) >= (
                self.end.journal_name, self.end.position):
            if not self.done.is_set():
                self.rows = self.stats.rows  # rows decoded up to this boundary
            self.done.set()
        return True


def parser_decode(start: LogPosition, end: LogPosition, server_id: int, db: str) -> tuple[int, float, int]:
    settings = ParserSettings(destination="bench", master_host=REPL["host"], master_port=int(REPL["port"]),
                              username=REPL["user"], password=REPL["password"], slave_id=server_id,
                              filter_regex=db + r"\..*")
    from adapter.server.binlog import BinlogParser

    sink = CountingSink(end)
    parser = BinlogParser(settings, sink)
    sink.stats = parser.stats
    t0 = time.perf_counter()
    parser.start(start)
    if not sink.done.wait(600):
        raise SystemExit(f"parser did not reach {end}: error={parser.error}")
    elapsed = time.perf_counter() - t0
    parser.stop()
    return sink.rows, elapsed, sink.events


def report(label: str, raw: tuple[int, float], ours: tuple[int, float, int]) -> None:
    raw_rate = raw[0] / raw[1]
    our_rate = ours[0] / ours[1]
    print(f"{label}: raw python-mysql-replication {raw[0]} rows in {raw[1]:.2f}s = {raw_rate:,.0f} rows/s | "
          f"BinlogParser {ours[0]} rows ({ours[2]} entries) in {ours[1]:.2f}s = {our_rate:,.0f} rows/s | "
          f"ratio parser/raw = {our_rate / raw_rate:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=50000, help="rows loaded in 1000-row transactions")
    ap.add_argument("--single", type=int, default=3000, help="single-row transactions loaded after them")
    ap.add_argument("--repeat", type=int, default=2, help="runs per measurement; the best is reported")
    ap.add_argument("--keep", action="store_true", help="keep the bench database")
    args = ap.parse_args()
    db = "bench_" + uuid.uuid4().hex[:8]
    conn = pymysql.connect(**APP, charset="utf8mb4", autocommit=False)
    cur = conn.cursor()
    cur.execute(f"CREATE DATABASE {db}")
    cur.execute(f"USE {db}")
    cur.execute(TABLE)
    try:
        p0, p1, p2 = load(conn, args.rows, args.single)
        sid = 40000 + uuid.uuid4().int % 10000
        for label, start, end, wanted in (("multi-row transactions ", p0, p1, args.rows),
                                          ("single-row transactions", p1, p2, args.single)):
            if wanted:
                raw = min((raw_decode(start, end, sid, db) for _ in range(args.repeat)), key=lambda r: r[1])
                ours = min((parser_decode(start, end, sid + 1, db) for _ in range(args.repeat)), key=lambda r: r[1])
                report(label, raw, ours)
    finally:
        if not args.keep:
            cur.execute(f"DROP DATABASE {db}")
        conn.close()


if __name__ == "__main__":
    main()
