"""The error hierarchy, grouped by what the caller must do.

- ``ConfigError``: bad configuration or mapping; refuse to start (exit != 0) or reject the reload.
- ``RetriableError``: a transient fault (network, target down); roll back, back off, retry.
- ``FatalError``: cannot continue safely; roll back and stop (sync switch off / instance stop).
- ``SkippableRowError``: one row cannot be applied and may be skipped; log, count, go on.
- ``ProtocolError``: a peer sent bad input on the wire; answer with an error Ack or close.
- ``CoordinationLost``: the ZooKeeper session is suspended or lost; stop serving/writing now.

Callers decide by class, never by message text.
"""

from __future__ import annotations


class CanalError(Exception):
    """Root of every error raised on purpose by this project."""


class ConfigError(CanalError):
    """Configuration or mapping is invalid. ``source`` names the file, ``key`` the key path."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None) -> None:
        self.source = source
        self.key = key
        where = ", ".join(p for p in (source, f"key '{key}'" if key else None) if p)
        super().__init__(f"{where}: {message}" if where else message)


class RetriableError(CanalError):
    """A transient failure: the operation may succeed if retried later."""


class FatalError(CanalError):
    """A failure that retrying will not fix; stop processing without acknowledging."""


class SkippableRowError(CanalError):
    """One row cannot be applied; the rest of the batch may go on."""

    def __init__(self, message: str, *, row: object = None) -> None:
        self.row = row
        super().__init__(message)


class ProtocolError(CanalError):
    """A peer sent bad input. ``code`` is the canal Ack error code to answer with."""

    def __init__(self, message: str, *, code: int = 400) -> None:
        self.code = code
        super().__init__(message)


class CoordinationLost(CanalError):
    """The ZooKeeper session is suspended or lost: leases and locks are no longer valid."""
