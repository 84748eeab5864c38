"""Routing in one place: (destination, group) + (database, table) → [(writer, mapping)], and mapping reloads.

Writers only declare the source tables each mapping reads (``source_tables()``, lower-cased
``(database, table)``; ``table == "*"`` matches every table of the database). Matching is
case-insensitive. ``groupId`` in a mapping does not take part in routing (canal's tcp mode); a
mapping only routes rows of the group its writer belongs to. Writers without a mapping folder
(``logger``) receive every Dml of their group.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapter.dml import Dml
from adapter.errors import ConfigError
from adapter.node.mappings import MappingStore, WriterSlot, effective_destination
from adapter.writers.base import Routed

log = logging.getLogger(__name__)

Target = tuple[int, Any]  # (slot index within the group, mapping)


@dataclass
class _GroupIndex:
    slots: list[WriterSlot]
    mapless: list[int]
    tables: dict[tuple[str, str], list[Target]] = field(default_factory=dict)
    databases: dict[str, list[Target]] = field(default_factory=dict)
    cache: dict[tuple[str, str], list[Target]] = field(default_factory=dict)

    def targets(self, database: str, table: str) -> list[Target]:
        key = (database, table)
        hit = self.cache.get(key)
        if hit is None:
            db, tb = database.lower(), table.lower()
            hit = sorted(self.tables.get((db, tb), []) + self.databases.get(db, []), key=lambda t: t[0])
            if len(self.cache) < 100_000:  # bounded: table names are few, but be safe
                self.cache[key] = hit
        return hit


class Router:
    """Thread-safe by replacement: ``rebuild`` swaps the whole index; ``route`` reads one snapshot."""

    def __init__(self, slots: Sequence[WriterSlot]) -> None:
        self._slots = list(slots)
        self._index: dict[tuple[str, str], _GroupIndex] = {}
        self.rebuild({})

    def rebuild(self, bindings: Mapping[WriterSlot, Sequence[Any]]) -> None:
        index: dict[tuple[str, str], _GroupIndex] = {}
        for s in self._slots:
            g = index.setdefault((s.task.destination, s.task.group_id), _GroupIndex([], []))
            i = len(g.slots)
            g.slots.append(s)
            if type(s.writer).mapping_dir is None:
                g.mapless.append(i)
                continue
            for spec in bindings.get(s, ()):
                if effective_destination(spec.header, s) != s.task.destination:
                    continue
                for db, tb in spec.source_tables():
                    if tb == "*":
                        g.databases.setdefault(db.lower(), []).append((i, spec))
                    else:
                        g.tables.setdefault((db.lower(), tb.lower()), []).append((i, spec))
        self._index = index

    def slots(self, destination: str, group_id: str) -> list[WriterSlot]:
        g = self._index.get((destination, group_id))
        return list(g.slots) if g else []

    def route(self, destination: str, group_id: str, dmls: Sequence[Dml]) -> list[tuple[WriterSlot, list[Routed]]]:
        """Per writer of the group (config order), the Routed items it must apply, in Dml order."""
        g = self._index.get((destination, group_id))
        if g is None:
            return []
        per: list[list[Routed]] = [[] for _ in g.slots]
        mapless = g.mapless
        for d in dmls:
            for i, spec in g.targets(d.database, d.table):
                per[i].append(Routed(spec, d))
            for i in mapless:
                per[i].append(Routed(None, d))
        return [(g.slots[i], items) for i, items in enumerate(per)]


def apply_bindings(store: MappingStore, router: Router, *, reload: bool = False) -> None:
    """Give every writer its mappings and rebuild the routing index from the store's current state.

    At startup (``reload=False``) a writer's ConfigError propagates (the node refuses to start). On a
    reload, a file the writer refuses is logged and its previous version stays in force (or, for a
    new file, it stays out), so one bad file never changes what the running node does.
    """
    bindings = store.bindings()
    for slot, specs in bindings.items():
        if type(slot.writer).mapping_dir is None:
            continue
        if [id(m) for m in slot.writer.mappings] != [id(m) for m in specs]:
            bindings[slot] = _install(slot, list(specs)) if reload else specs
            if not reload:
                slot.writer.set_mappings(specs)
    router.rebuild(bindings)


def _install(slot: WriterSlot, specs: list[Any]) -> list[Any]:
    previous = {m.header.file: m for m in slot.writer.mappings}
    for _ in range(len(specs) + 1):
        try:
            slot.writer.set_mappings(specs)
            return specs
        except ConfigError as e:
            bad = [i for i, m in enumerate(specs) if m.header.file == e.source and previous.get(e.source) is not m]
            if not bad:
                raise
            old = previous.get(e.source or "")
            log.error("mapping rejected by its writer; the previous version stays in force",
                      extra={"file": e.source, "writer": slot.name, "problem": str(e)})
            if old is None:
                del specs[bad[0]]
            else:
                specs[bad[0]] = old
    raise ConfigError("mapping reload did not converge", source=None)


class MappingReloader:
    """Polls the mapping folders every ``interval`` seconds (canal: 3 s) and applies changes."""

    def __init__(self, store: MappingStore, router: Router, interval: float = 3.0,
                 on_change: Callable[[], None] | None = None) -> None:
        self.store, self.router, self.interval = store, router, interval
        self.on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> bool:
        changed = self.store.scan()
        if changed:
            apply_bindings(self.store, self.router, reload=True)
            if self.on_change:
                self.on_change()
        return changed

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll_once()
            except Exception:  # keep polling: a reload problem must not stop the node
                log.exception("mapping reload failed")

    def start(self) -> None:
        if self.interval > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mapping-reloader", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
