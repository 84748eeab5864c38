"""ZooKeeper paths and node JSON: the only place a ZooKeeper path of canal or of this project is spelled.

canal's layout (``ZookeeperPathUtils``) is kept byte for byte so that a Java canal server, client or
admin reading the same ZooKeeper sees what it expects. JSON is written the way canal's fastjson writes
it: compact, keys sorted, null fields left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from adapter.errors import ConfigError

CANAL_ROOT = "/otter/canal"
CLUSTER_ROOT = f"{CANAL_ROOT}/cluster"
DESTINATIONS_ROOT = f"{CANAL_ROOT}/destinations"

#: canal-adapter's Curator namespace; everything adapter-side lives below it.
ADAPTER_ROOT = "/canal-adapter"
SYNC_SWITCH_ROOT = f"{ADAPTER_ROOT}/sync-switch"
SYNC_ETL_ROOT = f"{ADAPTER_ROOT}/sync-etl"
#: Our own (not canal's): live adapter nodes sharing the (instance, group) tasks.
ADAPTER_MEMBERS_ROOT = f"{ADAPTER_ROOT}/members"


def _part(value: str, what: str) -> str:
    """One path component: non-empty, no '/', not '.'/'..' (ZooKeeper rejects those)."""
    if not value or "/" in value or value in (".", "..") or "\x00" in value:
        raise ConfigError(f"invalid {what} {value!r} for a ZooKeeper path (non-empty, no '/')", key=what)
    return value


# ------------------------------------------------------------------ canal server
def server_cluster_node(address: str) -> str:
    """``/otter/canal/cluster/{ip:port}``: ephemeral, one per live server."""
    return f"{CLUSTER_ROOT}/{_part(address, 'address')}"


def destination(dest: str) -> str:
    return f"{DESTINATIONS_ROOT}/{_part(dest, 'destination')}"


def destination_cluster(dest: str) -> str:
    """Parent of the servers that can run ``dest`` (clients list it to find candidates)."""
    return f"{destination(dest)}/cluster"


def destination_cluster_node(dest: str, address: str) -> str:
    return f"{destination_cluster(dest)}/{_part(address, 'address')}"


def server_running(dest: str) -> str:
    """``/otter/canal/destinations/{dest}/running``: ephemeral ServerRunningData of the active server."""
    return f"{destination(dest)}/running"


def client_node(dest: str, client_id: int | str) -> str:
    cid = str(client_id)
    if not is_client_id(cid):
        raise ConfigError(f"client id {client_id!r} must be all digits (canal parses it as a short)", key="clientId")
    return f"{destination(dest)}/{cid}"


def client_filter(dest: str, client_id: int | str) -> str:
    return f"{client_node(dest, client_id)}/filter"


def client_cursor(dest: str, client_id: int | str) -> str:
    return f"{client_node(dest, client_id)}/cursor"


def client_running(dest: str, client_id: int | str) -> str:
    """``.../{dest}/{clientId}/running``: ephemeral ClientRunningData of the active consumer."""
    return f"{client_node(dest, client_id)}/running"


def is_client_id(name: str) -> bool:
    """Only all-digit children of a destination are clients (``cluster``, ``running``, ``parse`` are not)."""
    return name.isascii() and name.isdigit()


# ------------------------------------------------------------------ canal adapter
def sync_switch(dest: str) -> str:
    """``/canal-adapter/sync-switch/{dest}``: persistent, data ``on``/``off``; missing means on."""
    return f"{SYNC_SWITCH_ROOT}/{_part(dest, 'destination')}"


def sync_etl(kind: str, task: str) -> str:
    """``/canal-adapter/sync-etl/{type}-{dest or task}``: the ETL mutex."""
    return sync_etl_lock(f"{kind}-{task}")


def sync_etl_lock(name: str) -> str:
    """The ETL mutex for a ready-made lock name (``{type}-{dest or task}``)."""
    return f"{SYNC_ETL_ROOT}/{_part(name, 'etl task')}"


def adapter_member(node_id: str) -> str:
    """``/canal-adapter/members/{node_id}``: ephemeral, one per live adapter node (ours, not canal's)."""
    return f"{ADAPTER_MEMBERS_ROOT}/{_part(node_id, 'node id')}"


# ------------------------------------------------------------------ node JSON
def dumps(obj: dict[str, Any]) -> bytes:
    """fastjson style: compact, keys sorted (``@type`` sorts first), nulls omitted."""
    return json.dumps(_drop_nulls(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _drop_nulls(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_nulls(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_nulls(v) for v in obj]
    return obj


def loads(data: bytes | None, what: str) -> dict[str, Any]:
    """Parse a node's JSON object; ValueError names the node kind when it is not one."""
    try:
        obj = json.loads((data or b"").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{what}: not JSON: {e}") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{what}: expected a JSON object, got {type(obj).__name__}")
    return obj


@dataclass(frozen=True, slots=True)
class ServerRunningData:
    """canal's ServerRunningData (the deprecated ``cid`` is read and ignored, never written)."""

    address: str
    active: bool = True

    def to_json(self) -> bytes:
        return dumps({"active": self.active, "address": self.address})

    @classmethod
    def from_json(cls, data: bytes | None) -> ServerRunningData:
        obj = loads(data, "ServerRunningData")
        return cls(address=str(obj.get("address") or ""), active=bool(obj.get("active", True)))


@dataclass(frozen=True, slots=True)
class ClientRunningData:
    """canal's ClientRunningData; ``address`` is the consumer's ip (ip:port once connected)."""

    address: str
    client_id: int
    active: bool = True

    def to_json(self) -> bytes:
        return dumps({"active": self.active, "address": self.address, "clientId": self.client_id})

    @classmethod
    def from_json(cls, data: bytes | None) -> ClientRunningData:
        obj = loads(data, "ClientRunningData")
        return cls(
            address=str(obj.get("address") or ""),
            client_id=int(obj.get("clientId") or 0),
            active=bool(obj.get("active", True)),
        )


def running_owner(data: bytes | None) -> tuple[str, bool]:
    """(address, active) of either running JSON; ("", True) when unreadable (never raises)."""
    try:
        obj = loads(data, "running")
    except ValueError:
        return "", True
    return str(obj.get("address") or ""), bool(obj.get("active", True))
