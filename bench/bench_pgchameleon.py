"""Benchmark: pg_chameleon vs our pipeline (canal-server -> canal-adapter -> rdb), MariaDB -> PostgreSQL, same run.

pg_chameleon (the serious Python MySQL -> PostgreSQL peer; python-mysql-replication reader, row
images stored as jsonb and replayed by a pl/pgsql function) runs from its own venv, which this
script does not create:

    python3 -m venv .venv-pgc && .venv-pgc/bin/pip install pg_chameleon

Steps: a fresh MariaDB database with the bench table; a fresh PostgreSQL database; pg_chameleon
``create_replica_schema``, ``add_source``, ``init_replica`` (table still empty). Then for each shape,
``--rows`` rows in 1000-row transactions and ``--single`` single-row transactions: load the rows,
run ``start_replica`` (foreground) until the rows are in its target table, stop it; then run
canal-server (stored cursor at the range start) + canal-adapter (rdb writer, canal's defaults) into
another schema of the same PostgreSQL database until the rows are there. Both are timed from
process launch to the last row (PostgreSQL polled every 0.1 s) and from the first row seen to the
last ("steady"). Prints rows/s, the ratio ours/pg_chameleon, and CPU seconds: the Python processes
and every PostgreSQL process (pg_chameleon replays inside PostgreSQL; other users' PostgreSQL work
counts too, so that part is approximate), with rows per CPU-second of the sum, which moves much
less with the machine's load than wall-clock rates.

pg_chameleon refuses to run as root (``replica_engine.__init__`` exits 10 when ``os.geteuid() == 0``),
and the Python interpreter here lives under /root, unreadable to other users; when this script runs
as root it starts pg_chameleon with only that check patched out (``os.geteuid`` returns 65534).

    .venv/bin/python bench/bench_pgchameleon.py [--rows 100000] [--single 20000] [--sleep-loop 1]
"""

from __future__ import annotations

import argparse
import re
import signal
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import yaml
from common import (
    APP,
    PG,
    PG_TABLE,
    ROOT,
    Child,
    Range,
    adapter_conf,
    create_database,
    drop_database,
    free_port,
    load,
    load_note,
    postgres_cpu_s,
    rate,
    start_adapter,
    start_server,
    tree_cpu_s,
)

PGC_PYTHON = ROOT / ".venv-pgc" / "bin" / "python"
PGC_SCRIPT = ROOT / ".venv-pgc" / "bin" / "chameleon.py"
# pg_chameleon's root check is a policy check only; nothing else in it depends on the uid
WRAPPER = ("import os, sys, runpy; os.geteuid = (lambda: 65534) if os.geteuid() == 0 else os.geteuid; "
           "sys.argv = ['chameleon.py'] + sys.argv[1:]; runpy.run_path(sys.argv.pop(1), run_name='__main__')")


