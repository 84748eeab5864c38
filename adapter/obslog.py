"""Structured logging for both programs: one JSON object (or key=value line) per record.

Use ``log = logging.getLogger(__name__)`` and pass fields through ``extra``:
``log.info("batch acked", extra={"destination": d, "batch_id": 7})``. Never log secrets:
keys that look like secrets are masked here as a last line of defence.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson

_STD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_SECRET_HINTS = ("password", "passwd", "secret", "token", "credential")


def _safe(key: str, value: Any) -> Any:
    if any(h in key.lower() for h in _SECRET_HINTS):
        return "***"
    return value


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line with its ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in _STD and not k.startswith("_"):
                out[k] = _safe(k, v)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class KvFormatter(logging.Formatter):
    """Human-readable ``time level logger msg k=v ...`` lines."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={_safe(k, v)}" for k, v in vars(record).items() if k not in _STD and not k.startswith("_")
        )
        line = f"{self.formatTime(record)} {record.levelname:<5} {record.name}: {record.getMessage()}"
        line = f"{line} {extras}" if extras else line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: str = "INFO", json: bool = False) -> None:
    """Install one stderr handler on the root logger (idempotent)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json else KvFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("kazoo.client", "elastic_transport", "urllib3", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
