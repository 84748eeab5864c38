"""LeaseBalancer: the assignment rule, and hand-overs on an in-memory ZooKeeper (one holder, stop before release)."""

from __future__ import annotations

import random
import sys
from collections import Counter
from pathlib import Path

from adapter.coordination import paths
from adapter.coordination.balancer import LeaseBalancer, TaskKey, assign
from adapter.coordination.session import ZkSession

sys.path.insert(0, str(Path(__file__).parent))
from test_coord_fakezk import FakeZk, FakeZkServer, ManualScheduler

TASKS = [TaskKey(d, c) for d in ("example", "other") for c in (1001, 1002, 1003)]


def loads(targets: dict[TaskKey, str]) -> list[int]:
    return sorted(Counter(targets.values()).values())


def test_assign_is_even_and_deterministic() -> None:
    members = {f"n{i}": TASKS for i in range(3)}
    t = assign(members)
    assert set(t) == set(TASKS) and loads(t) == [2, 2, 2]
    shuffled = dict(random.Random(7).sample(list(members.items()), 3))
    assert assign(shuffled) == t
    four = assign({**members, "n3": TASKS})
    assert loads(four) == [1, 1, 2, 2]
    assert "n3" in four.values()  # a joining member always gets its share
    assert loads(assign({"n0": TASKS})) == [6]
    assert assign({}) == {} and assign({"n0": []}) == {}


def test_assign_honours_each_members_task_list() -> None:
    only = {"n0": TASKS[:3], "n1": TASKS[3:], "n2": TASKS}
    t = assign(only)
    for task, m in t.items():
        assert task in only[m]
    assert set(t) == set(TASKS)


class Node:
    def __init__(self, server: FakeZkServer, sched: ManualScheduler, name: str, log: list[tuple[str, str, str]]):
        self.name = name
        self.zk: FakeZk = server.client()
        self.running: set[TaskKey] = set()

        def acquire(t: TaskKey) -> None:
            assert t in self.owned_leases(server), "started before holding the lease"
            self.running.add(t)
            log.append((name, "start", str(t)))

        def release(t: TaskKey) -> None:
            self.running.discard(t)
            log.append((name, "stop", str(t)))

        self.balancer = LeaseBalancer(
            ZkSession(self.zk, spawn=lambda fn, name: fn()),
            name,
            TASKS,
            acquire,
            release,
            address=f"{name}:8081",
            scheduler=sched,
        )

    def owned_leases(self, server: FakeZkServer) -> set[TaskKey]:
        out = set()
        for t in TASKS:
            node = server.nodes.get(paths.client_running(t.destination, t.client_id))
            if node and node[1].ephemeralOwner == self.zk.session:
                out.add(t)
        return out


def no_two_running(log: list[tuple[str, str, str]]) -> bool:
    running: dict[str, str] = {}
    for who, what, task in log:
        if what == "start":
            if task in running:
                return False
            running[task] = who
        else:
            running.pop(task, None)
    return True


def test_three_nodes_share_six_tasks_then_one_dies_then_a_fourth_joins() -> None:
    server, sched, log = FakeZkServer(), ManualScheduler(), []
    nodes = [Node(server, sched, f"n{i}", log) for i in range(3)]
    for n in nodes:
        n.balancer.start()
    sched.run()
    assert sorted(len(n.running) for n in nodes) == [2, 2, 2]
    for n in nodes:
        assert n.balancer.held() == n.running == n.owned_leases(server)
    data = server.nodes[paths.client_running("example", 1001)][0]
    assert paths.ClientRunningData.from_json(data).client_id == 1001

    nodes[0].zk.crash()  # the process dies (its tasks with it); its session expires: leases and member go
    log += [("n0", "stop", str(t)) for t in sorted(nodes[0].running)]
    sched.advance(0.1)
    live = nodes[1:]
    assert sorted(len(n.running) for n in live) == [3, 3]
    assert set().union(*(n.running for n in live)) == set(TASKS)

    late = Node(server, sched, "n3", log)
    late.balancer.start()
    sched.advance(0.1)
    live.append(late)
    assert sorted(len(n.running) for n in live) == [2, 2, 2]
    assert no_two_running(log)
    holder = next(n for n in live if TASKS[0] in n.running)
    assert nodes[1].balancer.holder(TASKS[0]) == f"{holder.name}:8081"


def test_suspended_node_stops_everything_at_once_and_resumes_with_the_same_session() -> None:
    server, sched, log = FakeZkServer(), ManualScheduler(), []
    a, b = Node(server, sched, "a", log), Node(server, sched, "b", log)
    a.balancer.start()
    b.balancer.start()
    sched.run()
    mine = set(a.running)
    assert len(mine) == 3
    a.zk.suspend()
    assert a.balancer.held() == set()  # synchronously, before any callback ran
    sched.run()
    assert a.running == set()
    a.zk.resume()
    sched.run()
    assert a.running == mine  # same session: the leases survived
    assert no_two_running(log)


def test_stop_releases_everything_and_the_rest_take_over() -> None:
    server, sched, log = FakeZkServer(), ManualScheduler(), []
    a, b = Node(server, sched, "a", log), Node(server, sched, "b", log)
    a.balancer.start()
    b.balancer.start()
    sched.run()
    a.balancer.stop()
    sched.advance(0.1)
    assert a.running == set() and b.running == set(TASKS)
    assert paths.adapter_member("a") not in server.nodes
    assert no_two_running(log)


def test_a_task_held_by_someone_else_is_never_started() -> None:
    server, sched, log = FakeZkServer(), ManualScheduler(), []
    java = server.client()  # e.g. a Java canal client with the same identity
    java.create(paths.client_running("example", 1001), b'{"active":true,"address":"1.1.1.1","clientId":1001}',
                ephemeral=True, makepath=True)
    a = Node(server, sched, "a", log)
    a.balancer.start()
    sched.run()
    assert a.running == set(TASKS) - {TaskKey("example", 1001)}
    java.crash()
    sched.advance(0.1)
    assert a.running == set(TASKS)
