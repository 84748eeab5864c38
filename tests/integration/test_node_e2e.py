"""End to end on real services: MariaDB → canal-server → canal-adapter → recording writer and logger.

Also: a writer that keeps failing (retries, switch off, nothing acked, every row after the fix) and
a cut connection between adapter and server (reconnect, nothing lost).
"""

from __future__ import annotations

import json
import logging
import sys
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from pipeline import adapter_node, canal_server, pipeline
from test_coord_support import TcpProxy

from adapter.testing import failure_control, recording, wait_until


def sink_events(name: str) -> list[tuple[str, int, dict[str, Any]]]:
    """(type, id, row) per row received, in delivery order."""
    return [(t, int(row["id"]), row) for (_table, t, _db, row) in recording(name).rows()]


def per_pk(events: list[tuple[str, int, dict[str, Any]]]) -> dict[int, list[tuple[str, Any]]]:
    out: dict[int, list[tuple[str, Any]]] = defaultdict(list)
    for t, pk, row in events:
        out[pk].append((t, row.get("v")))
    return out


def collapse_replays(seq: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """At-least-once: a replayed batch repeats a suffix; keep the first occurrence of each step."""
    out: list[tuple[str, Any]] = []
    for step in seq:
        if step not in out:
            out.append(step)
    return out


def write_workload(conn: Any, db: str, table: str, n: int) -> dict[int, list[tuple[str, Any]]]:
    """Insert n rows, update the even ones, delete every third; returns the expected events per id."""
    expected: dict[int, list[tuple[str, Any]]] = defaultdict(list)
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE IF NOT EXISTS `{db}`.`{table}` (id INT PRIMARY KEY, v INT, d DECIMAL(10,2), "
                    f"at DATETIME(3), b VARBINARY(8))")
        for start in range(0, n, 50):
            ids = range(start, min(n, start + 50))
            cur.execute("BEGIN")
            cur.executemany(f"INSERT INTO `{db}`.`{table}` (id, v, d, at, b) VALUES (%s, %s, 1.50, "
                            f"'2024-01-02 03:04:05.123', x'0001')", [(i, i) for i in ids])
            cur.execute("COMMIT")
            for i in ids:
                expected[i].append(("INSERT", i))
        for i in range(0, n, 2):
            cur.execute(f"UPDATE `{db}`.`{table}` SET v = v + 1000 WHERE id = %s", (i,))
            expected[i].append(("UPDATE", i + 1000))
        for i in range(0, n, 3):
            cur.execute(f"DELETE FROM `{db}`.`{table}` WHERE id = %s", (i,))
            expected[i].append(("DELETE", expected[i][-1][1]))
    return expected


@pytest.mark.timeout(300)
def test_rows_arrive_in_order_per_primary_key(tmp_path: Path, mysql_db: str, mysql_conn: Any,
                                              caplog: pytest.LogCaptureFixture) -> None:
    sink = uuid.uuid4().hex
    conf = {"canalAdapters": [{"instance": "example", "groups": [{"groupId": "g1", "outerAdapters": [
        {"name": "logger"}, {"name": "recording", "properties": {"sink": sink}}]}]}], "syncBatchSize": 37}
    caplog.set_level(logging.INFO, logger="adapter.writers.logger")
    with pipeline(tmp_path, mysql_db, conf) as p:
        expected = write_workload(mysql_conn, mysql_db, "items", 300)
        total = sum(len(v) for v in expected.values())
        wait_until(lambda: len(collapse_all(sink_events(sink))) >= total, timeout=120, what=f"{total} events")
        got = per_pk(sink_events(sink))
        assert {k: collapse_replays(v) for k, v in got.items()} == expected
        first = next(r for t, pk, r in sink_events(sink) if pk == 1 and t == "INSERT")
        assert str(first["d"]) == "1.50" and first["b"] == b"\x00\x01" and first["at"].microsecond == 123000
        status = json.loads(urllib.request.urlopen(f"http://{p.node.rest_address}/destinations", timeout=30).read())
        assert status == [{"destination": "example", "status": "on"}]
        wait_until(lambda: 'canal_adapter_batches_total{destination="example",group="g1"}' in urllib.request.urlopen(
            f"http://{p.node.rest_address}/metrics", timeout=30).read().decode(), what="acked batches in /metrics")
    lines = [r.getMessage() for r in caplog.records if r.name == "adapter.writers.logger"]
    assert any(line.startswith("DML: ") and f'"database":"{mysql_db}"' in line for line in lines)


def collapse_all(events: list[tuple[str, int, dict[str, Any]]]) -> set[tuple[str, int, Any]]:
    return {(t, pk, row.get("v")) for t, pk, row in events}


@pytest.mark.timeout(300)
def test_failing_writer_stops_acks_nothing_and_resumes(tmp_path: Path, mysql_db: str, mysql_conn: Any) -> None:
    name = uuid.uuid4().hex
    conf = {"retries": 3, "onExhausted": "stop", "canalAdapters": [{"instance": "example", "groups": [
        {"groupId": "g1", "outerAdapters": [{"name": "failing", "properties": {"sink": name, "failing": True}}]}]}]}
    control = failure_control(name)
    with canal_server(tmp_path, mysql_db) as server:
        with adapter_node(tmp_path / "a", server, conf) as node:
            with mysql_conn.cursor() as cur:
                cur.execute(f"CREATE TABLE `{mysql_db}`.f (id INT PRIMARY KEY, v INT)")
                cur.execute(f"INSERT INTO `{mysql_db}`.f VALUES (1, 1), (2, 2)")
            wait_until(lambda: not node.switch.is_on("example"), timeout=120, what="switch off after retries")
            assert control.failures >= 3 and recording(name).rows() == []
        # A brand-new node (nothing in memory; without ZooKeeper its switch starts on) gets every row:
        # the server never saw an ack for them.
        control.failing = False
        fixed = {**conf, "canalAdapters": [{"instance": "example", "groups": [
            {"groupId": "g1", "outerAdapters": [{"name": "failing", "properties": {"sink": name}}]}]}]}
        with adapter_node(tmp_path / "b", server, fixed):
            wait_until(lambda: {r[3]["id"] for r in recording(name).rows()} == {1, 2}, timeout=120,
                       what=f"rows re-delivered to a new node; got {recording(name).rows()[:5]} {control}")


@pytest.mark.timeout(300)
def test_fixed_writer_resumes_after_switch_on(tmp_path: Path, mysql_db: str, mysql_conn: Any) -> None:
    name = uuid.uuid4().hex
    conf = {"retries": 2, "canalAdapters": [{"instance": "example", "groups": [
        {"groupId": "g1", "outerAdapters": [{"name": "failing", "properties": {"sink": name, "failing": True}}]}]}]}
    control = failure_control(name)
    with pipeline(tmp_path, mysql_db, conf) as p, mysql_conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `{mysql_db}`.g (id INT PRIMARY KEY, v INT)")
        cur.execute(f"INSERT INTO `{mysql_db}`.g VALUES (1, 1), (2, 2), (3, 3)")
        wait_until(lambda: not p.node.switch.is_on("example"), timeout=120, what="switch off")
        control.failing = False
        req = urllib.request.Request(f"http://{p.node.rest_address}/syncSwitch/example/on", method="PUT")
        assert json.loads(urllib.request.urlopen(req, timeout=30).read())["code"] == 20000
        wait_until(lambda: {r[3]["id"] for r in recording(name).rows()} == {1, 2, 3}, timeout=120,
                   what="all rows after the fix")


@pytest.mark.timeout(300)
def test_reconnects_after_the_connection_is_cut(tmp_path: Path, mysql_db: str, mysql_conn: Any) -> None:
    sink = uuid.uuid4().hex
    conf = {"canalAdapters": [{"instance": "example", "groups": [
        {"groupId": "g1", "outerAdapters": [{"name": "recording", "properties": {"sink": sink}}]}]}]}
    with canal_server(tmp_path, mysql_db) as server:
        proxy = TcpProxy("127.0.0.1", server.port)
        # the proxy's cut leaves the socket silent (no FIN): the read timeout detects it
        conf["consumerProperties"] = {"canal.tcp.server.host": proxy.address, "canal.tcp.so.timeout": 3000}
        try:
            with adapter_node(tmp_path / "a", server, conf) as node, mysql_conn.cursor() as cur:
                cur.execute(f"CREATE TABLE `{mysql_db}`.c (id INT PRIMARY KEY)")
                for i in range(20):
                    cur.execute(f"INSERT INTO `{mysql_db}`.c VALUES ({i})")
                    if i in (5, 12):
                        proxy.drop_connections()
                wait_until(lambda: {r[3]["id"] for r in recording(sink).rows()} == set(range(20)), timeout=120,
                           what="every row despite cuts")
                assert node.health()["stoppedWorkers"] == []
        finally:
            proxy.stop()


@pytest.mark.timeout(300)
def test_server_found_through_zookeeper(tmp_path: Path, mysql_db: str, mysql_conn: Any, zk_chroot: str) -> None:
    """consumerProperties without canal.tcp.server.host: the adapter follows the running server in ZooKeeper."""
    sink = uuid.uuid4().hex
    conf = {"consumerProperties": {"canal.tcp.zookeeper.hosts": zk_chroot},
            "canalAdapters": [{"instance": "example", "groups": [
                {"groupId": "g1", "outerAdapters": [{"name": "recording", "properties": {"sink": sink}}]}]}]}
    with canal_server(tmp_path, mysql_db, zk_hosts=zk_chroot) as server, \
            adapter_node(tmp_path / "a", server, conf), mysql_conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `{mysql_db}`.z (id INT PRIMARY KEY)")
        cur.executemany(f"INSERT INTO `{mysql_db}`.z VALUES (%s)", [(i,) for i in range(10)])
        wait_until(lambda: {r[3]["id"] for r in recording(sink).rows()} == set(range(10)), timeout=120,
                   what="rows through the ZooKeeper-discovered server")


@pytest.mark.timeout(300)
def test_reconnects_after_a_server_restart(tmp_path: Path, mysql_db: str, mysql_conn: Any) -> None:
    sink = uuid.uuid4().hex
    conf = {"canalAdapters": [{"instance": "example", "groups": [
        {"groupId": "g1", "outerAdapters": [{"name": "recording", "properties": {"sink": sink}}]}]}]}
    with mysql_conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `{mysql_db}`.r (id INT PRIMARY KEY)")
    got = lambda: {r[3]["id"] for r in recording(sink).rows()}  # noqa: E731
    with canal_server(tmp_path, mysql_db) as server, adapter_node(tmp_path / "a", server, conf) as node:
        with mysql_conn.cursor() as cur:
            cur.executemany(f"INSERT INTO `{mysql_db}`.r VALUES (%s)", [(i,) for i in range(10)])
        wait_until(lambda: got() == set(range(10)), timeout=120, what="rows before the restart")
        server.stop()  # the same conf dir and port: the file meta keeps the acked cursor
        with mysql_conn.cursor() as cur:
            cur.executemany(f"INSERT INTO `{mysql_db}`.r VALUES (%s)", [(i,) for i in range(10, 20)])
        with canal_server(tmp_path, mysql_db, port=server.port):
            wait_until(lambda: got() == set(range(20)), timeout=120, what="rows written while the server was down")
            assert node.health()["stoppedWorkers"] == []
