"""canal-server as a real process on the real MariaDB: kill -9 mid-stream loses nothing, SIGTERM flushes
the last ack, and the third-party canal-python 0.4 client (its own venv) connects, subscribes, gets, acks.

canal-python needs its own venv (it pins an old protobuf); this module creates it when missing:
    python3 -m venv .venv-canalpy && .venv-canalpy/bin/pip install canal-python==0.4 protobuf==3.20.3
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_support import ROOT, WAIT, ServerProcess, connect, free_port, insert_rows, row_ids, write_conf

from adapter.client.tcp import CanalClient
from adapter.protocol import EntryProtocol_pb2 as epb

CANALPY = ROOT / ".venv-canalpy"


@pytest.fixture
def table(mysql_conn: Any) -> str:
    name = "p_" + uuid.uuid4().hex[:8]
    with mysql_conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {name} (id INT PRIMARY KEY, v VARCHAR(20))")
    return name


@pytest.fixture
def procs() -> Iterator[list[ServerProcess]]:
    made: list[ServerProcess] = []
    yield made
    for p in made:
        p.cleanup()


def launch(procs: list[ServerProcess], conf: Path, port: int, log: Path) -> ServerProcess:
    """Start the process and wait until its binlog parser runs (rows written after that are seen)."""
    before = log.read_text().count("binlog parser starting") if log.exists() else 0
    p = ServerProcess(conf, port, log)
    procs.append(p)
    p.start()
    deadline = time.monotonic() + WAIT
    while log.read_text().count("binlog parser starting") <= before:
        assert p.proc is not None and p.proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    return p


def located(entries: list[epb.Entry], table: str) -> dict[int, tuple[str, int]]:
    """id → (binlog file, offset) of the ROWDATA entry that carried it."""
    out = {}
    for e in entries:
        for i in row_ids([e], table):
            out[i] = (e.header.logfileName, e.header.logfileOffset)
    return out


def drain(c: CanalClient, table: str, want: set[int], got: dict[int, tuple[str, int]],
          every: list[epb.Entry] | None = None) -> None:
    deadline = time.monotonic() + WAIT
    while not want <= set(got):
        assert time.monotonic() < deadline, f"missing {sorted(want - set(got))[:10]}"
        bid, entries = c.get_without_ack(1, timeout_ms=500)
        if bid == -1:
            continue
        got.update(located(entries, table))
        if every is not None:
            every += entries
        c.ack(bid)


def cursor_of(conf: Path) -> tuple[str, int]:
    doc = json.loads((conf / "example" / "meta.dat").read_text())
    pos = doc["clientDatas"][0]["cursor"]["postion"]
    return pos["journalName"], pos["position"]


def test_kill_9_mid_stream_loses_nothing(mysql_conn: Any, mysql_settings: dict[str, Any], mysql_db: str,
                                         table: str, procs: list[ServerProcess], tmp_path: Path) -> None:
    port = free_port()
    conf = write_conf(tmp_path, mysql_db, mysql_settings, port=port, extra="canal.file.flush.period = 200")
    log = tmp_path / "server.log"
    server = launch(procs, conf, port, log)
    c = connect(port)
    insert_rows(mysql_conn, table, range(1, 51))
    first: dict[int, tuple[str, int]] = {}
    drain(c, table, set(range(1, 51)), first)
    insert_rows(mysql_conn, table, range(51, 101))
    unacked: list[epb.Entry] = []
    while not row_ids(unacked, table):  # a batch with rows that is taken and never acked
        unacked = c.get_without_ack(1, timeout_ms=5000)[1]
    first.update(located(unacked, table))
    time.sleep(0.5)  # let a periodic flush happen (anything not flushed just comes again)
    server.kill9()
    c.disconnect()
    cursor = cursor_of(conf)
    insert_rows(mysql_conn, table, range(101, 151))  # while the server is dead
    launch(procs, conf, port, log)
    c = connect(port)
    second: dict[int, tuple[str, int]] = {}
    every: list[epb.Entry] = []
    drain(c, table, set(range(1, 151)) - set(first), second, every)
    c.disconnect()
    assert set(first) | set(second) == set(range(1, 151))  # nothing lost
    for e in every:  # only what lies after the persisted cursor came again
        assert (e.header.logfileName, e.header.logfileOffset) >= cursor
    again = {i for i, where in first.items() if where >= cursor}
    assert again <= set(second)  # and all of that did come again (un-acked or acked but not yet flushed)
    assert set(row_ids(unacked, table)) <= set(second)


def test_sigterm_stops_cleanly_and_flushes_last_ack(mysql_conn: Any, mysql_settings: dict[str, Any], mysql_db: str,
                                                    table: str, procs: list[ServerProcess], tmp_path: Path) -> None:
    port = free_port()
    conf = write_conf(tmp_path, mysql_db, mysql_settings, port=port, extra="canal.file.flush.period = 3600000")
    server = launch(procs, conf, port, tmp_path / "server.log")
    c = connect(port)
    insert_rows(mysql_conn, table, range(1, 31))
    every: list[epb.Entry] = []
    drain(c, table, set(range(1, 31)), {}, every)
    assert c.get_without_ack(1, timeout_ms=-1)[0] == -1  # a round trip: the last ack was handled
    c.disconnect()
    assert server.terminate() == 0
    end = [e for e in every if e.entryType == epb.TRANSACTIONEND][-1]
    assert cursor_of(conf) == (end.header.logfileName, end.header.logfileOffset + end.header.eventLength)


def canalpy_python() -> Path:
    """The canal-python venv's interpreter, created on first use."""
    py = CANALPY / "bin" / "python"
    probe = [str(py), "-c", "import canal.client"]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return py
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(CANALPY)], check=True, capture_output=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "canal-python==0.4",
                        "protobuf==3.20.3"], check=True, capture_output=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        msg = f"cannot install canal-python into {CANALPY}: {getattr(e, 'stderr', b'')!r}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    return py


