"""The parsed model of a mapping SQL: tables, join keys, sub-queries and output fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ColumnRef:
    """``alias.column`` as used in the outer query (lower-cased; for a sub-query: its output name)."""

    alias: str
    column: str

    def __str__(self) -> str:
        return f"{self.alias}.{self.column}"


@dataclass(frozen=True)
class JoinKey:
    """One ``this.column = other.column`` equality of a join's ON clause.

    ``column`` is the column of the *source table* behind this alias (for a sub-query: the inner
    table's column that the sub-query output ``output`` selects); ``other`` is the column of the
    alias it is joined to.
    """

    column: str
    other: ColumnRef
    output: str


@dataclass(frozen=True)
class SubQuery:
    """A derived table ``(SELECT ... FROM one_table ...) alias`` in a join."""

    #: output name -> inner-table column, for outputs that are plain columns (lower-cased).
    plain_outputs: dict[str, str]
    #: every output name of the sub-query (lower-cased).
    outputs: frozenset[str]
    #: inner-table columns referenced anywhere in the sub-query (select, where, group by).
    columns: frozenset[str]
    sql: str


@dataclass(frozen=True)
class TableRef:
    """One table of the mapping SQL: the main table or a LEFT-JOINed table / sub-query."""

    alias: str  # lower-cased alias (the table name when the SQL gives none)
    alias_sql: str  # the alias exactly as written (MySQL aliases are case-sensitive)
    database: str | None  # schema as written (unquoted), None when unqualified
    table: str  # unquoted source table name, case as written
    is_main: bool
    join_keys: tuple[JoinKey, ...] = ()
    subquery: SubQuery | None = None
    #: source-table columns this alias contributes anywhere in the SQL (lower-cased).
    columns: frozenset[str] = frozenset()

    def qualified(self, default_database: str | None) -> tuple[str, str]:
        """(database, table) lower-cased, with ``default_database`` for an unqualified table."""
        return ((self.database or default_database or "").lower(), self.table.lower())


@dataclass(frozen=True)
class FieldSpec:
    """One select-list item: the output (document) field and what feeds it."""

    name: str  # output name, case as written (alias, else the column name)
    sql: str  # the expression as MySQL text
    #: (alias, column) pairs referenced by the expression (outer-query level, lower-cased).
    columns: frozenset[ColumnRef]
    #: True when the expression is a plain column reference.
    simple: bool
    #: True when :func:`adapter.sqlmap.evaluate` can compute it from a row image in Python.
    evaluable: bool
    expr: Any = field(default=None, compare=False, repr=False)  # the sqlglot expression

    @property
    def aliases(self) -> frozenset[str]:
        return frozenset(c.alias for c in self.columns)

    @property
    def column(self) -> ColumnRef | None:
        """The referenced column when the field is a plain column."""
        return next(iter(self.columns)) if self.simple else None
