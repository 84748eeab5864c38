"""LeaseBalancer: N adapter nodes share M (instance, group) tasks; each task has exactly one holder.

- A task is held through canal's ephemeral ``/otter/canal/destinations/<dest>/<clientId>/running``
  (ClientRunningData JSON), so at most one process consumes a (destination, clientId) at a time, and
  a Java canal client with the same identity is excluded as well.
- Live nodes register ephemeral members under ``/canal-adapter/members`` listing their tasks. Every
  node computes the same target for every task (rendezvous hashing, loads capped at ceil(M/N)), and
  only a task's target competes for it; a holder whose task now targets someone else releases it.
- Order of events: a node starts a task only after it holds the lease, and stops it before
  releasing; on SUSPENDED/LOST every task stops at once (``held()`` turns empty synchronously).
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError

from adapter.coordination import paths
from adapter.coordination.running import RunningMonitor
from adapter.coordination.scheduler import Scheduler, ThreadScheduler, run_and_wait
from adapter.coordination.session import SessionListener, ZkSession, wait_result

log = logging.getLogger(__name__)


@dataclass(frozen=True, order=True, slots=True)
class TaskKey:
    """One consumer identity: canal's (destination, clientId)."""

    destination: str
    client_id: int

    def __str__(self) -> str:
        return f"{self.destination}/{self.client_id}"


def _score(member: str, task: TaskKey) -> int:
    return int.from_bytes(hashlib.sha1(f"{member}\x00{task}".encode()).digest()[:8], "big")


def assign(members: Mapping[str, Collection[TaskKey]]) -> dict[TaskKey, str]:
    """Target member per task. Deterministic for a given view; loads are floor or ceil of M/N.

    Tasks go in sorted order to their highest-scoring candidate that still has room; only
    ``M mod N`` members may reach the ceiling, so a joining member always gets its share.
    """
    active = {m: set(ts) for m, ts in members.items() if ts}
    tasks = sorted(set().union(*active.values())) if active else []
    if not tasks:
        return {}
    floor, extra = divmod(len(tasks), len(active))
    load = dict.fromkeys(active, 0)
    at_ceil = 0
    out: dict[TaskKey, str] = {}
    for task in tasks:
        cands = sorted((m for m in active if task in active[m]), key=lambda m: (_score(m, task), m), reverse=True)
        pick = None
        for m in cands:
            if load[m] < floor or (load[m] == floor and at_ceil < extra):
                pick = m
                break
        if pick is None:
            pick = cands[0]  # uneven task lists: capacity cannot be met, prefer the rendezvous winner
        if load[pick] == floor and extra:
            at_ceil += 1
        load[pick] += 1
        out[task] = pick
    return out


def default_node_id() -> str:
    import os

    return f"{socket.gethostname()}-{os.getpid()}"


