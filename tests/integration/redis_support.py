"""Helpers for the redis writer integration tests: source changes → the Dmls canal delivers, and
the expected Redis state computed from what the mapping SQL yields on the source."""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import services

from adapter.dml import DELETE, INSERT, UPDATE, Dml
from adapter.errors import RetriableError
from adapter.writers.base import DataSource, MappingHeader, Routed, WriterConfig, WriterContext
from adapter.writers.redis import RedisMapping, RedisWriter
from adapter.writers.redis import values as V
from adapter.writers.redis.commands import HASH, JSON

_BIT, _TIME = 16, 11


def source_url(db: str) -> str:
    m = services.MARIADB_ROOT
    return f"mysql+pymysql://{m['user']}:{m['password']}@{m['host']}:{m['port']}/{db}?charset=utf8mb4"


def context(db: str) -> WriterContext:
    return WriterContext(data_sources={"ds": DataSource("ds", source_url(db), db)})


def make_writer(db: str, host: str | None = None, **props: Any) -> RedisWriter:
    hosts = host or f"{services.REDIS['host']}:{services.REDIS['port']}"
    w = RedisWriter(WriterConfig("redis", "r1", hosts, props, "example", "g1"), context(db))
    w.open()
    return w


def load(db: str, task: str, body: dict[str, Any]) -> RedisMapping:
    h = MappingHeader(task, f"/conf/redis/{task}", "ds", "example", None, "r1")
    return RedisWriter.parse_mapping(h, {"redisMapping": body}, context(db))


class Source:
    """Applies changes to MariaDB and returns the Dml canal would deliver for each (typed like the core)."""

    def __init__(self, conn: Any, db: str) -> None:
        self.conn, self.db = conn, db

    def execute(self, sql: str, args: Sequence[Any] | None = None) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)

    def rows(self, table: str, where: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT * FROM `{table}` WHERE {where}", args)
            desc = cur.description
            out = []
            for r in cur.fetchall():
                row = {}
                for d, v in zip(desc, r, strict=True):
                    if v is not None and d[1] == _BIT:
                        v = int.from_bytes(v, "big")
                    elif isinstance(v, dt.timedelta) and d[1] == _TIME:
                        v = V.scalar_text(v)  # canal delivers TIME as text
                    row[d[0]] = v
                out.append(row)
            return out

    def _dml(self, table: str, type_: str, data: list[dict[str, Any]], old: list[dict[str, Any]] | None = None) -> Dml:
        return Dml("example", "g1", self.db, table, type_, ("id",), tuple(data),
                   tuple(old) if old is not None else None)

    def insert(self, table: str, **row: Any) -> Dml:
        cols = ", ".join(f"`{c}`" for c in row)
        self.execute(f"INSERT INTO `{table}` ({cols}) VALUES ({', '.join(['%s'] * len(row))})", list(row.values()))
        return self._dml(table, INSERT, self.rows(table, "id = %s", [row["id"]]))

    def update(self, table: str, id_: Any, **changes: Any) -> Dml:
        [before] = self.rows(table, "id = %s", [id_])
        sets = ", ".join(f"`{c}` = %s" for c in changes)
        self.execute(f"UPDATE `{table}` SET {sets} WHERE id = %s", [*changes.values(), id_])
        [after] = self.rows(table, "id = %s", [changes.get("id", id_)])
        old = {k: v for k, v in before.items() if after[k] != v}
        return self._dml(table, UPDATE, [after], [old])

    def delete(self, table: str, id_: Any) -> Dml:
        before = self.rows(table, "id = %s", [id_])
        self.execute(f"DELETE FROM `{table}` WHERE id = %s", [id_])
        return self._dml(table, DELETE, before)


def write(writer: RedisWriter, mapping: RedisMapping | Sequence[RedisMapping], dmls: Sequence[Dml]) -> None:
    maps = [mapping] if isinstance(mapping, RedisMapping) else list(mapping)
    items = [Routed(m, d) for d in dmls for m in maps if m.sql.tables_for(d.database, d.table)]
    writer.write(items)


def write_retrying(writer: RedisWriter, items: Sequence[Routed], deadline_s: float = 60.0) -> int:
    """What the worker does: retry a batch on RetriableError until it lands. Returns the failures seen."""
    failures = 0
    end = time.monotonic() + deadline_s
    while True:
        try:
            writer.write(items)
            return failures
        except RetriableError:
            failures += 1
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def expected_state(writer: RedisWriter, mapping: RedisMapping) -> dict[bytes, Any]:
    """key → value the mapping SQL yields on the source (hash: {field: value}, else the string)."""
    out: dict[bytes, Any] = {}
    for row in writer.source(mapping).fetch(mapping.sql.select()):
        key = mapping.render_key(row)
        if key is None:
            continue
        if mapping.value_form == HASH:
            h = {f.encode(): _b(V.field_value(row[f], mapping.binary)) for f in mapping.value_fields
                 if row[f] is not None}
            if h:
                out[key.encode()] = h
        elif mapping.value_form == JSON:
            out[key.encode()] = V.json_document(mapping.value_fields, row)
        elif row[mapping.value_fields[0]] is not None:
            out[key.encode()] = _b(V.field_value(row[mapping.value_fields[0]], mapping.binary))
    return out


def actual_state(r: Any, mapping: RedisMapping) -> dict[bytes, Any]:
    """Every key under the mapping's pattern with its value (pipelined: fast for 100k+ keys)."""
    keys = sorted(set(r.scan_iter(match=mapping.key_pattern(), count=1000)))
    out: dict[bytes, Any] = {}
    for i in range(0, len(keys), 1000):
        chunk = keys[i:i + 1000]
        p = r.pipeline(transaction=False)
        for k in chunk:
            p.type(k)
        types = p.execute()
        p = r.pipeline(transaction=False)
        for k, t in zip(chunk, types, strict=True):
            if t == b"hash":
                p.hgetall(k)
            else:
                p.get(k)
        out.update(zip(chunk, p.execute(), strict=True))
    return out


def _b(v: str | bytes) -> bytes:
    return v.encode() if isinstance(v, str) else v


def redis_client(port: int | None = None, **kw: Any) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port or services.REDIS["port"], **kw)


