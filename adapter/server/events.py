"""The contract between the binlog parser and the store: positions, events and the sink."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True, order=True)
class LogPosition:
    """A binlog position (canal's EntryPosition). Ordered by (journal_name, position).

    For a checkpoint, ``position`` is the offset right *after* a transaction's commit (or a DDL),
    so a reader that starts there begins at a transaction boundary. ``gtid`` is the last
    committed transaction's GTID (MariaDB "last applied" semantics), ``timestamp`` in ms.
    """

    journal_name: str
    position: int
    server_id: int = field(default=0, compare=False)
    timestamp: int = field(default=0, compare=False)
    gtid: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class SourceAddress:
    """The MySQL address a position belongs to (canal's LogIdentity.sourceAddress)."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Event:
    """One serialized canal ``Entry`` as stored in the ring buffer.

    ``size`` is the raw binlog event length (MEMSIZE accounting). ``position`` is always a safe
    restart point: for a boundary event (TRANSACTIONEND, or a DDL outside a transaction) it is the
    offset right after its commit; for any other event it is the previous boundary, i.e. the start
    of the event's own transaction. The store's restart skip rule relies on this.
    """

    entry: bytes
    size: int
    position: LogPosition
    entry_type: int  # EntryProtocol_pb2.EntryType value
    is_ddl: bool = False
    boundary: bool = False
    schema: str = ""
    table: str = ""


class EventSink(Protocol):
    """Where the parser puts events. ``put`` blocks while the store is full (back-pressure)."""

    def put(self, events: Sequence[Event], stop: threading.Event) -> bool:
        """Store ``events`` in order; return False without storing if ``stop`` was set while waiting."""
        ...


@dataclass(frozen=True)
class ParserSettings:
    """What the binlog parser needs, built from instance.properties by ``server.config``."""

    destination: str
    master_host: str
    master_port: int
    username: str
    password: str
    slave_id: int
    charset: str = "utf8mb4"
    journal_name: str = ""
    position: int | None = None
    timestamp: int | None = None  # ms
    gtid: str = ""
    gtid_on: bool = False
    filter_regex: str = ".*\\..*"
    black_regex: str = ""
    ddl_isolation: bool = False
