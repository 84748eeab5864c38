"""Start-position rules: cursor, GTID, journal+position (moved to the transaction start), timestamps, end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from adapter.errors import ConfigError
from adapter.server.binlog import stream as S
from adapter.server.binlog.positions import (
    find_by_timestamp,
    first_transaction_at,
    resolve_start,
    transaction_begin_before,
)
from adapter.server.events import LogPosition, ParserSettings


def build(files: dict[str, list[tuple[str, int]]]) -> dict[str, list[S.BinlogEvent]]:
    """Each file: a list of (what, unix time) with what in txn / ddl; offsets are consecutive."""
    out: dict[str, list[S.BinlogEvent]] = {}
    names = sorted(files)
    for n, name in enumerate(names):
        pos = 256
        evs = [S.BinlogEvent(S.ROTATE, 0, 1, 0, 40, next_file=name, rotate_pos=4),
               S.BinlogEvent(S.FORMAT, 1, 1, pos, 100)]
        for what, ts in files[name]:
            if what == "txn":
                for kind, size in ((S.GTID, 40), (S.TABLE_MAP, 50), (S.ROWS, 60), (S.XID, 30)):
                    pos += size
                    evs.append(S.BinlogEvent(kind, ts, 1, pos, size, mariadb=True, gtid="0-1-1"))
            else:
                pos += 40
                evs.append(S.BinlogEvent(S.GTID, ts, 1, pos, 40, mariadb=True, standalone=True, gtid="0-1-1"))
                pos += 80
                evs.append(S.BinlogEvent(S.QUERY, ts, 1, pos, 80, sql="CREATE TABLE t (a int)"))
        if n + 1 < len(names):
            evs.append(S.BinlogEvent(S.ROTATE, 5, 1, pos + 44, 44, next_file=names[n + 1], rotate_pos=4))
        out[name] = evs
    return out


class Streams:
    """A non-blocking stream factory over ``build`` output: starts at file:pos, runs to the end of all files."""

    def __init__(self, files: dict[str, list[S.BinlogEvent]]) -> None:
        self.files = files
        self.opened: list[tuple[str, int]] = []

    def __call__(self, req: S.StreamRequest) -> Any:
        self.opened.append((req.journal, req.position))
        files = self.files

        class _S:
            def __iter__(self) -> Iterator[S.BinlogEvent]:
                started = False
                for name in sorted(files):
                    if name < req.journal:
                        continue
                    for ev in files[name]:
                        if name == req.journal and not started and ev.log_pos and ev.log_pos - ev.size < req.position:
                            continue
                        started = True
                        yield ev

            def close(self) -> None:
                pass

            def interrupt(self) -> None:
                pass

        return _S()


def make(journal: str, pos: int) -> S.StreamRequest:
    return S.StreamRequest(connection={}, server_id=1, journal=journal, position=pos, blocking=False)


FILES = build({"bin.000001": [("txn", 100), ("txn", 200), ("ddl", 300)], "bin.000002": [("txn", 400), ("txn", 500)]})
# offsets in bin.000001: txn1 256..436, txn2 436..616, ddl 616..736; bin.000002: txn 256..436, 436..616


def test_position_inside_a_transaction_moves_to_its_start() -> None:
    s = Streams(FILES)
    assert transaction_begin_before(s, make, "bin.000001", 500) == LogPosition("bin.000001", 436, 1, 100_000)
    assert transaction_begin_before(s, make, "bin.000001", 436).position == 436
    assert transaction_begin_before(s, make, "bin.000001", 616).position == 616
    assert transaction_begin_before(s, make, "bin.000001", 300).position == 4  # the file start is a boundary
    assert transaction_begin_before(s, make, "bin.000001", 4).position == 4


def test_first_transaction_at_timestamp() -> None:
    s = Streams(FILES)
    assert first_transaction_at(s, make, "bin.000001", 200_000) == LogPosition("bin.000001", 436, 1, 100_000)
    assert first_transaction_at(s, make, "bin.000001", 150_000).position == 436
    assert first_transaction_at(s, make, "bin.000001", 300_000).position == 616  # the DDL
    found = first_transaction_at(s, make, "bin.000001", 450_000)
    assert found is not None and (found.journal_name, found.position) == ("bin.000002", 436)
    # nothing that late: the last boundary (the end of the binlog)
    last = first_transaction_at(s, make, "bin.000001", 999_000)
    assert last is not None and (last.journal_name, last.position) == ("bin.000002", 616)


def test_find_by_timestamp_starts_at_the_right_file() -> None:
    s = Streams(FILES)
    found = find_by_timestamp(s, make, ["bin.000001", "bin.000002"], 500_000)
    assert found is not None and (found.journal_name, found.position) == ("bin.000002", 436)
    assert s.opened[0] == ("bin.000002", 4)  # newest file probed first
    early = find_by_timestamp(Streams(FILES), make, ["bin.000001", "bin.000002"], 1_000)
    assert early is not None and (early.journal_name, early.position) == ("bin.000001", 4)


class Control:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        return _Conn()


class _Cursor:
    def __init__(self) -> None:
        self.sql = ""

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *a: object) -> None:
        pass

    def execute(self, sql: str, *a: object) -> None:
        self.sql = sql

    def fetchone(self) -> tuple[str, int]:
        return ("bin.000002", 616)

    def fetchall(self) -> list[tuple[str, int]]:
        return [("bin.000001", 1), ("bin.000002", 2)]


class _Conn:
    def cursor(self) -> _Cursor:
        return _Cursor()


def settings(**kw: Any) -> ParserSettings:
    return ParserSettings(destination="d", master_host="h", master_port=1, username="u", password="p", slave_id=1,
                          **kw)


def test_resolve_order() -> None:
    s, ctl = Streams(FILES), Control()
    cursor = LogPosition("bin.000001", 436, gtid="0-1-9")
    assert resolve_start(settings(), cursor, ctl, s, make).position == cursor
    g = resolve_start(settings(gtid_on=True), cursor, ctl, s, make)
    assert g.gtid_mode and g.position.gtid == "0-1-9"
    g = resolve_start(settings(gtid_on=True, gtid="0-1-3"), None, ctl, s, make)
    assert g.gtid_mode and g.position.gtid == "0-1-3"
    assert resolve_start(settings(journal_name="bin.000001", position=500), None, ctl, s, make).position.position == 436
    ts = resolve_start(settings(timestamp=450_000), None, ctl, s, make).position
    assert (ts.journal_name, ts.position) == ("bin.000002", 436)
    ts = resolve_start(settings(journal_name="bin.000001", timestamp=200_000), None, ctl, s, make).position
    assert (ts.journal_name, ts.position) == ("bin.000001", 436)
    assert resolve_start(settings(journal_name="bin.000001"), None, ctl, s, make).position == LogPosition(
        "bin.000001", 4)
    calls = ctl.calls
    end = resolve_start(settings(), None, ctl, s, make).position
    assert (end.journal_name, end.position) == ("bin.000002", 616) and ctl.calls == calls + 1
    with pytest.raises(ConfigError):
        resolve_start(settings(position=5), None, ctl, s, make)