# ---------------------------------------------------------------- a private redis-server (never the shared one)
def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port(cluster: bool = False) -> int:
    """A free TCP port; for Cluster one below 55536 whose bus port (+10000) is free too."""
    if not cluster:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    for _ in range(200):
        port = random.randint(20000, 45000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


class PrivateRedis:
    """A daemonized redis-server in ``directory`` on a free port, with AOF so a restart keeps data."""

    def __init__(self, directory: Path, *extra: str, port: int | None = None, conf: Path | None = None,
                 persist: bool = True) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra = list(extra)
        self.conf = conf  # a config file first on the command line (sentinel mode needs a writable one)
        self.persist = persist
        self.pid: int | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def start(self, client_kw: dict[str, Any] | None = None, ready_port: int | None = None) -> None:
        pidfile = self.dir / "redis.pid"
        pidfile.unlink(missing_ok=True)
        args = ["redis-server", *([str(self.conf)] if self.conf else []), "--port", str(self.port),
                "--bind", "127.0.0.1", "--daemonize", "yes", "--dir", str(self.dir), "--pidfile", str(pidfile),
                "--logfile", str(self.dir / "redis.log")]
        if self.persist:
            args += ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
        subprocess.run([*args, *self.extra], check=True, timeout=30)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if pidfile.exists() and pidfile.read_text().strip():
                self.pid = int(pidfile.read_text().strip())
                try:
                    client = redis_client(ready_port or self.port, socket_timeout=1, **(client_kw or {}))
                    if client.ping():
                        client.close()
                        return
                except redis.RedisError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"private redis-server on {self.port} did not start; see {self.dir / 'redis.log'}")

    def stop(self) -> None:
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            self.pid = None
            return
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        self.pid = None
