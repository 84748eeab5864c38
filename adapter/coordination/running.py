"""RunningMonitor: canal's running-node election (ServerRunningMonitor / ClientRunningMonitor), generic over path/data.

Rules (canal's, section 5 of the protocol notes) plus what canal lacks:
- whoever creates the ephemeral node is active (``on_active``); if it exists we are standby;
- on deletion the previous owner that did not release competes at once, everyone else after ``delay_s``;
- a data change naming another owner makes us inactive; ``active:false`` naming us makes us release;
- ``release()`` stops first, then deletes our node, then takes the delay path like everyone else;
- beyond canal: SUSPENDED/LOST makes us inactive immediately (no split brain); after reconnecting we
  hold the node again only if ZooKeeper still says our *session* owns it (``ephemeralOwner``), not
  merely because the data names our address.

Every ZooKeeper call and every callback runs on the Scheduler thread; kazoo's threads only enqueue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError

from adapter.coordination import paths
from adapter.coordination.scheduler import Handle, Scheduler, run_and_wait
from adapter.coordination.session import SessionListener, ZkSession

log = logging.getLogger(__name__)

DEFAULT_DELAY_S = 5.0


class RunningMonitor:
    """Competes for one ephemeral running node. Thread-safe public API; callbacks run on ``scheduler``.

    ``gate`` is asked before every attempt (and when we find we still hold the node after a
    reconnect): False means "do not take it" (lease balancing) and "let it go" when held.
    """

    def __init__(
        self,
        session: ZkSession,
        path: str,
        data: bytes,
        *,
        address: str,
        scheduler: Scheduler,
        on_active: Callable[[], None],
        on_inactive: Callable[[], None],
        delay_s: float = DEFAULT_DELAY_S,
        gate: Callable[[], bool] = lambda: True,
        owner_of: Callable[[bytes | None], tuple[str, bool]] = paths.running_owner,
    ) -> None:
        self.path = path
        self._session = session
        self._zk = session.calls  # bounded: never blocks this thread while suspended
        self._data = data
        self._address = address
        self._scheduler = scheduler
        self._on_active_cb = on_active
        self._on_inactive_cb = on_inactive
        self.delay_s = delay_s
        self._gate = gate
        self._owner_of = owner_of
        # State below is touched only on the scheduler thread (is_active reads two fields atomically enough).
        self._started = False
        self._watching = False
        self._token = 0
        self._held_session: int | None = None
        self._active = False
        self._released = False
        self._last_mine = False
        self._exists: bool | None = None
        self._pending: Handle | None = None
        self._active_data: bytes | None = None
        self._decided = threading.Event()
        self._listener = SessionListener(
            on_suspended=self._on_disconnect,
            on_lost=self._on_disconnect,
            on_resumed=self._on_reconnect,
            on_new_session=self._on_reconnect,
        )

    # ------------------------------------------------------------ public API (any thread)
    def start(self) -> None:
        """Enter the election (idempotent)."""
        self._scheduler.call_soon(self._start)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Leave the election: stop (on_inactive) if active, then delete our node. Waits for it."""
        self._run_and_wait(self._stop, timeout_s)

    def release(self, wait: bool = True, timeout_s: float = 30.0) -> None:
        """Give the node up (stop first, then delete); compete again only after ``delay_s``."""
        if wait:
            self._run_and_wait(self._release, timeout_s)
        else:
            self._scheduler.call_soon(self._release)

    def poke(self) -> None:
        """Re-check the gate now: compete at once if the node is free, release it if the gate closed."""
        self._scheduler.call_soon(self._poke)

    def update_data(self, data: bytes) -> None:
        """Change what we write (canal's client rewrites its address after connecting)."""
        self._scheduler.call_soon(lambda: self._update_data(data))

    def is_active(self) -> bool:
        """True only while on_active has completed, we hold the node, and that session is connected."""
        held = self._held_session
        return self._active and held is not None and held == self._session.session_id

    @property
    def started(self) -> bool:
        return self._started

    @property
    def active_data(self) -> bytes | None:
        """The running node's data as last seen (whoever owns it)."""
        return self._active_data

    def wait_decided(self, timeout_s: float | None) -> bool:
        """Wait until the first attempt has made us active or standby."""
        return self._decided.wait(timeout_s)

    # ------------------------------------------------------------ session listener (connection thread)
    def _on_disconnect(self) -> None:
        self._scheduler.call_soon(lambda: self._lose("zookeeper connection suspended or session lost"))

    def _on_reconnect(self) -> None:
        self._scheduler.call_soon(self._resync)

    # ------------------------------------------------------------ scheduler thread
    def _run_and_wait(self, fn: Callable[[], None], timeout_s: float) -> None:
        if not run_and_wait(self._scheduler, fn, timeout_s):
            log.warning("running monitor action timed out", extra={"path": self.path})

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        self._session.add_listener(self._listener)
        if self._session.connected:
            self._watch()
            self._try_acquire()

    def _watch(self) -> None:
        """Register a DataWatch once (it survives reconnects); its callback only enqueues."""
        if self._watching:
            return
        self._watching = True
        token = self._token

        def on_change(data: bytes | None, stat: Any, event: Any = None) -> bool | None:
            if token != self._token:
                return False  # stopped: tell kazoo to drop this watch
            # Only a trigger: the notification may be stale by the time it runs, so _refresh re-reads.
            self._scheduler.call_soon(self._refresh)
            return None

        self._session.spawn_watch(lambda: self._session.client.DataWatch(self.path, on_change), self.path)

    def _stop(self) -> None:
        if not self._started:
            return
        self._cancel_pending()
        self._token += 1
        self._watching = False
        self._session.remove_listener(self._listener)
        held = self._held_session is not None
        self._deactivate()
        if held:
            self._delete_own()
        self._held_session = None
        self._started = False

    def _apply(self, data: bytes | None, stat: Any) -> None:
        """React to the node as it is now (existing, with ``stat``)."""
        self._exists = True
        self._active_data = data
        sid = self._session.session_id
        if sid is not None and stat.ephemeralOwner == sid:
            self._last_mine = True
            address, active = self._owner_of(data)
            if self._released or (not active and address == self._address):
                self._release()  # asked to let go (or a delete of ours did not get through)
            elif self._held_session != sid or not self._active:
                self._hold(sid)
            return
        self._last_mine = False
        if self._held_session is not None or self._active:
            self._lose("running node now belongs to another owner")
        self._decided.set()

    def _on_deleted(self) -> None:
        was_mine = self._held_session is not None or self._last_mine
        self._lose("running node deleted")
        if was_mine and not self._released:
            self._compete_now()
        else:
            self._compete_later()

    def _resync(self) -> None:
        """After a reconnect: find out whether the node survived, and whose it is."""
        self._refresh(reconnected=True)

    def _refresh(self, reconnected: bool = False) -> None:
        """Read the node as it is now and react; an absence counts as a deletion only if it existed."""
        if not self._started:
            return
        if reconnected:
            self._watch()
        try:
            data, stat = self._zk.get(self.path)
        except NoNodeError:
            existed, self._exists = self._exists, False
            if existed:
                self._on_deleted()
            elif reconnected:
                # Gone while we were away: canal's deletion rules (previous owner at once, others delayed).
                if self._last_mine and not self._released:
                    self._compete_now()
                else:
                    self._compete_later()
            return
        except KazooException as e:
            log.info("running refresh deferred", extra={"path": self.path, "error": repr(e)})
            return
        self._apply(data, stat)

    def _compete_now(self) -> None:
        self._cancel_pending()
        self._try_acquire()

    def _compete_later(self) -> None:
        if self._pending is None and self._started:
            self._pending = self._scheduler.call_later(self.delay_s, self._delayed)

    def _delayed(self) -> None:
        self._pending = None
        self._try_acquire()

    def _cancel_pending(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def _poke(self) -> None:
        if not self._started:
            return
        if self._held_session is not None:
            if not self._gate():
                self._release()
            return
        if not self._exists:
            self._compete_now()

    def _try_acquire(self) -> None:
        if not self._started or not self._session.connected:
            return  # a reconnect resyncs
        if self._held_session is not None and self._held_session == self._session.session_id:
            return
        if not self._gate():
            self._decided.set()
            return
        try:
            _, stat = self._zk.create(self.path, self._data, ephemeral=True, makepath=True, include_data=True)
        except NodeExistsError:
            try:
                data, stat = self._zk.get(self.path)
            except NoNodeError:
                self._scheduler.call_soon(self._try_acquire)  # vanished in between: try again
                return
            except KazooException as e:
                log.info("running check deferred", extra={"path": self.path, "error": repr(e)})
                return
            self._apply(data, stat)
            return
        except KazooException as e:
            log.info("running attempt deferred", extra={"path": self.path, "error": repr(e)})
            return
        self._exists = True
        self._released = False
        self._active_data = self._data
        log.info("running node acquired", extra={"path": self.path, "address": self._address})
        self._hold(stat.ephemeralOwner)

    def _hold(self, sid: int) -> None:
        self._held_session = sid
        self._last_mine = True
        self._released = False
        if not self._gate():
            self._release()
            return
        if self._active:
            return
        try:
            self._on_active_cb()
        except Exception:
            log.exception("on_active failed: giving the running node up", extra={"path": self.path})
            self._release()
            self._decided.set()
            return
        self._active = True
        self._decided.set()
        log.info("running active", extra={"path": self.path, "address": self._address})

    def _deactivate(self) -> None:
        if not self._active:
            return
        self._active = False
        try:
            self._on_inactive_cb()
        except Exception:
            log.exception("on_inactive failed", extra={"path": self.path})
        log.info("running inactive", extra={"path": self.path, "address": self._address})

    def _lose(self, reason: str) -> None:
        if self._held_session is None and not self._active:
            return
        log.warning("running node lost", extra={"path": self.path, "reason": reason})
        self._held_session = None
        self._deactivate()

    def _release(self) -> None:
        if not self._started:
            return
        self._released = True
        self._deactivate()  # stop before anyone else can start
        if self._held_session is not None:
            self._delete_own()
            log.info("running node released", extra={"path": self.path, "address": self._address})
        self._held_session = None
        self._compete_later()

    def _delete_own(self) -> None:
        try:
            _, stat = self._zk.get(self.path)
            sid = self._session.session_id
            if sid is not None and stat.ephemeralOwner == sid:
                self._zk.delete(self.path, version=stat.version)
        except NoNodeError:
            pass
        except KazooException as e:
            # The node goes with the session at the latest; a resync retries the delete (released flag).
            log.warning("could not delete running node", extra={"path": self.path, "error": repr(e)})

    def _update_data(self, data: bytes) -> None:
        self._data = data
        if self._held_session is None:
            return
        try:
            _, stat = self._zk.get(self.path)
            if stat.ephemeralOwner == self._held_session:
                self._zk.set(self.path, data, version=stat.version)
        except KazooException as e:
            log.info("running data update skipped", extra={"path": self.path, "error": repr(e)})
