"""Table filters with canal's AviaterRegexFilter semantics (``canal.instance.filter[.black].regex``).

A filter is a comma-separated list of Perl-style regexes; commas inside ``{}``, ``[]`` or ``()``
do not split. Each regex must match the whole lower-cased ``schema.table`` (case-insensitively).
An empty include filter matches everything; an empty black filter matches nothing.
Deviation: blanks around list items are ignored (canal keeps them and then never matches).
"""

from __future__ import annotations

import re

from adapter.errors import ConfigError

_OPEN, _CLOSE = "{[(", "}])"


def split_patterns(text: str) -> list[str]:
    """Split on commas that are not inside {} [] () (a backslash escapes the next character)."""
    items: list[str] = []
    depth = 0
    cur: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            cur.append(ch)
            escaped = False
            continue
        if ch == "\\":
            cur.append(ch)
            escaped = True
            continue
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE and depth > 0:
            depth -= 1
        if ch == "," and depth == 0:
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    items.append("".join(cur))
    return [s.strip() for s in items if s.strip()]


class RegexFilter:
    """Matches ``schema.table`` names; ``default`` is the answer when the pattern list is empty."""

    def __init__(self, text: str, *, default: bool, key: str = "canal.instance.filter.regex") -> None:
        self.text = text or ""
        self.default = default
        patterns = split_patterns(self.text)
        # canal sorts longest-first because ORO's alternation stops at the first match; with each
        # item anchored that no longer matters, but keep the order for identical behaviour.
        patterns.sort(key=len, reverse=True)
        self.patterns = patterns
        try:
            self._regex = re.compile("|".join(f"^(?:{p})$" for p in patterns), re.IGNORECASE) if patterns else None
        except re.error as exc:
            raise ConfigError(f"invalid table filter regex {self.text!r}: {exc}", key=key) from exc
        self._cache: dict[str, bool] = {}

    def matches(self, name: str) -> bool:
        """True when ``name`` ("schema.table") matches (or the filter is empty → ``default``)."""
        if self._regex is None or not name:
            return self.default
        hit = self._cache.get(name)
        if hit is None:
            if len(self._cache) > 10000:
                self._cache.clear()
            hit = self._cache[name] = self._regex.match(name.lower()) is not None
        return hit

    def __repr__(self) -> str:
        return f"RegexFilter({self.text!r})"


class TableFilter:
    """The include filter and the black filter together."""

    def __init__(self, include: str, black: str = "") -> None:
        self.include = RegexFilter(include, default=True)
        self.black = RegexFilter(black, default=False, key="canal.instance.filter.black.regex")

    def accepts(self, schema: str, table: str) -> bool:
        name = f"{schema}.{table}"
        return self.include.matches(name) and not self.black.matches(name)
