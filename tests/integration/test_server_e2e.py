"""canal-server end to end on the real MariaDB: our client subscribes, gets and acks rows; restart resumes
from meta.dat; bad frames leave other clients served; the password flow; a big transaction stays bounded."""

from __future__ import annotations

import json
import socket
import struct
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_support import (
    WAIT,
    connect,
    insert_rows,
    row_ids,
    wait_ready,
    write_conf,
)

from adapter.client.tcp import CanalClient
from adapter.errors import ProtocolError
from adapter.protocol import EntryProtocol_pb2 as epb
from adapter.protocol import codec, scramble
from adapter.server.config import load_config
from adapter.server.runtime import CanalServer


@pytest.fixture
def table(mysql_conn: Any) -> str:
    name = "s_" + uuid.uuid4().hex[:8]
    with mysql_conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {name} (id INT PRIMARY KEY, v VARCHAR(20))")
    return name


def start(servers: list[CanalServer], conf: Path) -> CanalServer:
    srv = CanalServer(load_config(conf, env={}))
    srv.start()
    servers.append(srv)
    wait_ready(srv)
    return srv


def consume(c: CanalClient, table: str, want: set[int], *, fetch: int = 1,
            log: list[tuple[int, list[epb.Entry]]] | None = None) -> list[int]:
    """Get and ack until every id in ``want`` was seen; returns the ids in delivery order."""
    seen: list[int] = []
    deadline = time.monotonic() + WAIT
    while not want <= set(seen):
        assert time.monotonic() < deadline, f"timed out: missing {sorted(want - set(seen))[:10]}"
        batch_id, entries = c.get_without_ack(fetch, timeout_ms=500)
        if batch_id == -1:
            continue
        seen += row_ids(entries, table)
        if log is not None:
            log.append((batch_id, entries))
        c.ack(batch_id)
    return seen


def test_stream_rows_with_our_client(mysql_conn: Any, mysql_settings: dict[str, Any], mysql_db: str, table: str,
                                     servers: list[CanalServer], tmp_path: Path) -> None:
    srv = start(servers, write_conf(tmp_path, mysql_db, mysql_settings))
    c = connect(srv.port)
    insert_rows(mysql_conn, table, range(1, 51))
    log: list[tuple[int, list[epb.Entry]]] = []
    assert consume(c, table, set(range(1, 51)), log=log) == list(range(1, 51))
    assert [b for b, _ in log] == list(range(1, len(log) + 1))  # batch ids count from 1
    kinds = {e.entryType for _, es in log for e in es}
    assert {epb.TRANSACTIONBEGIN, epb.ROWDATA, epb.TRANSACTIONEND} <= kinds
    c.disconnect()


def test_restart_resumes_from_meta_dat_nothing_lost(mysql_conn: Any, mysql_settings: dict[str, Any], mysql_db: str,
                                                    table: str, servers: list[CanalServer], tmp_path: Path) -> None:
    conf = write_conf(tmp_path, mysql_db, mysql_settings)
    srv = start(servers, conf)
    c = connect(srv.port)
    insert_rows(mysql_conn, table, range(1, 21))
    first = consume(c, table, set(range(1, 21)))
    insert_rows(mysql_conn, table, range(21, 41))
    # one more batch that is never acked: it must come again after the restart
    deadline = time.monotonic() + WAIT
    while True:
        assert time.monotonic() < deadline
        bid, unacked = c.get_without_ack(1, timeout_ms=500)
        if bid != -1 and row_ids(unacked, table):
            break
    assert c.get_without_ack(1, timeout_ms=-1)[0] != 0  # a round trip: every ack before it was handled
    c.disconnect()
    srv.stop()
    servers.remove(srv)
    meta = json.loads((conf / "example" / "meta.dat").read_text())
    cursor = meta["clientDatas"][0]["cursor"]["postion"]
    insert_rows(mysql_conn, table, range(41, 61))  # while the server is down
    srv = start(servers, conf)
    c = connect(srv.port)
    log: list[tuple[int, list[epb.Entry]]] = []
    second = consume(c, table, set(range(1, 61)) - set(first), log=log)
    assert set(first) | set(second) == set(range(1, 61))
    assert set(row_ids(unacked, table)) <= set(second)  # the un-acked batch came again
    for _, entries in log:  # and nothing before the persisted cursor did
        for e in entries:
            assert (e.header.logfileName, e.header.logfileOffset) >= (cursor["journalName"], cursor["position"])
    c.disconnect()


