"""SQL building blocks: Python values as MySQL literals, key predicates, ETL conditions."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from adapter.errors import ConfigError
from adapter.sqlmap.dialect import DIALECT


def literal(value: Any) -> exp.Expr:
    """``value`` as a MySQL literal expression (strings escaped by sqlglot's MySQL generator)."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Literal.number(int(value))
    if isinstance(value, int):
        return exp.Literal.number(value)
    if isinstance(value, Decimal):
        return exp.Literal.number(format(value, "f"))
    if isinstance(value, float):
        return exp.Literal.number(repr(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return exp.HexString(this=bytes(value).hex())
    if isinstance(value, dt.datetime):
        return exp.Literal.string(value.isoformat(sep=" "))
    if isinstance(value, dt.date):
        return exp.Literal.string(value.isoformat())
    if isinstance(value, dt.timedelta):
        total = int(value.total_seconds())
        sign = "-" if total < 0 else ""
        h, rem = divmod(abs(total), 3600)
        return exp.Literal.string(f"{sign}{h:02d}:{rem // 60:02d}:{rem % 60:02d}")
    return exp.Literal.string(str(value))


def column(alias_sql: str, name: str) -> exp.Column:
    """``alias.`name``` (the column quoted, so any name works; the alias as written)."""
    return exp.column(exp.to_identifier(name, quoted=True), table=exp.to_identifier(alias_sql))


def key_predicate(columns: Sequence[exp.Column], keys: Sequence[Sequence[Any]]) -> exp.Expr:
    """``col IN (...)`` for one column, else ``(c1 = v AND c2 = w) OR ...``; keys with NULLs are dropped."""
    uniq: list[tuple[Any, ...]] = []
    seen: set[tuple[Any, ...]] = set()
    for key in keys:
        t = tuple(key)
        if any(v is None for v in t):
            continue  # NULL never equals anything in a join or key lookup
        marker = tuple(_hashable(v) for v in t)
        if marker not in seen:
            seen.add(marker)
            uniq.append(t)
    if not uniq:
        return exp.false()
    if len(columns) == 1:
        return exp.In(this=columns[0].copy(), expressions=[literal(k[0]) for k in uniq])
    terms = [exp.and_(*(exp.EQ(this=c.copy(), expression=literal(v)) for c, v in zip(columns, k, strict=True)))
             for k in uniq]
    return exp.or_(*terms)


def after_key(columns: Sequence[exp.Column], after: Sequence[Any]) -> exp.Expr:
    """Keyset condition ``key > after`` spelled out so MySQL can use the index on the key."""
    ors: list[exp.Expr] = []
    for i in range(len(columns)):
        eqs: list[exp.Expr] = [exp.EQ(this=columns[j].copy(), expression=literal(after[j])) for j in range(i)]
        eqs.append(exp.GT(this=columns[i].copy(), expression=literal(after[i])))
        ors.append(exp.and_(*eqs))
    return exp.or_(*ors)


def etl_condition(template: str | None, params: Sequence[str], *, source: str | None = None) -> exp.Expr | None:
    """canal's ``etlCondition`` (``where a.c_time >= {}``) with ``{}`` bound to ``params``, as a condition.

    canal applies the condition only when params are given; so do we. Values are inlined as
    escaped string literals (MySQL compares them with the column's type).
    """
    if not template or not params:
        return None
    text = template.strip()
    text = re.sub(r"^\s*where\s+", "", text, flags=re.IGNORECASE)
    parts = text.split("{}")
    if len(parts) - 1 != len(params):
        raise ConfigError(f"etlCondition has {len(parts) - 1} '{{}}' placeholders but {len(params)} params were given",
                          source=source, key="etlCondition")
    out = parts[0]
    for value, rest in zip(params, parts[1:], strict=True):
        out += literal(value).sql(DIALECT) + rest
    try:
        return sqlglot.condition(out, dialect=DIALECT)
    except SqlglotError as e:
        raise ConfigError(f"cannot parse etlCondition: {e}", source=source, key="etlCondition") from e


def row_key(row: Mapping[str, Any], columns: Sequence[str]) -> tuple[Any, ...] | None:
    """The key tuple of a (lower-cased) row image, or None when a key column is missing."""
    try:
        return tuple(row[c] for c in columns)
    except KeyError:
        return None


def _hashable(v: Any) -> Any:
    return bytes(v) if isinstance(v, (bytearray, memoryview)) else v
