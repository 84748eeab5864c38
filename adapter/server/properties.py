"""Java ``.properties`` parsing and canal's ``${key}`` / ``${key:default}`` placeholder resolution.

Parsing follows ``java.util.Properties.load``: ``#``/``!`` comments, continuation lines (an odd
number of trailing backslashes; the next line's leading blanks are dropped), ``=``, ``:`` or
whitespace between key and value, and escapes (``\\t \\n \\r \\f \\uXXXX``; any other escaped
character stands for itself, so ``\\\\`` is one backslash). Files are read as UTF-8 (Java reads
ISO-8859-1; non-ASCII values are the only difference, and UTF-8 is what people write).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from adapter.errors import ConfigError

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_PLACEHOLDER = re.compile(r"\$\{([^{}]*)\}")


def _logical_lines(text: str) -> list[str]:
    out: list[str] = []
    pending: str | None = None
    for raw in text.splitlines():
        line = raw.lstrip(" \t\f") if pending is not None else raw
        if pending is None:
            stripped = line.lstrip(" \t\f")
            if not stripped or stripped[0] in "#!":
                continue  # a comment never continues, even with a trailing backslash
            line = stripped
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending = (pending or "") + line[:-1]
            continue
        out.append((pending or "") + line)
        pending = None
    if pending is not None:
        out.append(pending)
    return out


def _unescape(s: str, source: str, key: str | None) -> str:
    if "\\" not in s:
        return s
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = s[i + 1]
        if nxt == "u":
            digits = s[i + 2:i + 6]
            if len(digits) != 4 or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise ConfigError(f"malformed \\uxxxx escape {s[i:i + 6]!r}", source=source, key=key)
            out.append(chr(int(digits, 16)))
            i += 6
            continue
        out.append(_ESCAPES.get(nxt, nxt))
        i += 2
    return "".join(out)


def _split(line: str) -> tuple[str, str]:
    """Split a logical line at the first unescaped ``=``, ``:`` or whitespace."""
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c in "=: \t\f":
            break
        i += 1
    key, rest = line[:i], line[i:]
    rest = rest.lstrip(" \t\f")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t\f")
    return key, rest


def parse_properties(text: str, source: str = "<string>") -> dict[str, str]:
    """Parse properties text; later duplicates win, as in Java."""
    out: dict[str, str] = {}
    for line in _logical_lines(text):
        raw_key, raw_value = _split(line)
        key = _unescape(raw_key, source, None)
        out[key] = _unescape(raw_value, source, key)
    return out


def load_properties(path: Path) -> dict[str, str]:
    """Read and parse a properties file; a missing or unreadable file is a ConfigError naming it."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read properties file: {e.strerror or e}", source=str(path)) from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("iso-8859-1")  # Java's own encoding for properties files
    return parse_properties(text, str(path))


@dataclass(frozen=True)
class Layer:
    """One properties file and its keys."""

    source: str
    values: Mapping[str, str]


class Properties:
    """Layered lookup: the environment (canal's docker style ``-e canal.port=...``) overrides the
    layers, and later layers (instance.properties) override earlier ones (canal.properties)."""

    def __init__(self, layers: list[Layer], env: Mapping[str, str] | None = None) -> None:
        self.layers = layers
        self.env = os.environ if env is None else env

    def with_layer(self, layer: Layer) -> Properties:
        return Properties([*self.layers, layer], self.env)

    def raw(self, key: str) -> tuple[str, str] | None:
        """(unresolved value, source) or None when unset."""
        if key in self.env:
            return self.env[key], "environment"
        for layer in reversed(self.layers):
            if key in layer.values:
                return layer.values[key], layer.source
        return None

    def source_of(self, key: str) -> str:
        hit = self.raw(key)
        if hit:
            return hit[1]
        files = [layer.source for layer in self.layers if not layer.source.startswith("<")]
        return files[-1] if files else "<defaults>"

    def get(self, key: str, default: str | None = None) -> str | None:
        """The trimmed value with placeholders resolved (canal trims values), or ``default``."""
        hit = self.raw(key)
        if hit is None:
            return default
        value, source = hit
        return self.resolve(value, source, key).strip()

    def resolve(self, value: str, source: str, key: str, _seen: frozenset[str] = frozenset()) -> str:
        """Replace ``${name}`` and ``${name:default}`` (innermost first); unresolvable → ConfigError."""
        if key in _seen:
            raise ConfigError(f"placeholder cycle through {' -> '.join(sorted(_seen))}", source=source, key=key)
        seen = _seen | {key}
        for _ in range(100):  # nested placeholders resolve innermost first
            m = _PLACEHOLDER.search(value)
            if m is None:
                return value
            name, has_default, default = m.group(1).partition(":")
            hit = self.raw(name.strip())
            if hit is not None:
                sub = self.resolve(hit[0], hit[1], name.strip(), seen).strip()
            elif has_default:
                sub = default
            else:
                raise ConfigError(f"cannot resolve placeholder ${{{name}}} (not set in the properties or environment)",
                                  source=source, key=key)
            value = value[:m.start()] + sub + value[m.end():]
        raise ConfigError("too many nested placeholders", source=source, key=key)
