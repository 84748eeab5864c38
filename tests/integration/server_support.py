"""Helpers for canal-server integration tests: conf dirs on the real MariaDB, processes, row extraction."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import services

from adapter.client.tcp import CanalClient
from adapter.errors import RetriableError
from adapter.protocol import EntryProtocol_pb2 as epb
from adapter.server.events import LogPosition
from adapter.server.runtime import CanalServer

COMPAT = Path(services.COMPAT) / "server-conf"
ROOT = Path(__file__).resolve().parents[2]
WAIT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def master(conn: Any) -> LogPosition:
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        f, p = cur.fetchone()[:2]
    return LogPosition(f, int(p))


def write_conf(tmp_path: Path, db: str, mysql: dict[str, Any], start: LogPosition | None = None, *,
               port: int = 0, extra: str = "", instance_extra: str = "") -> Path:
    """canal's shipped files, unchanged, plus appended overrides for this test.

    Without ``start`` the parser begins at the binlog's end (no scan of the shared, large binlog
    file for a transaction start): wait for :func:`wait_ready` before writing rows.
    """
    conf = tmp_path / "conf"
    shutil.copytree(COMPAT, conf)
    with (conf / "canal.properties").open("a") as f:
        f.write(f"\ncanal.ip = 127.0.0.1\ncanal.port = {port}\ncanal.metrics.pull.port =\n{extra}\n")
    with (conf / "example" / "instance.properties").open("a") as f:
        f.write(f"\ncanal.instance.master.address = {mysql['host']}:{mysql['port']}\n"
                f"canal.instance.dbUsername = {mysql['user']}\ncanal.instance.dbPassword = {mysql['password']}\n"
                f"canal.instance.master.journal.name = {start.journal_name if start else ''}\n"
                f"canal.instance.master.position = {start.position if start else ''}\n"
                f"canal.instance.filter.regex = {db}\\\\..*\n"
                f"canal.instance.mysql.slaveId = {20000 + uuid.uuid4().int % 30000}\n{instance_extra}\n")
    return conf


def wait_ready(server: Any, destination: str = "example") -> None:
    """Wait until the in-process server's parser has resolved its start position."""
    deadline = time.monotonic() + WAIT
    while True:
        inst = server.embedded.instance(destination) if server.embedded is not None else None
        if inst is not None and inst.parser is not None and inst.parser.position is not None:
            return
        assert time.monotonic() < deadline, "the binlog parser did not start"
        time.sleep(0.05)


def insert_rows(conn: Any, table: str, ids: Iterable[int], per_txn: int = 10) -> None:
    ids = list(ids)
    for i in range(0, len(ids), per_txn):
        chunk = ids[i:i + per_txn]
        conn.begin()
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {table} (id, v) VALUES (%s, %s)", [(n, f"v{n}") for n in chunk])
        conn.commit()


def row_ids(entries: Sequence[epb.Entry], table: str) -> list[int]:
    """ids of the rows inserted into ``table``, in order."""
    out: list[int] = []
    for e in entries:
        if e.entryType != epb.ROWDATA or e.header.tableName != table:
            continue
        rc = epb.RowChange()
        rc.ParseFromString(e.storeValue)
        if rc.eventType == epb.INSERT and not rc.isDdl:
            for rd in rc.rowDatas:
                out += [int(c.value) for c in rd.afterColumns if c.name == "id"]
    return out


def connect(port: int, **kw: Any) -> CanalClient:
    """A connected, subscribed client; retries while the server is (re)starting."""
    deadline = time.monotonic() + WAIT
    while True:
        c = CanalClient("127.0.0.1", port, destination="example", so_timeout=60, **kw)
        try:
            c.connect()
            return c
        except RetriableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class ServerProcess:
    """``canal-server --conf DIR`` as a child process."""

    def __init__(self, conf: Path, port: int, log_path: Path) -> None:
        self.conf, self.port, self.log_path = conf, port, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "adapter.server.main", "--conf", str(self.conf)],
                                     cwd=ROOT, stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + WAIT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"canal-server exited with {self.proc.returncode}: {self.log_path.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(WAIT)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(WAIT)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)


@pytest.fixture
def servers() -> Iterator[list[CanalServer]]:
    """In-process servers a test starts; every one is stopped afterwards."""
    made: list[CanalServer] = []
    yield made
    for s in made:
        s.stop()
