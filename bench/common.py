"""Shared helpers of bench_server / bench_e2e / bench_pgchameleon: workload, raw decode, processes, /proc readings.

The workload table is bench_parser's (8 columns: int, varchar, datetime(6), decimal, 100-char text,
json, bigint unsigned, tinyint(1); ~250 B per row image), loaded either as multi-row transactions or
as single-row autocommit transactions, each range bracketed by ``SHOW MASTER STATUS`` positions.

This module must not import ``adapter.server`` (importing the parser patches python-mysql-replication
process-wide, which would flatter the raw-decode baseline run through :func:`raw_decode`).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import yaml

ROOT = Path(__file__).resolve().parents[1]
MYSQL_PORT = int(os.environ.get("MARIADB_PORT", "13306"))
APP: dict[str, Any] = {"host": "127.0.0.1", "port": MYSQL_PORT, "user": "app", "password": "apppass"}
REPL: dict[str, Any] = {"host": "127.0.0.1", "port": MYSQL_PORT, "user": "canal", "password": "canal"}
PG = {"host": "127.0.0.1", "port": int(os.environ.get("PG_PORT", "15432")), "user": "postgres", "dbname": "postgres"}

TABLE = """CREATE TABLE bench (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(64), created DATETIME(6),
  amount DECIMAL(12,2), body TEXT, payload JSON, qty BIGINT UNSIGNED, flag TINYINT(1)) CHARACTER SET utf8mb4"""
BODY = "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dol"
PG_TABLE = """CREATE TABLE {schema}.bench (id integer PRIMARY KEY, name varchar(64), created timestamp(6),
  amount numeric(12,2), body text, payload jsonb, qty bigint, flag smallint)"""
INSERT = "INSERT INTO bench (id, name, created, amount, body, payload, qty, flag) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)"


@dataclass(frozen=True)
class Pos:
    """A binlog position (file, offset); ordered."""

    file: str
    pos: int

    def key(self) -> tuple[str, int]:
        return self.file, self.pos


@dataclass(frozen=True)
class Range:
    """Rows ``first_id``..``first_id + rows - 1`` were written between ``start`` and ``end``."""

    label: str
    start: Pos
    end: Pos
    rows: int
    first_id: int
    load_seconds: float


def row(i: int) -> tuple[Any, ...]:
    return (i, f"name-{i}", "2024-01-02 03:04:05.678900", f"{i % 100000}.{i % 100:02d}", BODY,
            f'{{"i": {i}, "tags": ["a", "b"]}}', 2**40 + i, i % 2)


def master(cur: Any) -> Pos:
    cur.execute("SHOW MASTER STATUS")
    f, p = cur.fetchone()[:2]
    return Pos(str(f), int(p))


def create_database(prefix: str = "bench") -> tuple[Any, str]:
    """A fresh database with the ``bench`` table; returns (autocommit connection using it, name)."""
    db = f"{prefix}_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(**APP, charset="utf8mb4", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        cur.execute(TABLE)
    return conn, db


def drop_database(conn: Any, db: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {db}")
    conn.close()


def load(conn: Any, label: str, first_id: int, rows: int, per_txn: int) -> Range:
    """Insert ``rows`` rows in transactions of ``per_txn`` rows (1 = autocommit single-row statements)."""
    with conn.cursor() as cur:
        start = master(cur)
        t0 = time.perf_counter()
        if per_txn <= 1:
            for i in range(first_id, first_id + rows):
                cur.execute(INSERT, row(i))
        else:
            for s in range(first_id, first_id + rows, per_txn):
                conn.begin()
                cur.executemany(INSERT, [row(i) for i in range(s, min(first_id + rows, s + per_txn))])
                conn.commit()
        elapsed = time.perf_counter() - t0
        end = master(cur)
    return Range(label, start, end, rows, first_id, elapsed)


# ---------------------------------------------------------------- raw python-mysql-replication decode
def raw_decode(start: Pos, end: Pos, db: str) -> tuple[int, float, float]:
    """(rows, wall s, cpu s) decoding ``ev.rows`` of ``db`` in [start, end) with BinLogStreamReader.

    Runs in a fresh spawned interpreter so no cache or patch from this process helps or hurts it.
    """
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result: tuple[int, float, float] = pool.apply(_raw_decode, (start, end, db))
    return result


def _raw_decode(start: Pos, end: Pos, db: str) -> tuple[int, float, float]:
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.event import XidEvent
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    t0, c0 = time.perf_counter(), time.process_time()
    stream = BinLogStreamReader(connection_settings=dict(REPL), server_id=30000 + uuid.uuid4().int % 30000,
                                blocking=False, resume_stream=True, log_file=start.file, log_pos=start.pos,
                                only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, XidEvent],
                                only_schemas=[db], enable_logging=False)
    rows = 0
    try:
        for ev in stream:  # the server is shared: count only our schema; stop at the range end
            if isinstance(ev, XidEvent):
                if (stream.log_file, stream.log_pos) >= end.key():
                    break
                continue
            rows += len(ev.rows)
    finally:
        stream.close()
    return rows, time.perf_counter() - t0, time.process_time() - c0


# ---------------------------------------------------------------- processes and /proc
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_mem_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MiB, from /proc/<pid>/status."""
    vals = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            vals[line.split(":")[0]] = int(line.split()[1]) / 1024
    return vals.get("VmRSS", 0.0), vals.get("VmHWM", 0.0)


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its live descendants (pg_chameleon forks a reader and a replayer)."""
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(p.name))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += proc_cpu_s(p)
        except OSError:
            continue
        todo += children.get(p, [])
    return total


def postgres_cpu_s() -> float:
    """CPU seconds of every ``postgres`` process on the machine, plus what the postmaster reaped from
    exited backends (cutime/cstime). Other users' work counts too: an approximation."""
    total = 0.0
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if (p / "comm").read_text().strip() == "postgres":
                    f = (p / "stat").read_text().rsplit(")", 1)[1].split()
                    total += sum(int(x) for x in f[11:15]) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                continue
    return total


