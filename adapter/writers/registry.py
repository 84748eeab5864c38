"""Writer discovery: entry points in group ``canal_adapter.writers`` (built-ins use it too).

One name everywhere: the entry-point name is ``name:`` in application.yml, the REST ``{type}``,
and (by convention) the writer's mapping folder.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points

from adapter.errors import ConfigError
from adapter.writers.base import Writer

GROUP = "canal_adapter.writers"


class WriterRegistry:
    """Name → Writer class. ``extra`` adds classes without entry points (tests, embedding)."""

    def __init__(self, extra: Mapping[str, type[Writer]] | None = None, group: str = GROUP) -> None:
        self._extra = dict(extra or {})
        self._group = group
        self._cache: dict[str, type[Writer]] = {}
        self._lock = threading.Lock()

    def _entry_points(self) -> dict[str, EntryPoint]:
        return {ep.name: ep for ep in entry_points(group=self._group)}

    def names(self) -> list[str]:
        """Every installed writer name, sorted."""
        return sorted(set(self._entry_points()) | set(self._extra))

    def load(self, name: str) -> type[Writer]:
        """The Writer class for ``name``; ConfigError naming installed writers or the missing module."""
        with self._lock:
            if name in self._cache:
                return self._cache[name]
            cls = self._load(name)
            self._cache[name] = cls
            return cls

    def _load(self, name: str) -> type[Writer]:
        if name in self._extra:
            return self._extra[name]
        eps = self._entry_points()
        ep = eps.get(name) or next((e for n, e in eps.items() if n.lower() == name.lower()), None)
        if ep is None:
            installed = self.names()
            close = difflib.get_close_matches(name, installed, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise ConfigError(f"unknown writer {name!r}; installed writers: {', '.join(installed) or 'none'}{hint}")
        try:
            obj = ep.load()
        except ImportError as e:
            missing = e.name or str(e)
            raise ConfigError(f"writer {name!r} cannot be loaded: module {missing!r} is missing "
                              f"(entry point {ep.value}); install the package that provides it") from e
        except AttributeError as e:
            raise ConfigError(f"writer {name!r} cannot be loaded: {e} (entry point {ep.value})") from e
        if not (isinstance(obj, type) and issubclass(obj, Writer)):
            raise ConfigError(f"writer {name!r}: entry point {ep.value} is not a Writer subclass")
        return obj
