"""Pure translation of key operations (put / patch / delete) into Redis command tuples.

No I/O here: the writer feeds the tuples to one pipeline per batch. Every command is idempotent,
so replaying a batch leaves the same keys and values:

- ``Put``: the key's whole value. hash → ``DEL`` + ``HSET`` (so fields of an older value cannot
  linger); json/string → ``SET`` (replaces whole). Then ``EXPIRE`` when the mapping has a ttl.
- ``Patch`` (hash only): the changed fields, applied only if the key exists; a missing key (never
  loaded, expired, evicted) is written in full from ``full`` when it is known, else left absent
  rather than created half-filled. One ``EVAL`` of ``PATCH_SCRIPT`` per key.
- ``Delete``: ``DEL``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from adapter.writers.redis import values as V

HASH = "hash"
JSON = "json"
STRING = "string"
VALUE_FORMS = (HASH, JSON, STRING)

#: KEYS[1] = key; ARGV = ttl, nset, ndel, nfull, set pairs..., del fields..., full pairs...
PATCH_SCRIPT = """
local ttl = tonumber(ARGV[1])
local nset = tonumber(ARGV[2])
local ndel = tonumber(ARGV[3])
local nfull = tonumber(ARGV[4])
local i = 5
if redis.call('EXISTS', KEYS[1]) == 1 then
  if nset > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, i, i + 2 * nset - 1)) end
  i = i + 2 * nset
  if ndel > 0 then redis.call('HDEL', KEYS[1], unpack(ARGV, i, i + ndel - 1)) end
elseif nfull > 0 then
  i = i + 2 * nset + ndel
  redis.call('HSET', KEYS[1], unpack(ARGV, i, i + 2 * nfull - 1))
else
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
end
return 1
"""

Command = tuple[Any, ...]


class ValueSpec(Protocol):
    """What command building needs from a mapping."""

    @property
    def value_form(self) -> str: ...
    @property
    def value_fields(self) -> tuple[str, ...]: ...
    @property
    def ttl(self) -> int: ...
    @property
    def binary(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Put:
    """Write the key's whole value from ``values`` (output field → Python value)."""

    key: str
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Patch:
    """Hash only: set/remove ``changed`` fields (None removes); ``full`` is the fallback value."""

    key: str
    changed: Mapping[str, Any]
    full: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    key: str


KeyOp = Put | Patch | Delete


def _hash_pairs(spec: ValueSpec, values: Mapping[str, Any], fields: Iterable[str]) -> list[Any]:
    out: list[Any] = []
    for f in fields:
        v = values.get(f)
        if v is not None:
            out += [f, V.field_value(v, spec.binary)]
    return out


def _expire(spec: ValueSpec, key: str) -> list[Command]:
    return [("EXPIRE", key, spec.ttl)] if spec.ttl > 0 else []


def put_commands(spec: ValueSpec, op: Put) -> list[Command]:
    form = spec.value_form
    if form == HASH:
        pairs = _hash_pairs(spec, op.values, spec.value_fields)
        if not pairs:  # a hash cannot be empty: a row whose value fields are all NULL has no key
            return [("DEL", op.key)]
        return [("DEL", op.key), ("HSET", op.key, *pairs), *_expire(spec, op.key)]
    doc: str | bytes
    if form == JSON:
        doc = V.json_document(spec.value_fields, op.values)
    else:
        raw = op.values.get(spec.value_fields[0])
        if raw is None:
            return [("DEL", op.key)]
        doc = V.field_value(raw, spec.binary)
    return [("SET", op.key, doc, "EX", spec.ttl)] if spec.ttl > 0 else [("SET", op.key, doc)]


def patch_commands(spec: ValueSpec, op: Patch) -> list[Command]:
    if spec.value_form != HASH:
        # json/string values are rewritten whole; a patch without the full value cannot be applied
        return put_commands(spec, Put(op.key, op.full)) if op.full is not None else []
    fields = [f for f in spec.value_fields if f in op.changed]
    if not fields:
        return []
    sets = _hash_pairs(spec, op.changed, fields)
    dels = [f for f in fields if op.changed.get(f) is None]
    full = _hash_pairs(spec, op.full, spec.value_fields) if op.full is not None else []
    args = [spec.ttl, len(sets) // 2, len(dels), len(full) // 2, *sets, *dels, *full]
    return [("EVAL", PATCH_SCRIPT, 1, op.key, *args)]


def build(spec: ValueSpec, ops: Sequence[KeyOp]) -> list[Command]:
    """All commands for ``ops`` in order (order matters: a key may be touched several times)."""
    out: list[Command] = []
    for op in ops:
        if isinstance(op, Delete):
            out.append(("DEL", op.key))
        elif isinstance(op, Put):
            out += put_commands(spec, op)
        else:
            out += patch_commands(spec, op)
    return out
