"""canal-server wired to ZooKeeper (canal.zkServers + default-instance.xml) on the real services: one of two
servers runs the destination, cursors land in ZooKeeper, the standby refuses, and after the active stops
the standby takes over from the ZooKeeper cursor with nothing lost."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_support import (
    WAIT,
    insert_rows,
    row_ids,
    wait_ready,
    write_conf,
)

from adapter.client.tcp import CanalClient
from adapter.errors import ProtocolError
from adapter.server.config import load_config
from adapter.server.runtime import CanalServer

RUNNING = "/otter/canal/destinations/example/running"
CURSOR = "/otter/canal/destinations/example/1001/cursor"


@pytest.fixture
def table(mysql_conn: Any) -> str:
    name = "h_" + uuid.uuid4().hex[:8]
    with mysql_conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {name} (id INT PRIMARY KEY, v VARCHAR(20))")
    return name


def wait_for(pred: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        value = pred()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def running_address(zk: Any) -> str | None:
    if not zk.exists(RUNNING):
        return None
    return str(json.loads(zk.get(RUNNING)[0])["address"])


def consume(c: CanalClient, table: str, want: set[int]) -> list[int]:
    seen: list[int] = []
    deadline = time.monotonic() + WAIT
    while not want <= set(seen):
        assert time.monotonic() < deadline, f"missing {sorted(want - set(seen))[:10]}"
        bid, entries = c.get_without_ack(1, timeout_ms=500)
        if bid != -1:
            seen += row_ids(entries, table)
            c.ack(bid)
    return seen


def test_two_servers_one_runs_standby_takes_over(mysql_conn: Any, mysql_settings: dict[str, Any], mysql_db: str,
                                                 table: str, zk_chroot: str, zk: Any, servers: list[CanalServer],
                                                 tmp_path: Path) -> None:
    extra = (f"canal.zkServers = {zk_chroot}\ncanal.zookeeper.flush.period = 100\n"
             "canal.instance.global.spring.xml = classpath:spring/default-instance.xml")
    made = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        srv = CanalServer(load_config(write_conf(tmp_path / name, mysql_db, mysql_settings, extra=extra), env={}),
                          zk_session_timeout_s=4.0)
        srv.start()
        servers.append(srv)
        made.append(srv)
    by_addr = {s.address: s for s in made}
    active = by_addr[wait_for(lambda: running_address(zk), "a running node")]
    standby = next(s for s in made if s is not active)
    wait_ready(active)
    assert sorted(zk.get_children("/otter/canal/destinations/example/cluster")) == sorted(by_addr)

    with pytest.raises(ProtocolError, match="should start first"):
        CanalClient("127.0.0.1", standby.port, destination="example", so_timeout=30).connect()

    c = CanalClient("127.0.0.1", active.port, destination="example", so_timeout=30)
    c.connect()
    insert_rows(mysql_conn, table, range(1, 21))
    first = consume(c, table, set(range(1, 21)))
    c.disconnect()
    wait_for(lambda: zk.exists(CURSOR) and b'"@type"' in zk.get(CURSOR)[0], "the cursor in ZooKeeper")

    active.stop()
    servers.remove(active)
    insert_rows(mysql_conn, table, range(21, 41))
    wait_for(lambda: running_address(zk) == standby.address, "the standby to take over")
    wait_ready(standby)
    c = CanalClient("127.0.0.1", standby.port, destination="example", so_timeout=30)
    wait_for(lambda: _try_connect(c), "the new active to serve")
    second = consume(c, table, set(range(21, 41)))
    c.disconnect()
    assert set(first) | set(second) == set(range(1, 41))
    assert not set(second) & set(range(1, 21))  # the stop flushed every ack: nothing before came again


def _try_connect(c: CanalClient) -> bool:
    try:
        c.connect()
        return True
    except ProtocolError:
        return False
