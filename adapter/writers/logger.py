"""The ``logger`` writer: logs every Dml as canal's JSON line (``DML: {...}``), as canal's logger adapter."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from adapter.dml import to_canal_json
from adapter.writers.base import Routed, Writer

log = logging.getLogger("adapter.writers.logger")


class LoggerWriter(Writer):
    """Takes no mapping files: it receives every Dml of its group."""

    name = "logger"

    def write(self, items: Sequence[Routed]) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        for item in items:
            log.info("DML: %s", to_canal_json(item.dml).decode())
