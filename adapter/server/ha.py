"""ZkRunningPolicy: the server's ZooKeeper HA (canal's CanalController + ServerRunningMonitor wiring).

- registers ``/otter/canal/cluster/{ip:port}`` and ``/destinations/{dest}/cluster/{ip:port}``
  (ephemeral; re-created on a new session and whenever they vanish);
- runs one RunningMonitor per destination on ``/destinations/{dest}/running``; winning starts the
  instance, losing it stops the instance;
- lazy destinations (``canal.instance.global.lazy``) enter the election on their first SUB;
- the last UNSUB and ``stop()`` release (stop first, then delete the running node).

Beyond canal: a server stops its instance as soon as its ZooKeeper connection is SUSPENDED (canal
keeps running until it can reach ZooKeeper again: split brain, alibaba/canal#2859), and
``is_serving`` is False from that instant, before any other server can win.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError

from adapter.coordination import paths
from adapter.coordination.running import DEFAULT_DELAY_S, RunningMonitor
from adapter.coordination.scheduler import Scheduler, ThreadScheduler, run_and_wait
from adapter.coordination.session import SessionListener, ZkSession
from adapter.server.contracts import InstanceController

log = logging.getLogger(__name__)


class Refreshable(Protocol):
    """The ZooKeeper meta manager as the policy uses it (ZkMetaManager)."""

    def refresh(self, destination: str) -> None:
        """Re-read ``destination`` before this server starts it (the previous runner moved its cursors)."""
        ...

    def flush(self) -> None:
        """Write changed cursors now (after stopping, before the running node is deleted)."""
        ...


class ZkRunningPolicy:
    """RunningPolicy for ``canal.zkServers`` deployments. ``zk`` is a ZkSession or a started KazooClient."""

    def __init__(
        self,
        zk: Any,
        address: str,
        *,
        delay_s: float = DEFAULT_DELAY_S,
        meta: Refreshable | None = None,
        scheduler: Scheduler | None = None,
        decide_timeout_s: float = 10.0,
    ) -> None:
        self._session = zk if isinstance(zk, ZkSession) else ZkSession(zk)
        self._zk = self._session.calls  # bounded: never blocks the coordination thread while suspended
        self.address = address
        self._delay_s = delay_s
        self._meta = meta
        self._own_scheduler = scheduler is None
        self._scheduler: Scheduler = scheduler or ThreadScheduler(f"canal-ha-{address}")
        self._decide_timeout_s = decide_timeout_s
        self._lock = threading.Lock()
        self._monitors: dict[str, RunningMonitor] = {}
        self._competing: set[str] = set()
        self._controller: InstanceController | None = None
        self._lazy = False
        self._stopped = False
        self._wanted: set[str] = set()  # our ephemeral nodes that must exist (touched on the scheduler)
        self._watched: set[str] = set()
        self._listener = SessionListener(on_new_session=lambda: self._scheduler.call_soon(self._register_all))

    # ------------------------------------------------------------ RunningPolicy
    def start(self, controller: InstanceController, destinations: list[str], lazy: bool) -> None:
        self._controller = controller
        self._lazy = lazy
        self._session.add_listener(self._listener)
        self._scheduler.call_soon(lambda: self._ensure(paths.CLUSTER_ROOT, paths.DESTINATIONS_ROOT))
        self._scheduler.call_soon(lambda: self._register(paths.server_cluster_node(self.address)))
        for dest in destinations:
            self.add_destination(dest)

    def add_destination(self, destination: str) -> None:
        """Build the monitor and register in ``/{dest}/cluster`` (even when lazy); compete unless lazy."""
        controller = self._controller
        if controller is None:
            raise RuntimeError("ZkRunningPolicy.start() first")
        with self._lock:
            if destination in self._monitors:
                return
            monitor = RunningMonitor(
                self._session,
                paths.server_running(destination),
                paths.ServerRunningData(self.address).to_json(),
                address=self.address,
                scheduler=self._scheduler,
                on_active=lambda: self._activate(destination),
                on_inactive=lambda: self._deactivate(destination),
                delay_s=self._delay_s,
            )
            self._monitors[destination] = monitor
        self._scheduler.call_soon(lambda: self._register(paths.destination_cluster_node(destination, self.address)))
        if not self._lazy:
            self._compete(destination)

    def remove_destination(self, destination: str) -> None:
        """Leave the election for ``destination`` (stop + release) and unregister from its cluster."""
        with self._lock:
            monitor = self._monitors.pop(destination, None)
            self._competing.discard(destination)
        if monitor is not None:
            monitor.stop()
        self._scheduler.call_soon(lambda: self._unregister(paths.destination_cluster_node(destination, self.address)))

    def on_subscribe(self, destination: str) -> None:
        """A lazy destination enters the election; waits until this server is active or standby."""
        monitor = self._compete(destination)
        if monitor is not None and not monitor.wait_decided(self._decide_timeout_s):
            log.warning("election undecided after subscribe", extra={"destination": destination})

    def on_last_unsubscribe(self, destination: str) -> None:
        with self._lock:
            monitor = self._monitors.get(destination)
        if monitor is not None and monitor.is_active():
            monitor.release()

    def is_serving(self, destination: str) -> bool:
        with self._lock:
            monitor = self._monitors.get(destination)
        return monitor is not None and monitor.is_active()

    def stop(self) -> None:
        """Stop every instance (each releases its running node), then unregister this server."""
        self._stopped = True
        with self._lock:
            monitors = list(self._monitors.items())
            self._monitors.clear()
            self._competing.clear()
        for _, monitor in monitors:
            monitor.stop()
        self._session.remove_listener(self._listener)

        def unregister() -> None:
            for dest, _ in monitors:
                self._unregister(paths.destination_cluster_node(dest, self.address))
            self._unregister(paths.server_cluster_node(self.address))

        run_and_wait(self._scheduler, unregister, 10.0)
        if self._own_scheduler and isinstance(self._scheduler, ThreadScheduler):
            self._scheduler.stop()

    # ------------------------------------------------------------ extras
    def running_address(self, destination: str) -> str | None:
        """The ``ip:port`` the running node names, as last seen (None when nobody runs it)."""
        with self._lock:
            monitor = self._monitors.get(destination)
        data = monitor.active_data if monitor is not None else None
        return paths.running_owner(data)[0] or None if data else None

    # ------------------------------------------------------------ internals
    def _compete(self, destination: str) -> RunningMonitor | None:
        with self._lock:
            monitor = self._monitors.get(destination)
            if monitor is None:
                log.warning("subscribe for a destination this server does not have", extra={"destination": destination})
                return None
            first = destination not in self._competing
            self._competing.add(destination)
        if first:
            monitor.start()
        return monitor

    def _activate(self, destination: str) -> None:
        if self._meta is not None:
            self._meta.refresh(destination)  # the previous runner moved the cursors while we were standby
        assert self._controller is not None
        self._controller.start_instance(destination)

    def _deactivate(self, destination: str) -> None:
        assert self._controller is not None
        self._controller.stop_instance(destination)
        if self._meta is not None and self._session.connected:
            try:  # the last acks reach ZooKeeper before our running node goes and another server reads them
                self._meta.flush()
            except Exception as e:
                log.warning("cursor flush after stop failed", extra={"destination": destination, "error": repr(e)})

    def _register_all(self) -> None:
        """New session: the old one's ephemeral nodes are gone; put ours back (canal's handleNewSession)."""
        if self._stopped:
            return
        self._ensure(paths.CLUSTER_ROOT, paths.DESTINATIONS_ROOT)
        for path in sorted(self._wanted):
            self._register(path)

    def _ensure(self, *nodes: str) -> None:
        for node in nodes:
            try:
                self._zk.ensure_path(node)
            except KazooException as e:
                log.warning("cannot create ZooKeeper path", extra={"path": node, "error": repr(e)})

    def _register(self, path: str) -> None:
        """Create our ephemeral cluster node; watch it so it comes back if it vanishes while we run.

        A node left by our previous process (same ip:port, session not yet expired) is replaced by
        watching it: when it goes, ours is created.
        """
        if self._stopped:
            return
        self._wanted.add(path)
        if not self._session.connected:
            return  # the new-session hook registers again
        try:
            self._zk.create(path, b"", ephemeral=True, makepath=True)
        except NodeExistsError:
            pass
        except KazooException as e:
            log.warning("cannot register cluster node", extra={"path": path, "error": repr(e)})
        if path in self._watched:
            return
        self._watched.add(path)

        def on_change(data: bytes | None, stat: Any, event: Any = None) -> bool | None:
            if self._stopped or path not in self._wanted:
                self._scheduler.call_soon(lambda: self._watched.discard(path))
                return False
            if stat is None:
                self._scheduler.call_soon(lambda: self._register(path) if path in self._wanted else None)
            return None

        client = self._session.client
        self._session.spawn_watch(lambda: client.DataWatch(path, on_change), path)

    def _unregister(self, path: str) -> None:
        self._wanted.discard(path)
        try:
            _, stat = self._zk.get(path)
            sid = self._session.session_id
            if sid is not None and stat.ephemeralOwner == sid:
                self._zk.delete(path)
        except NoNodeError:
            pass
        except KazooException as e:
            log.warning("cannot delete cluster node", extra={"path": path, "error": repr(e)})
