"""DDL classification: a query event's SQL → canal EventType, schema and table (as DruidDdlParser does).

CREATE/ALTER/DROP TABLE, TRUNCATE, RENAME, CREATE/DROP INDEX are recognised from their leading
keywords; ALTER TABLE takes the type of its first item (ADD INDEX/UNIQUE/PRIMARY KEY → CINDEX,
DROP INDEX/KEY/PRIMARY KEY/CONSTRAINT → DINDEX, RENAME TO → RENAME). Anything else — or a
statement whose table name cannot be read — is QUERY (canal would stop with an error instead).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from adapter.protocol import EntryProtocol_pb2 as pb

_TOKEN = re.compile(
    r"""\s+|/\*.*?\*/|--[^\n]*|\#[^\n]*|"""  # blanks and comments (dropped)
    r"""(`(?:[^`]|``)*`)|("(?:[^"\\]|\\.|"")*")|('(?:[^'\\]|\\.|'')*')|"""  # quoted names / strings
    r"""([A-Za-z0-9_$\u0080-\uffff]+)|(.)""",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class DdlResult:
    event_type: int
    schema: str = ""
    table: str = ""
    ori_schema: str = ""
    ori_table: str = ""

    @property
    def is_dml(self) -> bool:
        return self.event_type in (pb.INSERT, pb.UPDATE, pb.DELETE)


def _tokens(sql: str, limit: int = 400) -> list[tuple[str, str]]:
    """(kind, text) tokens: kind "n" = name/keyword (unquoted), "q" = quoted name, "s" = string, "p" = punct."""
    out: list[tuple[str, str]] = []
    for m in _TOKEN.finditer(sql):
        if m.group(1):
            out.append(("q", m.group(1)[1:-1].replace("``", "`")))
        elif m.group(2):
            out.append(("q", m.group(2)[1:-1]))
        elif m.group(3):
            out.append(("s", m.group(3)))
        elif m.group(4):
            out.append(("n", m.group(4)))
        elif m.group(5):
            out.append(("p", m.group(5)))
        if len(out) >= limit:
            break
    return out


class _Cursor:
    def __init__(self, toks: list[tuple[str, str]]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self, ahead: int = 0) -> str:
        j = self.i + ahead
        if j >= len(self.toks):
            return ""
        kind, text = self.toks[j]
        return text.upper() if kind == "n" else ("\0" + text if kind != "p" else text)

    def accept(self, *words: str) -> bool:
        if self.peek() in words:
            self.i += 1
            return True
        return False

    def accept_seq(self, *words: str) -> bool:
        if all(self.peek(k) == w for k, w in enumerate(words)):
            self.i += len(words)
            return True
        return False

    def name(self, default_schema: str) -> tuple[str, str] | None:
        """Read ``[schema.]table``; None when the next token is not a name."""
        first = self._ident()
        if first is None:
            return None
        if self.peek() == ".":
            self.i += 1
            second = self._ident()
            return (first, second) if second is not None else None
        return default_schema, first

    def _ident(self) -> str | None:
        if self.i >= len(self.toks):
            return None
        kind, text = self.toks[self.i]
        if kind in ("n", "q"):
            self.i += 1
            return text
        return None


def _skip_if_exists(c: _Cursor) -> None:
    c.accept_seq("IF", "NOT", "EXISTS") or c.accept_seq("IF", "EXISTS")


def _alter_item(c: _Cursor) -> int:
    if c.accept("ADD"):
        if c.peek() in ("INDEX", "KEY", "UNIQUE", "FULLTEXT", "SPATIAL", "PRIMARY"):
            return pb.CINDEX
        if c.accept("CONSTRAINT"):
            if c.peek() not in ("UNIQUE", "PRIMARY", "FOREIGN", "CHECK"):
                c._ident()
            if c.peek() in ("UNIQUE", "PRIMARY"):
                return pb.CINDEX
        return pb.ALTER
    if c.accept("DROP"):
        if c.peek() in ("INDEX", "KEY", "PRIMARY", "CONSTRAINT"):
            return pb.DINDEX
        return pb.ALTER
    if c.accept("RENAME") and c.peek() not in ("INDEX", "KEY", "COLUMN"):
        return pb.RENAME
    return pb.ALTER


def classify(sql: str, default_schema: str = "") -> DdlResult:
    """Classify one query event's SQL. ``default_schema`` is the session database of the event."""
    c = _Cursor(_tokens(sql))
    try:
        return _classify(c, default_schema) or DdlResult(pb.QUERY)
    except IndexError:
        return DdlResult(pb.QUERY)


def _classify(c: _Cursor, ds: str) -> DdlResult | None:
    if c.accept("CREATE"):
        c.accept_seq("OR", "REPLACE")
        c.accept("TEMPORARY")
        if c.accept("TABLE"):
            _skip_if_exists(c)
            n = c.name(ds)
            return DdlResult(pb.CREATE, *n) if n else None
        c.accept("ONLINE", "OFFLINE")
        c.accept("UNIQUE", "FULLTEXT", "SPATIAL")
        if c.accept("INDEX"):
            _skip_if_exists(c)
            c._ident()
            while c.peek() and c.peek() != "ON":
                c.i += 1
            if c.accept("ON"):
                n = c.name(ds)
                return DdlResult(pb.CINDEX, *n) if n else None
        return None
    if c.accept("ALTER"):
        c.accept("ONLINE", "OFFLINE")
        c.accept("IGNORE")
        if not c.accept("TABLE"):
            return None
        _skip_if_exists(c)
        n = c.name(ds)
        if not n:
            return None
        kind = _alter_item(c)
        if kind == pb.RENAME:
            c.accept("TO", "AS")
            new = c.name(ds)
            if not new:
                return None
            return DdlResult(pb.RENAME, new[0], new[1], n[0], n[1])
        return DdlResult(kind, *n)
    if c.accept("DROP"):
        c.accept("TEMPORARY")
        if c.accept("TABLE", "TABLES"):
            _skip_if_exists(c)
            n = c.name(ds)
            return DdlResult(pb.ERASE, *n) if n else None
        c.accept("ONLINE", "OFFLINE")
        if c.accept("INDEX"):
            _skip_if_exists(c)
            c._ident()
            if c.accept("ON"):
                n = c.name(ds)
                return DdlResult(pb.DINDEX, *n) if n else None
        return None
    if c.accept("TRUNCATE"):
        c.accept("TABLE")
        n = c.name(ds)
        return DdlResult(pb.TRUNCATE, *n) if n else None
    if c.accept("RENAME"):
        if not c.accept("TABLE", "TABLES"):
            return None
        _skip_if_exists(c)
        old = c.name(ds)
        if old and c.accept("TO"):
            new = c.name(ds)
            if new:
                return DdlResult(pb.RENAME, new[0], new[1], old[0], old[1])
        return None
    if c.accept("INSERT", "REPLACE"):
        c.accept("LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY")
        c.accept("IGNORE")
        c.accept("INTO")
        n = c.name(ds)
        return DdlResult(pb.INSERT, ori_schema=n[0], ori_table=n[1]) if n else DdlResult(pb.INSERT)
    if c.accept("UPDATE"):
        c.accept("LOW_PRIORITY")
        c.accept("IGNORE")
        n = c.name(ds)
        return DdlResult(pb.UPDATE, ori_schema=n[0], ori_table=n[1]) if n else DdlResult(pb.UPDATE)
    if c.accept("DELETE"):
        return DdlResult(pb.DELETE)
    return None
