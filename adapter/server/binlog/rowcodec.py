"""Rows events → serialized canal RowData messages, compiled once per table layout.

The hot path of the parser: each column's static Column fields (index, sqlType, name, isKey,
mysqlType) are pre-encoded, so a value costs one decoder call and a few byte appends.
Column semantics follow canal: INSERT → afterColumns all ``updated``; DELETE → beforeColumns;
UPDATE → both, ``updated`` on after-columns whose value (or NULL-ness) changed.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from adapter.protocol import EntryProtocol_pb2 as pb
from adapter.protocol.pbwire import _VARINT_CACHE, f_int, f_str, f_varint, varint
from adapter.server.binlog.tabledef import TableDef
from adapter.server.binlog.typemap import mysql_type, sql_type
from adapter.server.binlog.values import Decoder, make_decoder

INSERT, UPDATE, DELETE = pb.INSERT, pb.UPDATE, pb.DELETE

_BEFORE, _AFTER, _ROWDATA = b"\x0a", b"\x12", b"\x62"
_UPDATED = b"\x28\x01"
_NOT_NULL, _NULL = b"\x30\x00", b"\x30\x01"
_VALUE = b"\x42"


class RowCodec:
    """Decodes the row images of one table layout and encodes them as RowData bytes."""

    def __init__(self, table: TableDef, tz: datetime.tzinfo, mysql_types: Sequence[str] | None = None) -> None:
        self.table = table
        cols = table.columns
        self.decoders: list[Decoder] = [make_decoder(c, tz) for c in cols]
        self.sql_types = [sql_type(c) for c in cols]
        self.mysql_types = list(mysql_types) if mysql_types else [mysql_type(c) for c in cols]
        pre = [
            f_int(1, c.index) + f_varint(2, st) + f_str(3, c.name) + (b"\x20\x01" if c.is_key else b"")
            for c, st in zip(cols, self.sql_types, strict=True)
        ]
        # heads[updated][i]: static prefix + updated flag + isNull=false + value tag
        self._heads = ([p + _NOT_NULL + _VALUE for p in pre], [p + _UPDATED + _NOT_NULL + _VALUE for p in pre])
        self._suffix = [f_str(10, mt) for mt in self.mysql_types]
        # NULL columns are fully static: pre-encode them with their length prefix
        null_bodies = ([p + _NULL + s for p, s in zip(pre, self._suffix, strict=True)],
                       [p + _UPDATED + _NULL + s for p, s in zip(pre, self._suffix, strict=True)])
        self._nulls = tuple([varint(len(b)) + b for b in bodies] for bodies in null_bodies)
        self._present: dict[bytes, tuple[int, ...]] = {}

    def present(self, bitmap: bytes) -> tuple[int, ...]:
        """Column indexes set in a columns-present bitmap (all of them with FULL row image)."""
        idx = self._present.get(bitmap)
        if idx is None:
            n = len(self.table.columns)
            bits = int.from_bytes(bitmap, "little")
            idx = self._present[bitmap] = tuple(i for i in range(n) if bits >> i & 1)
        return idx

    def _image(self, buf: bytes, pos: int, idxs: tuple[int, ...]) -> tuple[list[bytes | None], int]:
        nb = (len(idxs) + 7) >> 3
        nulls = int.from_bytes(buf[pos : pos + nb], "little")
        pos += nb
        decs = self.decoders
        vals: list[bytes | None] = []
        append = vals.append
        for i in idxs:
            if nulls & 1:
                append(None)
            else:
                v, pos = decs[i](buf, pos)
                append(v)
            nulls >>= 1
        return vals, pos

    def _columns(
        self, out: list[bytes], tag: bytes, idxs: tuple[int, ...], vals: list[bytes | None],
        updated: Sequence[bool] | bool,
    ) -> int:
        """Append one image's Column messages to ``out``; return the bytes appended."""
        heads, nulls, suffix = self._heads, self._nulls, self._suffix
        vc = _VARINT_CACHE
        total = 0
        for k, i in enumerate(idxs):
            upd = updated if isinstance(updated, bool) else updated[k]
            v = vals[k]
            if v is None:
                lp_body = nulls[upd][i]
                out += (tag, lp_body)
                total += 1 + len(lp_body)
            else:
                head, suf = heads[upd][i], suffix[i]
                n = len(v)
                lv = vc[n] if n < 16384 else varint(n)
                size = len(head) + len(lv) + n + len(suf)
                vi = vc[size] if size < 16384 else varint(size)
                out += (tag, vi, head, lv, v, suf)
                total += 1 + len(vi) + size
        return total

    def encode(self, kind: int, buf: bytes, pos: int, end: int, bitmap: bytes, bitmap2: bytes = b"") -> tuple[
        list[bytes], int
    ]:
        """Encode the rows in ``buf[pos:end]`` as repeated ``rowDatas`` fields; return (parts, rows)."""
        out: list[bytes] = []
        idxs = self.present(bitmap)
        idxs2 = self.present(bitmap2) if kind == UPDATE else idxs
        rows = 0
        while pos < end:
            slot = len(out)
            out += (_ROWDATA, b"")
            vals, pos = self._image(buf, pos, idxs)
            if kind == INSERT:
                size = self._columns(out, _AFTER, idxs, vals, True)
            elif kind == DELETE:
                size = self._columns(out, _BEFORE, idxs, vals, False)
            else:
                after, pos = self._image(buf, pos, idxs2)
                size = self._columns(out, _BEFORE, idxs, vals, False)
                before = dict(zip(idxs, vals, strict=True)) if idxs != idxs2 else None
                if before is None:
                    changed = [b != a for b, a in zip(vals, after, strict=True)]
                else:
                    changed = [i not in before or before[i] != a for i, a in zip(idxs2, after, strict=True)]
                size += self._columns(out, _AFTER, idxs2, after, changed)
            out[slot + 1] = _VARINT_CACHE[size] if size < 16384 else varint(size)
            rows += 1
        return out, rows
