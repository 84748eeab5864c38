"""Row changes → keyed operations, per-key collapse, strict runs, and key-safe partitioning.

Every row becomes upserts and deletes by target key: INSERT and UPDATE upsert the after-image; an
UPDATE whose key changed deletes the old key first. Because an operation's effect depends only on
its key, a batch can be collapsed to at most one delete then one upsert per key (deletes first),
which keeps every key's final state while needing two statements per table. ``runs`` keeps the exact
order instead (used when collapse meets a constraint that depends on order, e.g. a unique swap).

Partitioning (``concurrent: true``) must keep each key's events in order. A key change links two
keys, so partitions are the connected components of "same key" and "old key → new key" (union-find):
every event touching either key lands in one partition, in source order. canal hashes the new key
only, so the delete of the old key can race with earlier events on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapter.dml import DELETE, INSERT, UPDATE, Dml
from adapter.errors import FatalError
from adapter.writers.rdb.binding import ColumnPlan, TableBinding

UPSERT_OP, DELETE_OP = 1, 2


@dataclass(slots=True)
class Op:
    """One keyed operation on one target table. ``values`` is set for upserts only."""

    kind: int
    binding: TableBinding
    key: tuple[Any, ...]
    values: dict[str, Any] | None
    dml: Dml


def _convert(plan: ColumnPlan, row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t, s, conv in zip(plan.targets, plan.sources, plan.convs, strict=True):
        if s in row:  # a partial (MINIMAL) image writes only the columns it carries
            v = row[s]
            out[t] = v if conv is None or v is None else conv(v)
    return out


def _key(binding: TableBinding, plan: ColumnPlan, values: dict[str, Any], dml: Dml) -> tuple[Any, ...]:
    try:
        return tuple(values[plan.targets[i]] for i in plan.key_pos)
    except KeyError:
        raise FatalError(f"rdb: a {dml.type} row of {dml.database}.{dml.table} lacks key columns "
                         f"{list(binding.key_cols)} of {binding.name} (position {dml.position or '?'})") from None


def row_groups(binding: TableBinding, dml: Dml, plan: ColumnPlan) -> list[list[Op]]:
    """The ops of each row of a row Dml; a group holds the ops of one row (2 for a key change)."""
    groups: list[list[Op]] = []
    if dml.type in (INSERT, UPDATE):
        old = dml.old or ()
        for i, row in enumerate(dml.data):
            values = _convert(plan, row)
            key = _key(binding, plan, values, dml)
            if dml.type == UPDATE and i < len(old) and old[i]:
                before = old[i]
                old_key = list(key)
                for n, pos in enumerate(plan.key_pos):
                    src, conv = plan.sources[pos], plan.convs[pos]
                    if src in before:
                        v = before[src]
                        old_key[n] = v if conv is None or v is None else conv(v)
                if tuple(old_key) != key:
                    groups.append([Op(DELETE_OP, binding, tuple(old_key), None, dml),
                                   Op(UPSERT_OP, binding, key, values, dml)])
                    continue
            groups.append([Op(UPSERT_OP, binding, key, values, dml)])
    elif dml.type == DELETE:
        for row in dml.data:
            values = _convert(plan, row)
            groups.append([Op(DELETE_OP, binding, _key(binding, plan, values, dml), None, dml)])
    return groups


@dataclass
class TableWork:
    """The collapsed work for one target table: keys to delete, then rows to upsert."""

    binding: TableBinding
    deletes: list[tuple[Any, ...]] = field(default_factory=list)
    upserts: list[dict[str, Any]] = field(default_factory=list)


def collapse(ops: Iterable[Op]) -> list[TableWork]:
    """At most one delete and one upsert per key, tables in first-seen order (deletes run first)."""
    # Keyed by target table, not mapping: two mappings writing one table share its keys' order.
    states: dict[str, tuple[TableBinding, dict[tuple[Any, ...], list[Any]]]] = {}
    for op in ops:
        entry = states.get(op.binding.name)
        if entry is None:
            entry = states[op.binding.name] = (op.binding, {})
        per_key = entry[1]
        st = per_key.get(op.key)
        if op.kind == DELETE_OP:
            per_key[op.key] = [True, None]  # whatever came before is gone
        elif st is None:
            per_key[op.key] = [False, op.values]
        elif st[1] is None:
            st[1] = op.values  # delete, then insert: keep the delete (values may be partial)
        else:
            st[1] = {**st[1], **(op.values or {})}
    out: list[TableWork] = []
    for binding, per_key in states.values():
        work = TableWork(binding)
        for key, (deleted, values) in per_key.items():
            if deleted:
                work.deletes.append(key)
            if values is not None:
                work.upserts.append(values)
        out.append(work)
    return out


def runs(ops: Sequence[Op]) -> list[list[Op]]:
    """Exact-order runs: consecutive ops of one table and kind (and column set), no key twice."""
    out: list[list[Op]] = []
    cur: list[Op] = []
    seen: set[tuple[Any, ...]] = set()
    for op in ops:
        if cur:
            head = cur[0]
            same = head.binding.name == op.binding.name and head.kind == op.kind and op.key not in seen
            if same and op.kind == UPSERT_OP:
                same = (head.values or {}).keys() == (op.values or {}).keys()
            if not same:
                out.append(cur)
                cur, seen = [], set()
        cur.append(op)
        seen.add(op.key)
    if cur:
        out.append(cur)
    return out


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def find(self, x: Any) -> Any:
        parent = self.parent
        root = parent.setdefault(x, x)
        while root != parent[root]:
            root = parent[root]
        while x != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    def union(self, a: Any, b: Any) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


_SERIAL = ("<serial>",)


def partition(groups: Sequence[list[Op]], n: int) -> list[list[Op]]:
    """Split row groups over ``n`` partitions keeping per-key (and key-change) order.

    Ops of a non-concurrent mapping all join one component, so they apply strictly in order.
    """
    if n <= 1 or not any(g[0].binding.mapping.concurrent for g in groups):
        return [[op for g in groups for op in g]]
    uf = _UnionFind()
    for g in groups:
        first = (g[0].binding.name, g[0].key)
        uf.find(first)
        for op in g[1:]:
            uf.union(first, (op.binding.name, op.key))
        if not g[0].binding.mapping.concurrent:
            uf.union(_SERIAL, first)
    parts: list[list[Op]] = [[] for _ in range(n)]
    for g in groups:
        root = uf.find((g[0].binding.name, g[0].key))
        parts[hash(root) % n].extend(g)
    return [p for p in parts if p]
