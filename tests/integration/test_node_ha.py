"""Adapter HA on real services: 3 nodes × 6 (instance, group) tasks → 2/2/2; a node cut off from
ZooKeeper loses its tasks to the others and every row still arrives; the sync switch over REST pauses
and resumes every node and is stored in ZooKeeper as canal does."""

from __future__ import annotations

import contextlib
import json
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from pipeline import adapter_node, canal_server
from test_coord_support import GateWatcher, TcpProxy

from adapter.coordination.session import ZkSession
from adapter.node.app import AdapterNode
from adapter.testing import recording, wait_until

GROUPS = [f"g{i}" for i in range(6)]


def conf(zk_hosts: str, prefix: str, node_id: str) -> dict[str, Any]:
    groups = [{"groupId": g, "outerAdapters": [{"name": "recording", "properties": {"sink": f"{prefix}-{g}"}}]}
              for g in GROUPS]
    return {"zookeeperHosts": zk_hosts, "nodeId": node_id, "canalAdapters": [{"instance": "example",
                                                                               "groups": groups}]}


def ids(prefix: str, group: str) -> set[int]:
    return {int(r[3]["id"]) for r in recording(f"{prefix}-{group}").rows()}


@contextlib.contextmanager
def three_nodes(tmp_path: Path, server: Any, zk_chroot: str, prefix: str) -> Iterator[tuple[list[AdapterNode],
                                                                                            TcpProxy]]:
    zk_host, _, chroot = zk_chroot.partition("/")
    host, port = zk_host.split(":")
    proxy = TcpProxy(host, int(port))  # node 0 reaches ZooKeeper through it, so it can be cut off

    def session(hosts: str) -> ZkSession:
        return ZkSession.connect(hosts, timeout_s=4.0)

    with contextlib.ExitStack() as stack:
        nodes = []
        for i in range(3):
            hosts = f"{proxy.address}/{chroot}" if i == 0 else zk_chroot
            nodes.append(stack.enter_context(adapter_node(
                tmp_path / f"n{i}", server, conf(hosts, prefix, f"n{i}"), zk_factory=session,
                balancer_options={"recheck_s": 2.0})))
        try:
            yield nodes, proxy
        finally:
            proxy.blackhole(False)
            proxy.stop()


def insert(conn: Any, db: str, start: int, n: int, table: str = "ha") -> None:
    with conn.cursor() as cur:
        for i in range(start, start + n):
            cur.execute(f"INSERT INTO `{db}`.`{table}` (id) VALUES ({i})")


@pytest.mark.timeout(600)
def test_tasks_spread_and_move_when_a_node_is_cut_off(tmp_path: Path, mysql_db: str, mysql_conn: Any,
                                                       zk_chroot: str) -> None:
    prefix = uuid.uuid4().hex[:8]
    with mysql_conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `{mysql_db}`.ha (id INT PRIMARY KEY)")
    with canal_server(tmp_path, mysql_db) as server, three_nodes(tmp_path, server, zk_chroot, prefix) as (nodes,
                                                                                                         proxy):
        wait_until(lambda: sorted(len(n.placement.held()) for n in nodes) == [2, 2, 2], timeout=120,
                   what="2/2/2 spread")
        watcher = GateWatcher({f"{n.node_id}:{t}": (lambda n=n, t=t: n.placement.holds(t))
                               for n in nodes for t in (f"example/{g}" for g in GROUPS)})
        insert(mysql_conn, mysql_db, 0, 50)
        wait_until(lambda: all(ids(prefix, g) == set(range(50)) for g in GROUPS), timeout=120, what="first rows")
        lost = set(nodes[0].placement.held())
        watcher.start()
        proxy.blackhole(True)  # node 0 can no longer reach ZooKeeper: it stops, its session expires
        wait_until(lambda: nodes[0].placement.held() == [], timeout=60, what="node 0 stops its tasks")
        insert(mysql_conn, mysql_db, 50, 50)
        wait_until(lambda: sorted(len(n.placement.held()) for n in nodes[1:]) == [3, 3], timeout=120,
                   what="its tasks move to the other nodes")
        assert lost <= set(nodes[1].placement.held()) | set(nodes[2].placement.held())
        wait_until(lambda: all(ids(prefix, g) == set(range(100)) for g in GROUPS), timeout=180,
                   what="every row in every group")
        watcher.stop()
        # no task ever had two holders at once (each watcher key is one node's view of one task)
        for g in GROUPS:
            holders = [k for k in watcher.seen if k.endswith(f"example/{g}")]
            assert holders, g
        for overlap in watcher.overlaps:
            tasks = [k.split(":", 1)[1] for k in overlap]
            assert len(tasks) == len(set(tasks)), overlap


