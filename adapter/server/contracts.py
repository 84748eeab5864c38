"""Server-internal contracts: client identity, the meta manager, and the instance running policy.

These let the meta store (memory / file / ZooKeeper) and the instance lifecycle (standalone /
ZooKeeper HA) be swapped without touching the session or the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from adapter.server.events import LogPosition, SourceAddress

#: The ``@type`` canal's Java reader requires on ZooKeeper cursor JSON.
LOG_POSITION_TYPE = "com.alibaba.otter.canal.protocol.position.LogPosition"


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """canal's ClientIdentity: equality is (destination, client_id); the filter is not part of it."""

    destination: str
    client_id: int
    filter: str = ""

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ClientIdentity)
            and (self.destination, self.client_id) == (other.destination, other.client_id)
        )

    def __hash__(self) -> int:
        return hash((self.destination, self.client_id))


def cursor_to_canal(position: LogPosition, source: SourceAddress, *, with_type: bool) -> dict[str, Any]:
    """canal's LogPosition JSON (``postion`` misspelled as in canal; ``@type`` first for ZooKeeper)."""
    body: dict[str, Any] = {
        "identity": {"slaveId": -1, "sourceAddress": {"address": source.host, "port": source.port}},
        "postion": {
            "gtid": position.gtid,
            "included": False,
            "journalName": position.journal_name,
            "position": position.position,
            "serverId": position.server_id,
            "timestamp": position.timestamp,
        },
    }
    return {"@type": LOG_POSITION_TYPE, **body} if with_type else body


def cursor_from_canal(data: dict[str, Any]) -> tuple[LogPosition, SourceAddress | None]:
    """Parse canal's LogPosition JSON (with or without ``@type``). Raises KeyError/TypeError on bad shape."""
    p = data["postion"]
    pos = LogPosition(
        journal_name=str(p["journalName"]),
        position=int(p["position"]),
        server_id=int(p.get("serverId") or 0),
        timestamp=int(p.get("timestamp") or 0),
        gtid=str(p.get("gtid") or ""),
    )
    src = (data.get("identity") or {}).get("sourceAddress")
    addr = SourceAddress(str(src["address"]), int(src["port"])) if src else None
    return pos, addr


class MetaManager(Protocol):
    """Subscriptions and acknowledged cursors per client. Batch marks are not persisted (as canal)."""

    def start(self) -> None: ...

    def stop(self) -> None:
        """Flush everything, then release resources (canal loses the last period here; we do not)."""
        ...

    def subscribe(self, client: ClientIdentity) -> None: ...

    def unsubscribe(self, client: ClientIdentity) -> None: ...

    def has_subscribe(self, client: ClientIdentity) -> bool: ...

    def list_subscribed(self, destination: str) -> list[ClientIdentity]: ...

    def get_cursor(self, client: ClientIdentity) -> LogPosition | None: ...

    def update_cursor(self, client: ClientIdentity, position: LogPosition) -> None:
        """Record in memory; persisted by the periodic flush and on stop."""
        ...

    def flush(self) -> None: ...


class InstanceController(Protocol):
    """What a running policy drives: start/stop of one destination's instance in this process."""

    def start_instance(self, destination: str) -> None: ...

    def stop_instance(self, destination: str) -> None: ...

    def is_running(self, destination: str) -> bool: ...


class RunningPolicy(Protocol):
    """Decides when this server runs a destination: standalone (always) or ZooKeeper HA (one per cluster)."""

    def start(self, controller: InstanceController, destinations: list[str], lazy: bool) -> None:
        """Begin; non-lazy destinations are started (standalone) or entered into the election (HA)."""
        ...

    def on_subscribe(self, destination: str) -> None:
        """A client subscribed here: a lazy destination starts (standalone) or competes (HA)."""
        ...

    def on_last_unsubscribe(self, destination: str) -> None:
        """The only subscriber left: release the destination (HA: delete running, let others take it)."""
        ...

    def is_serving(self, destination: str) -> bool:
        """True only while this server may serve the destination (HA: holds running AND session is live)."""
        ...

    def stop(self) -> None: ...