CANALPY_SCRIPT = r"""
import json, sys, time
from canal.client import Client
from canal.protocol import EntryProtocol_pb2 as E
host, port, flt, table, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
client = Client()
client.connect(host=host, port=port)
client.check_valid(username=b'', password=b'')
client.subscribe(client_id=b'1001', destination=b'example', filter=flt.encode())
ids, batches, deadline = [], [], time.time() + 120
while len(ids) < n and time.time() < deadline:
    message = client.get(100)
    if message['id']:
        batches.append(message['id'])
    for entry in message['entries']:
        if entry.entryType == E.ROWDATA and entry.header.tableName == table:
            change = E.RowChange()
            change.MergeFromString(entry.storeValue)
            for row in change.rowDatas:
                ids += [int(c.value) for c in row.afterColumns if c.name == 'id']
    if not message['entries']:
        time.sleep(0.1)
client.disconnect()
print('RESULT ' + json.dumps({'ids': ids, 'batches': batches}))
"""


def test_canal_python_client(mysql_conn: Any, mysql_settings: dict[str, Any], mysql_db: str, table: str,
                             procs: list[ServerProcess], tmp_path: Path) -> None:
    py = canalpy_python()
    port = free_port()
    conf = write_conf(tmp_path, mysql_db, mysql_settings, port=port)
    launch(procs, conf, port, tmp_path / "server.log")
    insert_rows(mysql_conn, table, range(1, 41))
    out = subprocess.run([str(py), "-c", CANALPY_SCRIPT, "127.0.0.1", str(port), f"{mysql_db}\\..*", table, "40"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert result["ids"] == list(range(1, 41))
    assert result["batches"] == list(range(1, len(result["batches"]) + 1))
    # its acks were applied: our client (same client id) finds nothing left to read
    c = connect(port)
    assert row_ids(c.get_without_ack(100, timeout_ms=500)[1], table) == []
    c.disconnect()