def chameleon_config(home: Path, db: str, pg_db: str, sleep_loop: float) -> None:
    """pg_chameleon's config-example.yml values, pointed at the services; log to stdout (foreground replica)."""
    base = home / ".pg_chameleon"
    for d in ("configuration", "logs", "pid"):
        (base / d).mkdir(parents=True, exist_ok=True)
    cfg = {
        "pid_dir": str(base / "pid"), "log_dir": str(base / "logs"), "log_dest": "stdout", "log_level": "info",
        "log_days_keep": 1, "rollbar_key": "", "rollbar_env": "", "type_override": {},
        # libpq reads "password= port=..." as password "port=..."; trust auth ignores the value
        "pg_conn": {"host": PG["host"], "port": str(PG["port"]), "user": PG["user"], "password": "unused",
                    "database": pg_db, "charset": "utf8"},
        "sources": {"mysql": {
            "db_conn": {"host": APP["host"], "port": str(APP["port"]), "user": APP["user"],
                        "password": APP["password"], "charset": "utf8", "connect_timeout": 10},
            "schema_mappings": {db: "chameleon"}, "limit_tables": None, "skip_tables": None,
            "grant_select_to": None, "lock_timeout": "120s", "my_server_id": 30000 + uuid.uuid4().int % 30000,
            "replica_batch_size": 10000, "replay_max_rows": 10000, "batch_retention": "1 day",
            "copy_max_memory": "300M", "copy_mode": "file", "out_dir": str(home), "sleep_loop": sleep_loop,
            "on_error_replay": "exit", "on_error_read": "exit", "auto_maintenance": "disabled",
            "gtid_enable": False, "type": "mysql", "skip_events": {"insert": None, "delete": None, "update": None},
            "keep_existing_schema": False, "net_read_timeout": 600,
        }},
        "fillfactor": {},
    }
    (base / "configuration" / "bench.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def chameleon(home: Path, *args: str) -> Child:
    return Child(None, ["-c", WRAPPER, str(PGC_SCRIPT), *args, "--config", "bench"], home / "chameleon.log",
                 python=str(PGC_PYTHON), env={"HOME": str(home)}, cwd=home)


def chameleon_run(home: Path, *args: str) -> None:
    """Run one pg_chameleon command to completion; exit with its log tail when it fails."""
    mark = (home / "chameleon.log").stat().st_size if (home / "chameleon.log").exists() else 0
    c = chameleon(home, *args)
    c.proc.wait(300)
    out = (home / "chameleon.log").read_text(errors="replace")[mark:]
    # daemonize's atexit handler raises SystemExit(0) on every clean exit: a harmless traceback
    checked = re.sub(r"Exception ignored in atexit callback.*?SystemExit: 0", "", out, flags=re.S)
    if c.proc.returncode not in (0, None) or "Traceback" in checked or "ERROR" in checked:
        raise SystemExit(f"pg_chameleon {args[0]} failed (exit {c.proc.returncode}):\n{out[-3000:]}")


def count(pg: Any, schema: str) -> int:
    try:
        return int(pg.execute(f"SELECT count(*) FROM {schema}.bench").fetchone()[0])
    except psycopg.errors.UndefinedTable:
        return 0


def wait_rows(pg: Any, schema: str, goal: int, alive: Any, timeout: float) -> tuple[float, float, int]:
    """Poll until ``goal`` rows: (first time the count moved, time it reached goal, count seen then)."""
    before = count(pg, schema)
    first, at_first = None, before
    deadline = time.monotonic() + timeout
    while True:
        n = count(pg, schema)
        now = time.monotonic()
        if first is None and n > before:
            first, at_first = now, n
        if n >= goal:
            return first or now, now, at_first
        if now > deadline:
            raise SystemExit(f"{schema}: {n} of {goal} rows after {timeout:.0f}s")
        alive()
        time.sleep(0.1)


def measure(launch: Any, stop: Any, cpu: Any, pg: Any, schema: str, goal: int,
            rows: int, timeout: float) -> dict[str, float]:
    pg0 = postgres_cpu_s()
    t0 = time.monotonic()
    handle = launch()
    try:
        first, done, at_first = wait_rows(pg, schema, goal, lambda: handle_alive(handle), timeout)
        used = cpu(handle)
    finally:
        stop(handle)
    # steady: rows after the first visible step over the time since (0 when everything landed in one step)
    return {"total": rate(rows, done - t0), "steady": rate(goal - at_first, done - first) if done > first else 0.0,
            "secs": done - t0, "cpu": used, "pg_cpu": postgres_cpu_s() - pg0}


def handle_alive(handle: Any) -> None:
    for child in handle if isinstance(handle, tuple) else (handle,):
        child.check_alive()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000, help="rows in 1000-row transactions")
    ap.add_argument("--single", type=int, default=20_000, help="rows as single-row transactions")
    ap.add_argument("--sleep-loop", type=float, default=1.0,
                    help="pg_chameleon sleep_loop: seconds its reader/replayer sleep between batches (example: 1)")
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args()
    if not PGC_PYTHON.exists() or not PGC_SCRIPT.exists():
        raise SystemExit(f"pg_chameleon is not installed in {PGC_PYTHON.parent.parent}: run\n"
                         "  python3 -m venv .venv-pgc && .venv-pgc/bin/pip install pg_chameleon")

    print(f"start: {load_note()}")
    conn, db = create_database("bench_pgc")
    pg_db = "bench_pgc_" + uuid.uuid4().hex[:8]
    admin = psycopg.connect(**PG, autocommit=True)
    admin.execute(f"CREATE DATABASE {pg_db}")
    pg = psycopg.connect(**{**PG, "dbname": pg_db}, autocommit=True)
    pg.execute("CREATE SCHEMA ours")
    pg.execute(PG_TABLE.format(schema="ours"))
    try:
        with tempfile.TemporaryDirectory(prefix="bench_pgc_") as tmp:
            home = Path(tmp)
            chameleon_config(home, db, pg_db, args.sleep_loop)
            for cmd in (("create_replica_schema",), ("add_source", "--source", "mysql"),
                        ("init_replica", "--source", "mysql")):
                chameleon_run(home, *cmd)
            print(f"pg_chameleon {PGC_SCRIPT.parent.parent.name}: replica schema created, source added, "
                  f"init_replica done (table empty); sleep_loop {args.sleep_loop}s, replica_batch_size 10000, "
                  f"replay_max_rows 10000")
            shapes = [("(a) 1000-row txns", args.rows, 1000), ("(b) single-row txns", args.single, 1)]
            next_id, goal = 1, 0
            for label, rows, per_txn in shapes:
                if not rows:
                    continue
                r: Range = load(conn, label, next_id, rows, per_txn)
                next_id += rows
                goal += rows
                print(f"\n{label}: {rows} rows loaded in {r.load_seconds:.1f}s")

                def pgc_launch() -> Child:
                    return chameleon(home, "start_replica", "--source", "mysql")

                pgc = measure(pgc_launch, lambda c: c.stop(signal.SIGINT), lambda c: tree_cpu_s(c.pid),
                              pg, "chameleon", goal, rows, args.timeout)

                run_dir = home / f"ours-{next_id}"

                def ours_launch(r: Range = r, run_dir: Path = run_dir) -> tuple[Child, Child]:
                    run_dir.mkdir()
                    server, port = start_server(run_dir, db, r.start)
                    try:
                        rest = free_port()
                        conf = adapter_conf(run_dir, "rdb", port, rest, db, "ours", None, pg_db)
                        return server, start_adapter(run_dir, conf, rest)
                    except BaseException:
                        server.stop()
                        raise

                def ours_stop(h: tuple[Child, Child]) -> None:
                    h[1].stop()
                    h[0].stop()

                ours = measure(ours_launch, ours_stop, lambda h: tree_cpu_s(h[0].pid) + tree_cpu_s(h[1].pid),
                               pg, "ours", goal, rows, args.timeout)
                for name, m in (("pg_chameleon 2.0.21", pgc), ("canal-server + canal-adapter rdb", ours)):
                    m["per_cpu"] = rate(rows, m["cpu"] + m["pg_cpu"])
                    print(f"  {name:<34}{m['total']:>8,.0f} rows/s launch->last row ({m['secs']:.1f}s), "
                          f"steady {m['steady']:>8,.0f} rows/s | CPU: Python {m['cpu']:.1f}s + "
                          f"PostgreSQL {m['pg_cpu']:.1f}s = {m['per_cpu']:,.0f} rows/CPU-s")
                steady = f"{ours['steady'] / pgc['steady']:.2f}x" if pgc["steady"] and ours["steady"] else "n/a"
                print(f"  ratio ours/pg_chameleon: {ours['total'] / pgc['total']:.2f}x launch->last row, "
                      f"{ours['per_cpu'] / pgc['per_cpu']:.2f}x per CPU-s, {steady} steady")
            for schema in ("chameleon", "ours"):
                print(f"rows in {pg_db}.{schema}.bench: {count(pg, schema)} (expected {goal})")
    finally:
        pg.close()
        admin.execute(f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")
        admin.close()
        drop_database(conn, db)
        print(f"end: {load_note()}")


if __name__ == "__main__":
    main()
