"""Test doubles for the canal-server runtime: a fake binlog parser and a config/server builder."""

from __future__ import annotations

import shutil
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import services

from adapter.protocol import EntryProtocol_pb2 as epb
from adapter.server.config import ServerConfig, load_config
from adapter.server.events import Event, EventSink, LogPosition, ParserSettings
from adapter.server.runtime import CanalServer

COMPAT = Path(services.COMPAT) / "server-conf"
START = LogPosition("mysql-bin.000001", 4)


class Stats:
    events = 0
    rows = 0
    bytes = 0
    transactions = 0
    reconnects = 0
    last_execute_time_ms = 0
    delay_ms = 0


class FakeParser:
    """Records what the instance asks; ``emit`` puts events into the store like the real parser."""

    made: list[FakeParser] = []

    def __init__(self, settings: ParserSettings, sink: EventSink) -> None:
        self.settings, self.sink = settings, sink
        self.error: BaseException | None = None
        self.position: LogPosition | None = None
        self.stats: Any = Stats()
        self.filters: list[str] = []
        self.resume: LogPosition | str | None = "not started"
        self.stopped = False
        self._stop = threading.Event()
        FakeParser.made.append(self)

    def start(self, resume_from: LogPosition | None = None) -> None:
        self.resume = resume_from
        self.position = resume_from or START

    def stop(self) -> None:
        self.stopped = True
        self._stop.set()

    def set_filter(self, regex: str) -> None:
        self.filters.append(regex)

    def emit(self, events: list[Event]) -> bool:
        ok = self.sink.put(events, self._stop)
        for e in events:
            if e.boundary:
                self.position = e.position
            self.stats.events += 1
        return ok


def entry_event(offset: int, *, boundary: bool = False, journal: str = "mysql-bin.000001", size: int = 50) -> Event:
    etype = epb.TRANSACTIONEND if boundary else epb.ROWDATA
    entry = epb.Entry(header=epb.Header(logfileName=journal, logfileOffset=offset, eventType=epb.INSERT,
                                        schemaName="db", tableName="t"), entryType=etype, storeValue=b"")
    return Event(entry=entry.SerializeToString(), size=size, position=LogPosition(journal, offset + size),
                 entry_type=etype, boundary=boundary, schema="db", table="t")


def transaction(offset: int, rows: int) -> list[Event]:
    """Rows then a TRANSACTIONEND; as the parser does, non-boundary events carry the transaction's start."""
    body = [replace(entry_event(offset + i * 50), position=LogPosition("mysql-bin.000001", offset))
            for i in range(rows)]
    return [*body, entry_event(offset + rows * 50, boundary=True)]


def make_conf(tmp_path: Path, extra: str = "", instance_extra: str = "") -> Path:
    conf = tmp_path / "conf"
    if not conf.exists():
        shutil.copytree(COMPAT, conf)
    with (conf / "canal.properties").open("a") as f:
        f.write("\ncanal.port = 0\ncanal.ip = 127.0.0.1\ncanal.metrics.pull.port =\n" + extra + "\n")
    with (conf / "example" / "instance.properties").open("a") as f:
        f.write("\n" + instance_extra + "\n")
    return conf


def start_server(conf: Path, **kw: Any) -> tuple[CanalServer, ServerConfig]:
    cfg = load_config(conf, env={})
    server = CanalServer(cfg, parser_factory=FakeParser, source_check=None, **kw)
    server.start()
    return server, cfg