def wait_until(what: str, check: Callable[[], bool], timeout: float = 120.0, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class Child:
    """A program of this project as a child process (``python -m module args``), output to a log file."""

    def __init__(self, module: str | None, args: list[str], log_path: Path, *, python: str = sys.executable,
                 env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.log_path = log_path
        log = log_path.open("ab")
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        argv = [python, *(["-m", module] if module else []), *args]
        self.proc = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=full_env)
        log.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> bool:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise SystemExit(f"{self.log_path.name}: exited with {self.proc.returncode}:\n{tail}")
        return True

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(60)


def write_server_conf(base: Path, db: str, start: Pos, port: int, *, destination: str = "example",
                      lazy: bool = True, client_id: int = 1001) -> Path:
    """canal's conf layout for one destination parsing ``db`` from ``start``.

    ``start`` is given as client ``client_id``'s stored cursor (file-instance ``meta.dat``), i.e. the
    restart path: a configured ``canal.instance.master.position`` would make the parser scan the
    binlog file from its first byte to find the enclosing transaction's start (canal's
    findTransactionBeginPosition), a fixed cost that grows with the offset in the (shared) file.
    """
    conf = base / "server-conf"
    data = base / "server-data"
    (conf / destination).mkdir(parents=True, exist_ok=True)
    (data / destination).mkdir(parents=True, exist_ok=True)
    props = {
        "canal.ip": "127.0.0.1",
        "canal.port": str(port),
        "canal.metrics.pull.port": "",
        "canal.destinations": destination,
        "canal.conf.dir": str(conf),
        "canal.file.data.dir": str(data),
        "canal.file.flush.period": "1000",
        "canal.instance.global.spring.xml": "classpath:spring/file-instance.xml",
        "canal.instance.global.lazy": "true" if lazy else "false",
    }
    cursor = {"identity": {"slaveId": -1, "sourceAddress": {"address": REPL["host"], "port": REPL["port"]}},
              "postion": {"gtid": "", "included": False, "journalName": start.file, "position": start.pos,
                          "serverId": 0, "timestamp": 0}}
    meta = {"clientDatas": [{"clientIdentity": {"clientId": client_id, "destination": destination, "filter": ""},
                             "cursor": cursor}], "destination": destination}
    (data / destination / "meta.dat").write_text(json.dumps(meta))
    (conf / "canal.properties").write_text("".join(f"{k} = {v}\n" for k, v in props.items()))
    inst = {
        "canal.instance.master.address": f"{REPL['host']}:{REPL['port']}",
        "canal.instance.dbUsername": REPL["user"],
        "canal.instance.dbPassword": REPL["password"],
        "canal.instance.mysql.slaveId": str(30000 + uuid.uuid4().int % 30000),
        "canal.instance.connectionCharset": "UTF-8",
        "canal.instance.filter.regex": f"{db}\\\\..*",
    }
    (conf / destination / "instance.properties").write_text("".join(f"{k} = {v}\n" for k, v in inst.items()))
    return conf


def start_server(base: Path, db: str, start: Pos, *, lazy: bool = True) -> tuple[Child, int]:
    """``canal-server --conf DIR`` (as ``python -m adapter.server.main``) on a free port, listening."""
    port = free_port()
    conf = write_server_conf(base, db, start, port, lazy=lazy)
    child = Child("adapter.server.main", ["--conf", str(conf), "--log-level", "WARNING"], base / "canal-server.log")
    wait_until("canal-server to listen", lambda: child.check_alive() and port_open(port), every=0.1)
    return child, port


# ---------------------------------------------------------------- canal-adapter
def adapter_conf(base: Path, writer: str, server_port: int, rest_port: int, db: str, schema: str,
                 timeout_ms: int | None, pg_dbname: str) -> Path:
    """canal-adapter conf (canal's layout): one group, ``logger`` or ``rdb`` into PostgreSQL ``pg_dbname.schema``."""
    conf = base / "adapter-conf"
    conf.mkdir(parents=True)
    outer: dict[str, Any] = {"name": "logger"}
    if writer == "rdb":
        outer = {"name": "rdb", "key": "pg",
                 "properties": {"url": f"postgresql+psycopg://{PG['user']}@{PG['host']}:{PG['port']}/{pg_dbname}"}}
    app = {
        "server": {"port": rest_port, "address": "127.0.0.1"},
        "canal.conf": {
            "mode": "tcp",
            "syncBatchSize": 1000,
            "retries": 3,
            **({"timeout": timeout_ms} if timeout_ms is not None else {}),
            "consumerProperties": {"canal.tcp.server.host": f"127.0.0.1:{server_port}", "canal.tcp.batch.size": 500},
            "srcDataSources": {"defaultDS": {"url": f"jdbc:mysql://{APP['host']}:{APP['port']}/{db}",
                                             "username": APP["user"], "password": APP["password"]}},
            "canalAdapters": [{"instance": "example", "groups": [{"groupId": "g1", "outerAdapters": [outer]}]}],
        },
    }
    (conf / "application.yml").write_text(yaml.safe_dump(app, sort_keys=False))
    if writer == "rdb":
        (conf / "rdb").mkdir()
        mapping = {"dataSourceKey": "defaultDS", "destination": "example", "groupId": "g1", "outerAdapterKey": "pg",
                   "concurrent": True,
                   "dbMapping": {"database": db, "table": "bench", "targetDb": schema, "targetTable": "bench",
                                 "targetPk": {"id": "id"}, "mapAll": True}}
        (conf / "rdb" / "bench.yml").write_text(yaml.safe_dump(mapping, sort_keys=False))
    return conf


def start_adapter(base: Path, conf: Path, rest_port: int, log_path: Path | None = None) -> Child:
    """``canal-adapter --config DIR`` (as ``python -m adapter.node``), REST listening."""
    child = Child("adapter.node", ["--config", str(conf), "--log-level", "WARNING"],
                  log_path or base / "canal-adapter.log")
    wait_until("canal-adapter REST", lambda: child.check_alive() and port_open(rest_port), every=0.1)
    return child


def load_note() -> str:
    """The 1-minute load average against the core count: other processes share the machine."""
    return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def rate(rows: int, seconds: float) -> float:
    return rows / seconds if seconds > 0 else float("inf")


def fmt_rate(rows: int, seconds: float) -> str:
    return f"{rate(rows, seconds):>9,.0f} rows/s"
