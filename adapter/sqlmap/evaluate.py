"""Python evaluation of simple select-list expressions on one row image (MySQL semantics).

Only a small, exactly-reproducible subset is evaluated here: plain columns, literals, CONCAT,
CONCAT_WS, IFNULL/COALESCE, UPPER/LOWER and integer + - *. Anything else (or a value whose
MySQL text form Python cannot reproduce exactly, such as a float or datetime inside CONCAT)
raises :class:`NotEvaluable`, and the caller asks the database instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlglot import exp

from adapter.sqlmap.dialect import DIALECT


class NotEvaluable(Exception):
    """The expression (or one of its values) cannot be computed exactly in Python."""


_NODES: tuple[type[exp.Expr], ...] = (
    exp.Column,
    exp.Literal,
    exp.Null,
    exp.Boolean,
    exp.Paren,
    exp.Concat,
    exp.ConcatWs,
    exp.Coalesce,
    exp.Upper,
    exp.Lower,
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Neg,
    exp.Identifier,
)


def can_evaluate(expr: exp.Expr) -> bool:
    """Whether ``expr`` only uses node types this module evaluates (values may still refuse)."""
    return all(isinstance(node, _NODES) for node in expr.walk())


def lower_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row image keyed by lower-cased column name (MySQL column names are case-insensitive)."""
    return {k.lower(): v for k, v in row.items()}


def evaluate(expr: exp.Expr, row: Mapping[str, Any], alias: str) -> Any:
    """Value of ``expr`` for ``row`` (keys lower-cased, see :func:`lower_row`).

    ``alias`` is the lower-cased alias the row belongs to; a column of another alias, or a
    column missing from the row, raises :class:`NotEvaluable`.
    """
    if isinstance(expr, exp.Column):
        owner = expr.table.lower()
        name = expr.name.lower()
        if owner and owner != alias:
            raise NotEvaluable(f"column {expr.sql(DIALECT)} belongs to another table")
        if name not in row:
            raise NotEvaluable(f"column {name} is not in the row image")
        return row[name]
    if isinstance(expr, exp.Paren):
        return evaluate(expr.this, row, alias)
    if isinstance(expr, exp.Null):
        return None
    if isinstance(expr, exp.Boolean):
        return 1 if expr.this else 0
    if isinstance(expr, exp.Literal):
        return _literal(expr)
    if isinstance(expr, exp.ConcatWs):
        args = [evaluate(a, row, alias) for a in expr.expressions]
        sep, rest = args[0], args[1:]
        if sep is None:
            return None
        return _text(sep).join(_text(v) for v in rest if v is not None)
    if isinstance(expr, exp.Concat):
        values = [evaluate(a, row, alias) for a in expr.expressions]
        if any(v is None for v in values):
            return None
        return "".join(_text(v) for v in values)
    if isinstance(expr, exp.Coalesce):
        for arg in [expr.this, *expr.expressions]:
            value = evaluate(arg, row, alias)
            if value is not None:
                return value
        return None
    if isinstance(expr, (exp.Upper, exp.Lower)):
        value = evaluate(expr.this, row, alias)
        if value is None:
            return None
        text = _text(value)
        return text.upper() if isinstance(expr, exp.Upper) else text.lower()
    if isinstance(expr, exp.Neg):
        value = evaluate(expr.this, row, alias)
        return None if value is None else -_integer(value)
    if isinstance(expr, (exp.Add, exp.Sub, exp.Mul)):
        left = evaluate(expr.this, row, alias)
        right = evaluate(expr.expression, row, alias)
        if left is None or right is None:
            return None
        a, b = _integer(left), _integer(right)
        if isinstance(expr, exp.Add):
            return a + b
        return a - b if isinstance(expr, exp.Sub) else a * b
    raise NotEvaluable(f"{type(expr).__name__} is not evaluated in Python")


def _literal(lit: exp.Literal) -> Any:
    if lit.is_string:
        return lit.this
    text = str(lit.this)
    try:
        return int(text)
    except ValueError:
        return Decimal(text)


def _integer(value: Any) -> int:
    # Only exact integers: MySQL's decimal/float arithmetic rules are not reproduced here.
    if isinstance(value, bool) or not isinstance(value, int):
        raise NotEvaluable(f"arithmetic on {type(value).__name__} is left to the database")
    return value


def _text(value: Any) -> str:
    """MySQL's string form of a value inside CONCAT, where Python can reproduce it exactly."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    # float/datetime/bytes: MySQL's rendering depends on column metadata (precision, fsp, charset).
    raise NotEvaluable(f"{type(value).__name__} inside a string function is left to the database")
