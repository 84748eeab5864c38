"""Mapping files: load ``<conf>/<writer mapping_dir>/*.yml``, parse the header, bind files to writer instances.

The file name is the task name (REST ``{task}``). The common header (``dataSourceKey``,
``destination``, ``groupId``, ``outerAdapterKey``) is parsed here; the rest of the file goes to the
writer class's ``parse_mapping``. Binding follows canal: ``outerAdapterKey`` equal to the writer's
``key`` (case-insensitive), or, without ``outerAdapterKey``, every keyless writer of that name in
the mapping's destination (and group, when the file names one). Deviations: a file without
``destination`` takes its writer's destination, and a file that binds to no writer is logged.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapter.errors import ConfigError
from adapter.node.configload import TaskSpec, WriterSpec, read_yaml
from adapter.writers.base import MappingHeader, Writer, WriterContext

log = logging.getLogger(__name__)

HEADER_KEYS = ("dataSourceKey", "destination", "groupId", "outerAdapterKey")
_SUFFIXES = (".yml", ".yaml")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.\-]+)(?::([^}]*))?\}")


@dataclass(frozen=True, eq=False)
class WriterSlot:
    """One built writer instance and where it sits in the config."""

    writer: Writer
    spec: WriterSpec
    task: TaskSpec

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Loaded:
    """One parsed mapping file: its header and the writer's parsed mapping (a ``MappingSpec``)."""

    header: MappingHeader
    spec: Any
    stamp: tuple[int, int]  # (mtime_ns, size) when parsed


def _text(raw: Mapping[str, Any], key: str, source: str) -> str | None:
    v = raw.get(key)
    if v is None or isinstance(v, bool):
        return None if v is None else str(v).lower()
    if isinstance(v, (str, int, float)):
        s = str(v).strip()
        return s or None
    raise ConfigError(f"expected a string, got {type(v).__name__}", source=source, key=key)