class LeaseBalancer:
    """See the module docstring. ``on_acquire``/``on_release`` run on the coordination thread."""

    def __init__(
        self,
        zk: Any,
        node_id: str,
        tasks: Sequence[TaskKey],
        on_acquire: Callable[[TaskKey], None],
        on_release: Callable[[TaskKey], None],
        *,
        address: str = "",
        delay_s: float = 0.0,
        scheduler: Scheduler | None = None,
        recheck_s: float = 10.0,
    ) -> None:
        self._session = zk if isinstance(zk, ZkSession) else ZkSession(zk)
        self._zk = self._session.calls  # bounded: never blocks the coordination thread while suspended
        self.node_id = node_id
        self.address = address or node_id
        self.tasks = list(dict.fromkeys(tasks))
        self._on_acquire, self._on_release = on_acquire, on_release
        self._delay_s = delay_s
        self._own_scheduler = scheduler is None
        self._scheduler: Scheduler = scheduler or ThreadScheduler(f"lease-{node_id}")
        self._recheck_s = recheck_s
        self._member_path = paths.adapter_member(node_id)
        self._targets: dict[TaskKey, str] = {}
        self._registered = False
        self._running = False
        self._monitors: dict[TaskKey, RunningMonitor] = {}
        self._listener = SessionListener(
            on_lost=lambda: setattr(self, "_registered", False),
            on_new_session=lambda: self._scheduler.call_soon(self._register),
        )

    # ------------------------------------------------------------ public
    def start(self) -> None:
        self._running = True
        self._session.add_listener(self._listener)
        for task in self.tasks:
            self._monitors[task] = RunningMonitor(
                self._session,
                paths.client_running(task.destination, task.client_id),
                paths.ClientRunningData(self.address, task.client_id).to_json(),
                address=self.address,
                scheduler=self._scheduler,
                on_active=partial(self._on_acquire, task),
                on_inactive=partial(self._on_release, task),
                delay_s=self._delay_s,
                gate=partial(self._is_target, task),
            )
        self._scheduler.call_soon(self._register)
        for monitor in self._monitors.values():
            monitor.start()
        self._scheduler.call_soon(self._watch_members)
        self._scheduler.call_later(self._recheck_s, self._recheck)

    def stop(self) -> None:
        """Stop every held task (on_release), delete the leases, then leave the membership."""
        self._running = False
        for monitor in self._monitors.values():
            monitor.stop()
        self._session.remove_listener(self._listener)

        def leave() -> None:
            self._registered = False
            try:
                _, stat = self._zk.get(self._member_path)
                if stat.ephemeralOwner == self._session.session_id:
                    self._zk.delete(self._member_path)
            except (NoNodeError, KazooException):
                pass

        run_and_wait(self._scheduler, leave, 10.0)
        if self._own_scheduler and isinstance(self._scheduler, ThreadScheduler):
            self._scheduler.stop()

    def held(self) -> set[TaskKey]:
        """Tasks this node holds right now (empty the instant the session is suspended)."""
        return {t for t, m in self._monitors.items() if m.is_active()}

    def holds(self, task: TaskKey) -> bool:
        m = self._monitors.get(task)
        return m is not None and m.is_active()

    def holder(self, task: TaskKey) -> str | None:
        """The holder's advertised address (from the lease node, as last seen), None when free/unknown."""
        m = self._monitors.get(task)
        data = m.active_data if m is not None else None
        return paths.running_owner(data)[0] or None if data else None

    def targets(self) -> dict[TaskKey, str]:
        """The current target node per task, as this node computes it."""
        return dict(self._targets)

    # ------------------------------------------------------------ coordination thread
    def _is_target(self, task: TaskKey) -> bool:
        return self._running and self._registered and self._targets.get(task) == self.node_id

    def _register(self) -> None:
        """Create our member node; a leftover one (our previous process, not yet expired) is waited out."""
        if not self._running or not self._session.connected:
            return
        tasks = [{"destination": t.destination, "clientId": t.client_id} for t in self.tasks]
        body = paths.dumps({"address": self.address, "tasks": tasks})
        try:
            self._zk.create(self._member_path, body, ephemeral=True, makepath=True)
        except NodeExistsError:
            try:
                _, stat = self._zk.get(self._member_path)
            except KazooException:
                stat = None
            if stat is None or stat.ephemeralOwner != self._session.session_id:
                log.warning("member node held by another session; waiting for it to expire",
                            extra={"path": self._member_path})
                self._scheduler.call_later(1.0, self._register)
                return
        except KazooException as e:
            log.warning("cannot register member", extra={"path": self._member_path, "error": repr(e)})
            return
        self._registered = True
        self._refresh()

    def _watch_members(self) -> None:
        def on_children(children: list[str]) -> bool | None:
            if not self._running:
                return False
            self._scheduler.call_soon(self._refresh)
            return None

        try:
            self._zk.ensure_path(paths.ADAPTER_MEMBERS_ROOT)
        except KazooException as e:
            log.warning("cannot watch members yet", extra={"error": repr(e)})
            self._scheduler.call_later(1.0, self._watch_members)
            return
        client = self._session.client
        self._session.spawn_watch(lambda: client.ChildrenWatch(paths.ADAPTER_MEMBERS_ROOT, on_children), "members")

    def _recheck(self) -> None:
        """Safety net: recompute periodically even if a watch notification was lost."""
        if not self._running:
            return
        self._refresh()
        self._scheduler.call_later(self._recheck_s, self._recheck)

    def _refresh(self) -> None:
        if not self._running or not self._session.connected:
            return
        try:
            members = self._read_members()
        except KazooException as e:
            log.info("member refresh deferred", extra={"error": repr(e)})
            return
        targets = assign(members)
        if targets != self._targets:
            mine = sorted(str(t) for t, m in targets.items() if m == self.node_id)
            log.info("lease targets", extra={"node": self.node_id, "members": len(members), "mine": mine})
        self._targets = targets
        for monitor in self._monitors.values():
            monitor.poke()

    def _read_members(self) -> dict[str, list[TaskKey]]:
        names = self._zk.get_children(paths.ADAPTER_MEMBERS_ROOT)
        raw = self._session.client
        reads = {n: raw.get_async(paths.adapter_member(n)) for n in names}  # pipelined
        out: dict[str, list[TaskKey]] = {}
        for name, result in reads.items():
            try:
                data, _ = wait_result(raw, result)
            except NoNodeError:
                continue
            out[name] = list(_parse_tasks(name, data))
        return out


def _parse_tasks(name: str, data: bytes | None) -> Iterable[TaskKey]:
    try:
        obj = json.loads(data or b"{}")
        return [TaskKey(str(t["destination"]), int(t["clientId"])) for t in obj.get("tasks", [])]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        log.warning("unreadable member node ignored", extra={"member": name, "error": repr(e)})
        return []
