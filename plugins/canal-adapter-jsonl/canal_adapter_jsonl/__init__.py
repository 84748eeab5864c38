"""``jsonl``: an example canal-adapter writer that appends each Dml as canal's JSON line to a file.

application.yml::

    outerAdapters:
    - name: jsonl
      properties:
        path: /var/lib/canal/changes.jsonl   # required
        fsync: true                          # optional: fsync after every batch (default false)

Delivery is at-least-once: a batch that is replayed after a failure is appended again.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import IO

from adapter.dml import to_canal_json
from adapter.errors import ConfigError, RetriableError
from adapter.writers.base import Routed, Writer, WriterConfig, WriterContext


class JsonlWriter(Writer):
    name = "jsonl"

    def __init__(self, config: WriterConfig, context: WriterContext) -> None:
        super().__init__(config, context)
        path = config.properties.get("path")
        if not isinstance(path, str) or not path.strip():
            raise ConfigError("expected a file path for the JSON lines", key="properties.path")
        self.path = os.path.join(context.conf_dir, path) if not os.path.isabs(path) else path
        self.fsync = str(config.properties.get("fsync", "false")).lower() in ("1", "true", "yes")
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for the writer's lifetime
        except OSError as e:
            raise ConfigError(f"cannot open {self.path}: {e.strerror}", key="properties.path") from e

    def write(self, items: Sequence[Routed]) -> None:
        if not items:
            return
        payload = b"".join(to_canal_json(i.dml) + b"\n" for i in items)
        with self._lock:
            if self._file is None:
                self.open()
            assert self._file is not None
            try:
                self._file.write(payload)  # one write per batch: a batch is appended whole or not at all
                self._file.flush()
                if self.fsync:
                    os.fsync(self._file.fileno())
            except OSError as e:
                raise RetriableError(f"cannot append to {self.path}: {e}") from e

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