def rest(node: AdapterNode, method: str, path: str) -> Any:
    req = urllib.request.Request(f"http://{node.rest_address}{path}", method=method)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.mark.timeout(600)
def test_sync_switch_pauses_and_resumes_every_node(tmp_path: Path, mysql_db: str, mysql_conn: Any,
                                                   zk_chroot: str, zk: Any) -> None:
    prefix = uuid.uuid4().hex[:8]
    with mysql_conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `{mysql_db}`.sw (id INT PRIMARY KEY)")
    with canal_server(tmp_path, mysql_db) as server, three_nodes(tmp_path, server, zk_chroot, prefix) as (nodes, _):
        wait_until(lambda: sorted(len(n.placement.held()) for n in nodes) == [2, 2, 2], timeout=120, what="spread")
        insert(mysql_conn, mysql_db, 0, 10, "sw")
        wait_until(lambda: all(ids(prefix, g) == set(range(10)) for g in GROUPS), timeout=120, what="first rows")
        assert rest(nodes[1], "PUT", "/syncSwitch/example/off")["code"] == 20000
        assert zk.get("/canal-adapter/sync-switch/example")[0] == b"off"
        wait_until(lambda: all(len(n.health()["pausedTasks"]) == 2 for n in nodes), timeout=60,
                   what="every worker on every node paused")
        assert all(rest(n, "GET", "/syncSwitch/example") == {"status": "off"} for n in nodes)
        insert(mysql_conn, mysql_db, 10, 10, "sw")
        assert all(ids(prefix, g) == set(range(10)) for g in GROUPS)  # paused workers make no gets
        assert rest(nodes[2], "PUT", "/syncSwitch/example/on")["code"] == 20000
        assert zk.get("/canal-adapter/sync-switch/example")[0] == b"on"
        wait_until(lambda: all(ids(prefix, g) == set(range(20)) for g in GROUPS), timeout=120,
                   what="rows after switching on")


@pytest.mark.timeout(600)
def test_etl_runs_on_the_task_holder_from_any_node(tmp_path: Path, mysql_db: str, zk_chroot: str) -> None:
    """POST /etl to each node: the two that do not hold the task forward it; the holder's writer runs it."""
    from adapter.node.mappings import WriterSlot

    conf_extra = {"canalAdapters": [{"instance": "example", "groups": [
        {"groupId": "g1", "outerAdapters": [{"name": "recording_mapped", "key": "m1"}]}]}]}
    mapping = {"recording/t.yml": "outerAdapterKey: m1\ndatabase: d\ntable: t\n"}
    with canal_server(tmp_path, mysql_db) as server, contextlib.ExitStack() as stack:
        nodes = [stack.enter_context(adapter_node(tmp_path / f"n{i}", server,
                                                  {"zookeeperHosts": zk_chroot, "nodeId": f"n{i}", **conf_extra},
                                                  mapping)) for i in range(3)]

        def settled() -> bool:  # all three joined, agree on the target, and the target holds the lease
            holders = [n for n in nodes if n.placement.held()]
            return len(holders) == 1 and all(
                n.placement.holder("example/g1") == holders[0].rest_address
                and list(n.placement._balancer.targets().values()) == [holders[0].node_id]  # type: ignore[attr-defined]
                for n in nodes)

        wait_until(settled, timeout=120, what="one settled holder")
        holder = next(n for n in nodes if n.placement.held())
        slot: WriterSlot = holder.slots[0]
        for i, n in enumerate(nodes):
            body = rest(n, "POST", f"/etl/recording_mapped/t.yml?params=p{i}")
            assert body["succeeded"] is True, body
        assert [c[1] for c in slot.writer.etl_calls] == [["p0"], ["p1"], ["p2"]]  # type: ignore[attr-defined]
        assert all(not n.slots[0].writer.etl_calls for n in nodes if n is not holder)  # type: ignore[attr-defined]
        assert rest(nodes[0], "GET", "/count/recording_mapped/m1/t.yml") == {"count": 0}
