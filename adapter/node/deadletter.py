"""Dead letters: batches skipped after ``retries`` (``onExhausted: skip``) are kept as canal JSON lines.

One file per skipped batch, ``<dir>/<destination>/<group>-<utc time>-<batch id>.jsonl``: a first
line describing the failure, then one canal Dml JSON per line. Written to a temp file, fsynced and
renamed before the worker acks, so a skipped batch is never lost.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from adapter.dml import Dml, to_canal_json

_SAFE = re.compile(r"[^0-9A-Za-z_.-]")


class DeadLetters:
    def __init__(self, directory: str, clock: Callable[[], float] | None = None) -> None:
        self.directory = Path(directory)
        self._clock = clock

    def write(self, destination: str, group_id: str, batch_id: int, dmls: Sequence[Dml], error: BaseException) -> Path:
        ts = self._clock() if self._clock else dt.datetime.now(dt.timezone.utc).timestamp()
        now = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
        d = self.directory / _SAFE.sub("_", destination)
        d.mkdir(parents=True, exist_ok=True)
        name = f"{_SAFE.sub('_', group_id)}-{now:%Y%m%dT%H%M%S%f}Z-{batch_id}.jsonl"
        final = d / name
        tmp = d / (name + ".tmp")
        head = {"destination": destination, "groupId": group_id, "batchId": batch_id, "skippedAt": now.isoformat(),
                "error": f"{type(error).__name__}: {error}", "dmls": len(dmls),
                "positions": [dmls[0].position, dmls[-1].position] if dmls else []}
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(head) + b"\n")
            for dml in dmls:
                f.write(to_canal_json(dml) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        dir_fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return final