def test_bad_frames_leave_server_serving(mysql_conn: Any, mysql_settings: dict[str, Any], mysql_db: str,
                                         table: str, servers: list[CanalServer], tmp_path: Path) -> None:
    conf = write_conf(tmp_path, mysql_db, mysql_settings,
                      extra="canal.server.max.frame.bytes = 65536")
    srv = start(servers, conf)
    good = connect(srv.port)
    insert_rows(mysql_conn, table, range(1, 6))
    consume(good, table, set(range(1, 6)))
    for payload in (struct.pack(">i", 1 << 20),  # over the limit
                    struct.pack(">i", 50) + b"short",  # truncated
                    struct.pack(">i", 5) + b"\xff" * 5,  # garbage packet
                    b"\x00\x00"):  # truncated header
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        codec.read_packet(s)  # handshake
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(30)
        while s.recv(4096):  # the server answers (or not) and closes; never hangs
            pass
        s.close()
    bad_client = CanalClient("127.0.0.1", srv.port, destination="example", client_id="x1", so_timeout=30)
    with pytest.raises(ProtocolError):
        bad_client.connect()
    insert_rows(mysql_conn, table, range(6, 11))
    assert consume(good, table, set(range(6, 11))) == list(range(6, 11))
    good.disconnect()


def test_password_flow(mysql_conn: Any, mysql_settings: dict[str, Any], mysql_db: str, table: str,
                       servers: list[CanalServer], tmp_path: Path) -> None:
    conf = write_conf(tmp_path, mysql_db, mysql_settings,
                      extra=f"canal.user = canal\ncanal.passwd = {scramble.stored_hash('pa55')}")
    srv = start(servers, conf)
    with pytest.raises(ProtocolError, match="auth failed"):
        CanalClient("127.0.0.1", srv.port, username="canal", password="nope", destination="example").connect()
    with pytest.raises(ProtocolError, match="auth failed"):
        CanalClient("127.0.0.1", srv.port, destination="example").connect()
    c = connect(srv.port, username="canal", password="pa55")
    insert_rows(mysql_conn, table, [1, 2])
    assert consume(c, table, {1, 2}) == [1, 2]
    c.disconnect()


def test_big_transaction_flows_through_a_small_store(mysql_conn: Any, mysql_settings: dict[str, Any],
                                                     mysql_db: str, table: str, servers: list[CanalServer],
                                                     tmp_path: Path) -> None:
    """20k rows in one transaction through a 64-slot / 64 KB store: memory stays bounded, nothing lost."""
    conf = write_conf(tmp_path, mysql_db, mysql_settings,
                      instance_extra="canal.instance.memory.buffer.size = 64\n"
                                     "canal.instance.memory.buffer.memunit = 1024")
    srv = start(servers, conf)
    c = connect(srv.port)
    n = 20_000
    insert_rows(mysql_conn, table, range(1, n + 1), per_txn=n)
    inst = srv.embedded.instance("example")  # type: ignore[union-attr]
    assert inst is not None and inst.store is not None
    store = inst.store
    peak = 0
    seen: list[int] = []
    deadline = time.monotonic() + 300
    while len(seen) < n:
        assert time.monotonic() < deadline, f"only {len(seen)} rows arrived"
        bid, entries = c.get_without_ack(32, timeout_ms=500)
        events, held = store.fill()
        peak = max(peak, held)
        assert events <= 64
        if bid != -1:
            seen += row_ids(entries, table)
            c.ack(bid)
    assert sorted(seen) == list(range(1, n + 1))
    # bounded: at most the byte budget, or one oversized event alone
    assert peak <= max(64 * 1024, max(len(e.SerializeToString()) for e in entries))
    c.disconnect()
