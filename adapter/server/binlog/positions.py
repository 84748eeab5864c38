"""Where the parser starts: stored cursor, configured journal/position/timestamp/GTID, or the binlog end.

Order (canal's MysqlEventParser.findStartPosition): GTID mode (``gtid_on``) uses the cursor's GTID
or ``canal.instance.master.gtid``; otherwise a stored cursor; otherwise journal + position (moved
back to the start of the transaction it falls in), journal + timestamp, timestamp alone (binlogs
scanned for the first transaction at or after it), and finally SHOW MASTER STATUS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from adapter.errors import ConfigError
from adapter.server.binlog import stream as S
from adapter.server.binlog.source import binary_logs, master_status
from adapter.server.events import LogPosition, ParserSettings

log = logging.getLogger(__name__)

MakeRequest = Callable[[str, int], S.StreamRequest]  # (journal, position) → non-blocking request


@dataclass(frozen=True)
class StartPoint:
    position: LogPosition
    gtid_mode: bool = False


def _is_begin_query(sql: str) -> bool:
    return sql.rstrip().upper().endswith("BEGIN") or sql.lstrip()[:8].upper() in ("XA START", "XA BEGIN")


def _is_end_query(sql: str) -> bool:
    tail = sql.rstrip().upper()
    return tail.endswith("COMMIT") or tail == "ROLLBACK" or sql.lstrip()[:6].upper() == "XA END"


def walk(events: Iterable[S.BinlogEvent], journal: str) -> Iterator[tuple[str, LogPosition, S.BinlogEvent]]:
    """Yield ("begin", boundary before it, event) for each transaction start and ("boundary", position, event)
    after each transaction end; plus ("event", current boundary, event) for every event."""
    boundary = LogPosition(journal, 4)
    in_txn = False
    for ev in events:
        if ev.kind == S.ROTATE:
            journal = ev.next_file
            if not in_txn:
                boundary = LogPosition(journal, ev.rotate_pos)
        elif ev.kind == S.GTID or (ev.kind == S.QUERY and not in_txn):
            if not in_txn and ev.timestamp:
                yield "begin", boundary, ev
            if ev.kind == S.GTID:
                in_txn = in_txn or not ev.standalone
            elif _is_begin_query(ev.sql):
                in_txn = True
            else:  # a DDL outside any transaction is its own transaction
                boundary = LogPosition(journal, ev.log_pos, ev.server_id, ev.timestamp * 1000)
                yield "boundary", boundary, ev
        elif ev.kind == S.XID or (ev.kind == S.QUERY and in_txn and _is_end_query(ev.sql)):
            in_txn = False
            boundary = LogPosition(journal, ev.log_pos, ev.server_id, ev.timestamp * 1000)
            yield "boundary", boundary, ev
        elif ev.kind == S.QUERY and in_txn and _is_begin_query(ev.sql):
            pass  # MariaDB's GTID event already began it
        yield "event", boundary, ev


def _scan(factory: S.StreamFactory, request: S.StreamRequest) -> Iterator[S.BinlogEvent]:
    stream = factory(request)
    try:
        yield from stream
    finally:
        stream.close()


#: Event types that open a transaction (or carry a standalone DDL's GTID): a position at one of them
#: is already a transaction boundary.
_TXN_OPENERS = frozenset({"gtid", "anonymous_gtid"})


def starts_transaction(conn: Any, journal: str, position: int) -> bool:
    """True when the event at ``journal:position`` opens a transaction, so no scan is needed.

    One ``SHOW BINLOG EVENTS ... LIMIT 1``; any error (not an event start, file gone, no privilege)
    answers False and the caller falls back to scanning the file (canal's findTransactionBeginPosition).
    """
    if position <= 4:
        return True
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW BINLOG EVENTS IN %s FROM %s LIMIT 1", (journal, position))
            row = cur.fetchone()
        kind, info = str(row[2]).lower(), str(row[5] or "").strip().upper()
    except Exception:  # a wrong offset is an error here (or no row); the scan handles it
        return False
    return kind in _TXN_OPENERS or (kind == "query" and info == "BEGIN")


def transaction_begin_before(factory: S.StreamFactory, make: MakeRequest, journal: str, position: int) -> LogPosition:
    """The boundary at or before ``journal:position`` (canal: findTransactionBeginPosition)."""
    if position <= 4:
        return LogPosition(journal, 4)
    best = LogPosition(journal, 4)
    for kind, pos, ev in walk(_scan(factory, make(journal, 4)), journal):
        if pos.journal_name != journal or (ev.log_pos and ev.log_pos - ev.size >= position):
            break
        if kind in ("boundary", "event") and pos.journal_name == journal and pos.position <= position:
            best = pos
    return best


def first_transaction_at(factory: S.StreamFactory, make: MakeRequest, journal: str, timestamp_ms: int
                         ) -> LogPosition | None:
    """The boundary before the first transaction at or after ``timestamp_ms``, scanning from ``journal``;
    the last boundary seen when none is that late; None when the scan saw nothing."""
    last: LogPosition | None = None
    for kind, pos, ev in walk(_scan(factory, make(journal, 4)), journal):
        if kind == "begin" and ev.timestamp * 1000 >= timestamp_ms:
            return pos
        if kind != "event" or last is None:
            last = pos
    return last


def _first_txn_time(factory: S.StreamFactory, make: MakeRequest, journal: str) -> int | None:
    for kind, pos, ev in walk(_scan(factory, make(journal, 4)), journal):
        if pos.journal_name != journal:
            return None
        if kind == "begin":
            return ev.timestamp * 1000
    return None


def find_by_timestamp(factory: S.StreamFactory, make: MakeRequest, files: list[str], timestamp_ms: int
                      ) -> LogPosition | None:
    """Pick the newest binlog whose first transaction is not after ``timestamp_ms``, then scan forward."""
    if not files:
        return None
    start = files[0]
    for name in reversed(files):
        first = _first_txn_time(factory, make, name)
        if first is not None and first <= timestamp_ms:
            start = name
            break
    return first_transaction_at(factory, make, start, timestamp_ms)


def resolve_start(settings: ParserSettings, resume_from: LogPosition | None, control: Callable[[], Any],
                  factory: S.StreamFactory, make: MakeRequest) -> StartPoint:
    """Decide the start position (see the module docstring); ``control()`` gives a control connection."""
    if settings.gtid_on:
        gtid = resume_from.gtid if resume_from and resume_from.gtid else settings.gtid
        if gtid:
            return StartPoint(LogPosition(resume_from.journal_name if resume_from else "",
                                          resume_from.position if resume_from else 0, gtid=gtid), gtid_mode=True)
    if resume_from is not None and resume_from.journal_name:
        return StartPoint(resume_from)
    if settings.journal_name and settings.position is not None:
        if starts_transaction(control(), settings.journal_name, int(settings.position)):
            return StartPoint(LogPosition(settings.journal_name, int(settings.position)))
        pos = transaction_begin_before(factory, make, settings.journal_name, int(settings.position))
        if pos.position != settings.position:
            log.info("configured position is inside a transaction; starting at its beginning",
                     extra={"destination": settings.destination, "journal": pos.journal_name,
                            "position": pos.position})
        return StartPoint(pos)
    if settings.timestamp:
        if settings.journal_name:
            found = first_transaction_at(factory, make, settings.journal_name, int(settings.timestamp))
        else:
            found = find_by_timestamp(factory, make, binary_logs(control()), int(settings.timestamp))
        if found is not None:
            return StartPoint(found)
        if settings.journal_name:
            return StartPoint(LogPosition(settings.journal_name, 4))
    if settings.journal_name:
        return StartPoint(LogPosition(settings.journal_name, 4))
    if settings.position is not None and not settings.journal_name:
        raise ConfigError("canal.instance.master.position needs canal.instance.master.journal.name",
                          key="canal.instance.master.journal.name")
    return StartPoint(master_status(control()))