def resolve_placeholders(value: Any, env: Mapping[str, str]) -> Any:
    """``${NAME}`` / ``${NAME:default}`` in string values from the environment (unknown names stay)."""
    if isinstance(value, str) and "${" in value:
        def sub(m: re.Match[str]) -> str:
            got = env.get(m[1])
            if got is not None:
                return got
            return m[2] if m[2] is not None else m[0]

        return _PLACEHOLDER.sub(sub, value)
    if isinstance(value, dict):
        return {k: resolve_placeholders(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_placeholders(v, env) for v in value]
    return value


def parse_file(path: Path, writer_cls: type[Writer], context: WriterContext,
               env: Mapping[str, str] | None = None) -> Loaded:
    """Parse one mapping file; ConfigError (naming the file and key) when it is invalid."""
    source = str(path)
    st = path.stat()
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping at the top level, got {type(raw).__name__}", source=source)
    raw = resolve_placeholders(raw, os.environ if env is None else env)
    header = MappingHeader(
        task=path.name,
        file=source,
        data_source_key=_text(raw, "dataSourceKey", source),
        destination=_text(raw, "destination", source),
        group_id=_text(raw, "groupId", source),
        outer_adapter_key=_text(raw, "outerAdapterKey", source),
    )
    if header.data_source_key and header.data_source_key not in context.data_sources:
        known = ", ".join(sorted(context.data_sources)) or "none configured"
        raise ConfigError(f"data source {header.data_source_key!r} is not in canal.conf.srcDataSources "
                          f"(known: {known})", source=source, key="dataSourceKey")
    body = {k: v for k, v in raw.items() if k not in HEADER_KEYS}
    try:
        spec = writer_cls.parse_mapping(header, body, context)
    except ConfigError as e:
        if e.source:
            raise
        raise ConfigError(str(e), source=source, key=e.key) from e
    except Exception as e:  # a writer's parser must not take the node down; report it as config
        raise ConfigError(f"rejected by writer {writer_cls.name!r}: {e}", source=source) from e
    if not callable(getattr(spec, "source_tables", None)) or not hasattr(spec, "header"):
        raise ConfigError(f"writer {writer_cls.name!r} returned a mapping without header/source_tables()",
                          source=source)
    return Loaded(header, spec, (st.st_mtime_ns, st.st_size))


def binds_to(header: MappingHeader, slot: WriterSlot) -> bool:
    """canal's ``match()``: by outerAdapterKey, or keyless file → keyless writers of its destination/group."""
    if header.outer_adapter_key:
        return slot.spec.keyed and slot.spec.key.lower() == header.outer_adapter_key.lower()
    if slot.spec.keyed:
        return False
    if header.destination and header.destination != slot.task.destination:
        return False
    return not header.group_id or header.group_id == slot.task.group_id


def effective_destination(header: MappingHeader, slot: WriterSlot) -> str:
    return header.destination or slot.task.destination


class MappingStore:
    """All mapping files of the configured writers, re-read on change (``scan``)."""

    def __init__(self, conf_dir: str, slots: Iterable[WriterSlot], context: WriterContext,
                 env: Mapping[str, str] | None = None) -> None:
        self.conf_dir = Path(conf_dir)
        self.slots = list(slots)
        self.context = context
        self.env = env
        # folder → writer class (first configured writer of that folder wins; same-name writers share it)
        self.folders: dict[str, type[Writer]] = {}
        for s in self.slots:
            d = type(s.writer).mapping_dir
            if d:
                self.folders.setdefault(d, type(s.writer))
        self.files: dict[tuple[str, str], Loaded] = {}  # (folder, file name) → parsed
        self._bad: dict[tuple[str, str], tuple[int, int]] = {}  # rejected versions, not re-logged

    def _listing(self, folder: str) -> dict[str, Path]:
        d = self.conf_dir / folder
        if not d.is_dir():
            return {}
        return {p.name: p for p in sorted(d.iterdir()) if p.suffix in _SUFFIXES and p.is_file()}

    def load_all(self) -> None:
        """Startup: parse every file; the first bad file raises ConfigError (the node refuses to start)."""
        for folder, cls in self.folders.items():
            for name, path in self._listing(folder).items():
                self.files[(folder, name)] = parse_file(path, cls, self.context, self.env)
        self._warn_unbound()

    def scan(self) -> bool:
        """Reload added/changed/removed files; a bad file is logged and its previous version stays."""
        changed = False
        for folder, cls in self.folders.items():
            listing = self._listing(folder)
            for name in [n for (f, n) in self.files if f == folder and n not in listing]:
                del self.files[(folder, name)]
                log.info("mapping removed", extra={"mapping_file": str(self.conf_dir / folder / name)})
                changed = True
            for name, path in listing.items():
                key = (folder, name)
                try:
                    st = path.stat()
                except OSError:
                    continue
                stamp = (st.st_mtime_ns, st.st_size)
                old = self.files.get(key)
                if (old is not None and old.stamp == stamp) or self._bad.get(key) == stamp:
                    continue
                try:
                    self.files[key] = parse_file(path, cls, self.context, self.env)
                except (ConfigError, OSError) as e:
                    self._bad[key] = stamp
                    log.error("mapping rejected; the previous version stays in force" if old else
                              "mapping rejected", extra={"mapping_file": str(path), "problem": str(e)})
                    continue
                self._bad.pop(key, None)
                log.info("mapping loaded" if old is None else "mapping reloaded",
                         extra={"mapping_file": str(path)})
                changed = True
        if changed:
            self._warn_unbound()
        return changed

    def bindings(self) -> dict[WriterSlot, list[Any]]:
        """Writer slot → its mappings (parsed specs) in file-name order."""
        out: dict[WriterSlot, list[Any]] = {s: [] for s in self.slots}
        for (folder, _name), loaded in sorted(self.files.items()):
            for s in self.slots:
                if type(s.writer).mapping_dir == folder and binds_to(loaded.header, s):
                    out[s].append(loaded.spec)
        return out

    def find(self, writer_name: str, task: str, key: str | None = None) -> list[tuple[WriterSlot, Any]]:
        """REST lookup: mappings named ``task`` (file name, ``.yml`` optional) of writers called ``writer_name``."""
        names = {task} if task.endswith(_SUFFIXES) else {task + s for s in _SUFFIXES}
        found = []
        for s in self.slots:
            if s.name.lower() != writer_name.lower() or (key is not None and s.spec.key.lower() != key.lower()):
                continue
            folder = type(s.writer).mapping_dir
            for (f, n), loaded in sorted(self.files.items()):
                if f == folder and n in names and binds_to(loaded.header, s):
                    found.append((s, loaded.spec))
        return found

    def _warn_unbound(self) -> None:
        for (folder, _name), loaded in self.files.items():
            slots = [s for s in self.slots if type(s.writer).mapping_dir == folder and binds_to(loaded.header, s)]
            if not slots:
                log.warning("mapping binds to no configured writer (check outerAdapterKey/destination/groupId)",
                            extra={"mapping_file": loaded.header.file})
            for s in slots:
                if effective_destination(loaded.header, s) != s.task.destination:
                    log.warning("mapping destination differs from its writer's instance; it will never match",
                                extra={"mapping_file": loaded.header.file, "mapping_destination":
                                       loaded.header.destination, "instance": s.task.destination})
