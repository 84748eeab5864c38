"""The node's configuration: canal's ``application.yml`` (``canal.conf``) as validated pydantic models.

Keys keep canal's camelCase in YAML (aliases); Python attributes are snake_case. Loading, error
reporting (file + key path + what was expected) and environment overrides live in ``configload``.
"""

from __future__ import annotations

import logging
import zlib
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

log = logging.getLogger(__name__)

#: canal's hard-coded client id (``SimpleCanalConnector``); the first group of an instance keeps it.
CANAL_CLIENT_ID = 1001
#: Range for derived client ids of further groups (a Java ``short`` on the wire; 1001 is excluded).
_DERIVED_BASE, _DERIVED_SPAN = 2000, 30000


def _scalar_to_str(v: Any) -> Any:
    """YAML turns ``groupId: 1`` into an int; canal binds it as a string, so do we."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float)):
        return str(v)
    return v


def _blank_to_none(v: Any) -> Any:
    return None if isinstance(v, str) and not v.strip() else v


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def _flat_props(v: Any) -> Any:
    """``properties`` as canal's flat ``Map<String,String>``: nested YAML maps become dotted keys."""
    if v is None:
        return {}
    if not isinstance(v, dict):
        return v  # let pydantic report the type error
    out: dict[str, Any] = {}
    _flatten("", v, out)
    return out


Str = Annotated[str, BeforeValidator(_scalar_to_str)]
OptStr = Annotated[str | None, BeforeValidator(_blank_to_none), BeforeValidator(_scalar_to_str)]
OptInt = Annotated[int | None, BeforeValidator(_blank_to_none)]
Props = Annotated[dict[str, Any], BeforeValidator(_flat_props)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    def unknown_keys(self) -> list[str]:
        return sorted((self.model_extra or {}).keys())


class OuterAdapterConf(_Model):
    """One ``outerAdapters`` entry: a writer instance."""

    name: Str
    key: OptStr = None
    hosts: OptStr = None
    zk_hosts: OptStr = Field(None, alias="zkHosts")
    properties: Props = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("a writer name such as logger, rdb, es7, redis")
        return v


class GroupConf(_Model):
    """One ``groups`` entry: the writers fed by one consumer (one client id)."""

    group_id: Str = Field("default", alias="groupId")
    #: New key: the canal client id this group consumes as (see ``effective_client_id``).
    client_id: OptInt = Field(None, alias="clientId", ge=1, le=32767)
    outer_adapters: list[OuterAdapterConf] = Field(default_factory=list, alias="outerAdapters")


class InstanceConf(_Model):
    """One ``canalAdapters`` entry: a canal destination and its groups."""

    instance: Str
    groups: list[GroupConf] = Field(default_factory=list)

    @field_validator("instance")
    @classmethod
    def _trim(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("a canal destination name")
        return v


class DataSourceConf(_Model):
    """One ``srcDataSources`` entry. ``url`` is a canal JDBC URL or a SQLAlchemy URL."""

    url: Str
    username: OptStr = None
    password: OptStr = None
    driver: OptStr = None
    type: OptStr = None
    max_active: OptInt = Field(None, alias="maxActive")


class CanalConf(_Model):
    """``canal.conf``: consumer settings, retry policy, data sources and the adapters tree."""

    mode: OptStr = "tcp"
    flat_message: Any = Field(None, alias="flatMessage")
    zookeeper_hosts: OptStr = Field(None, alias="zookeeperHosts")
    sync_batch_size: OptInt = Field(1000, alias="syncBatchSize", ge=1)
    retries: OptInt = Field(None, ge=-1)
    timeout: OptInt = Field(None, ge=0)
    consumer_properties: Props = Field(default_factory=dict, alias="consumerProperties")
    src_data_sources: dict[str, DataSourceConf] = Field(default_factory=dict, alias="srcDataSources")
    canal_adapters: list[InstanceConf] = Field(default_factory=list, alias="canalAdapters")
    #: New: what to do once ``retries`` are used up: stop (switch off, ack nothing) or skip (dead-letter + ack).
    on_exhausted: Literal["stop", "skip"] = Field("stop", alias="onExhausted")
    #: New: where ``onExhausted: skip`` writes skipped batches (relative to the conf dir's parent).
    dead_letter_dir: OptStr = Field(None, alias="deadLetterDir")
    #: New: this node's id in ZooKeeper membership (default ``<hostname>:<server.port>``).
    node_id: OptStr = Field(None, alias="nodeId")
    #: canal 1.1.6+; accepted. Our default already stops instead of acking (see ``on_exhausted``).
    terminate_on_exception: Any = Field(None, alias="terminateOnException")

    @field_validator("mode")
    @classmethod
    def _mode(cls, v: str | None) -> str:
        v = (v or "tcp").strip().lower()
        if v != "tcp":
            raise ValueError(f"'tcp' (the only supported mode; kafka/rocketmq/rabbitmq are not implemented), got {v!r}")
        return v

    @property
    def attempts(self) -> int | None:
        """Total attempts per batch as canal counts them: null/0 → 1, -1 → None (forever)."""
        if self.retries == -1:
            return None
        return self.retries or 1

    @property
    def poll_timeout_ms(self) -> int:
        return 100 if self.timeout is None else self.timeout  # low-rate latency ≈ this; idle cost ≈ 10 GETs/s

    def prop(self, key: str) -> str | None:
        """A ``consumerProperties`` value as a stripped string, None when blank."""
        v = self.consumer_properties.get(key)
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        return str(_scalar_to_str(v)).strip()


class ServerConf(_Model):
    """Spring's ``server.*``: the REST port (8081 as canal) and bind address."""

    port: int = Field(8081, ge=0, le=65535)
    address: Str = "0.0.0.0"
    #: New: host[:port] other nodes use to reach this node's REST API (default: this host's IP).
    advertise_address: OptStr = Field(None, alias="advertiseAddress")


def effective_client_id(inst: InstanceConf, index: int) -> int:
    """The client id group ``index`` of ``inst`` consumes as.

    Deviation from canal (which uses 1001 for every group, so groups steal each other's batches):
    an explicit ``clientId`` wins; otherwise the first group keeps 1001 (so existing cursors carry
    over) and each further group gets ``2000 + crc32(groupId) % 30000`` — stable across restarts
    and independent of the group's position in the file.
    """
    group = inst.groups[index]
    if group.client_id is not None:
        return group.client_id
    if index == 0:
        return CANAL_CLIENT_ID
    return _DERIVED_BASE + zlib.crc32(group.group_id.encode()) % _DERIVED_SPAN


def auto_key(instance: str, group_id: str, index: int) -> str:
    """canal's generated key for an adapter configured without ``key``."""
    return f"AUTO_GENERATED_-{instance}-{group_id}-{index}"
