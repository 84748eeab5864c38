"""``MappingSql``: a parsed mapping SQL, its lookups, and the targeted queries built from it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from adapter.sqlmap.dialect import DIALECT
from adapter.sqlmap.model import ColumnRef, FieldSpec, TableRef
from adapter.sqlmap.queries import after_key, column, key_predicate, literal

#: Result columns ``__key0``, ``__key1``... carry the main table's key in back-query results.
KEY_PREFIX = "__key"


@dataclass(frozen=True, eq=False)
class MappingSql:
    """A validated mapping SQL. Build with :func:`adapter.sqlmap.parse_mapping_sql`.

    All query builders return complete MySQL text with values inlined as escaped literals (no
    bind parameters; run them with :meth:`adapter.sqlmap.SourceDb.fetch`). Each selects every
    field as ``AS `name``` plus hidden ``__key<i>`` columns holding the main-table key.
    """

    sql: str
    ast: exp.Select
    tables: tuple[TableRef, ...]
    fields: tuple[FieldSpec, ...]
    default_database: str | None = None

    # ------------------------------------------------------------------ lookups
    @property
    def main(self) -> TableRef:
        return self.tables[0]

    def table(self, alias: str) -> TableRef:
        for t in self.tables:
            if t.alias == alias.lower():
                return t
        raise KeyError(alias)

    def field(self, name: str) -> FieldSpec | None:
        """The field named ``name`` (exact match first, then case-insensitive)."""
        for f in self.fields:
            if f.name == name:
                return f
        lowered = name.lower()
        return next((f for f in self.fields if f.name.lower() == lowered), None)

    def source_tables(self) -> frozenset[tuple[str, str]]:
        """(database, table) of every table read (main, joins, sub-query tables), lower-cased."""
        return frozenset(t.qualified(self.default_database) for t in self.tables)

    def tables_for(self, database: str, table: str) -> tuple[TableRef, ...]:
        """The aliases reading source table ``database.table`` (a table may be joined more than once)."""
        want = (database.lower(), table.lower())
        return tuple(t for t in self.tables if t.qualified(self.default_database) == want)

    def fields_of(self, alias: str) -> tuple[FieldSpec, ...]:
        """Fields whose expression references ``alias``."""
        return tuple(f for f in self.fields if alias.lower() in f.aliases)

    def main_only(self, field: FieldSpec) -> bool:
        """Whether ``field`` depends on main-table columns only (computable from a main row image)."""
        return field.aliases <= {self.main.alias}

    def touches(self, ref: TableRef, changed: Iterable[str]) -> bool:
        """Whether a change of these source columns of ``ref``'s table can alter any document."""
        return any(c.lower() in ref.columns for c in changed)

    # ------------------------------------------------------------------ queries
    def select(
        self,
        condition: exp.Expr | None = None,
        *,
        key_columns: Sequence[str] = (),
        order_by_key: bool = False,
        limit: int | None = None,
    ) -> str:
        """The mapping SQL with ``condition`` ANDed to its WHERE and the key columns appended."""
        q = self.ast.copy()
        items: list[exp.Expr] = [exp.alias_(f.expr.copy(), f.name, quoted=True) for f in self.fields]
        keys = self.key_columns(key_columns)
        items += [exp.alias_(k.copy(), f"{KEY_PREFIX}{i}", quoted=True) for i, k in enumerate(keys)]
        q.set("expressions", items)
        if condition is not None:
            q = q.where(condition, copy=False)
            self._push_into_subqueries(q, condition)
        if order_by_key:
            q = q.order_by(*[k.copy() for k in keys], copy=False)
        if limit is not None:
            q = q.limit(limit, copy=False)
        return str(q.sql(DIALECT))

    def _push_into_subqueries(self, q: exp.Select, condition: exp.Expr) -> None:
        """``x.col IN (...)`` where a grouped sub-query joins on ``x.col``: repeat the IN on the
        sub-query's inner column, so the database aggregates only the rows needed instead of
        materialising the whole derived table for every back-query (same result: other inner
        rows could never join)."""
        if not isinstance(condition, exp.In) or not isinstance(condition.this, exp.Column):
            return
        target = ColumnRef(condition.this.table.lower(), condition.this.name.lower())
        for ref in self.tables:
            if ref.subquery is None or len(ref.join_keys) != 1 or ref.join_keys[0].other != target:
                continue
            for join in q.args.get("joins") or []:
                node = join.this
                if isinstance(node, exp.Subquery) and node.alias.lower() == ref.alias:
                    inner: exp.Select = node.this
                    inner_from = inner.args.get("from_") or inner.args.get("from")
                    if inner_from is None:
                        continue
                    inner_alias = inner_from.this.alias_or_name
                    pushed = exp.In(this=column(inner_alias, ref.join_keys[0].column),
                                    expressions=[e.copy() for e in condition.expressions])
                    node.set("this", inner.where(pushed, copy=False))

    def key_columns(self, names: Sequence[str]) -> list[exp.Column]:
        """Main-table key columns as qualified column expressions."""
        return [column(self.main.alias_sql, n) for n in names]

    def select_by_keys(self, key_columns: Sequence[str], keys: Sequence[Sequence[Any]]) -> str:
        """Documents of the given main-table keys: ``WHERE (main.k IN (...))``."""
        cols = self.key_columns(key_columns)
        return self.select(key_predicate(cols, keys), key_columns=key_columns)

    def affected_condition(self, ref: TableRef, rows: Sequence[Mapping[str, Any]]) -> exp.Expr | None:
        """Predicate selecting the documents that join to these row images of ``ref``'s table.

        It is pushed onto the *other* side of each join key (``b.id = a.role_id`` becomes
        ``a.role_id IN (<b.id values>)``), so it still finds the documents after the joined row
        was deleted and lets MySQL use the index of the referencing column. Rows are lower-cased
        images; pass both before- and after-images of updates. None when no row can match.
        """
        if ref.is_main or not ref.join_keys:
            return None
        cols = [column(self.table(k.other.alias).alias_sql, k.other.column) for k in ref.join_keys]
        keys = []
        for row in rows:
            if all(k.column in row for k in ref.join_keys):
                keys.append(tuple(row[k.column] for k in ref.join_keys))
        pred = key_predicate(cols, keys)
        return None if isinstance(pred, exp.Boolean) else pred

    def select_affected(
        self, ref: TableRef, rows: Sequence[Mapping[str, Any]], key_columns: Sequence[str]
    ) -> str | None:
        """Documents affected by a change of these rows of joined table ``ref`` (None: none can be)."""
        cond = self.affected_condition(ref, rows)
        return None if cond is None else self.select(cond, key_columns=key_columns)

    def select_page(
        self,
        key_columns: Sequence[str],
        after: Sequence[Any] | None,
        limit: int,
        condition: exp.Expr | None = None,
    ) -> str:
        """One keyset page for ETL: ``[WHERE cond AND key > after] ORDER BY key LIMIT n``."""
        cond = condition.copy() if condition is not None else None
        if after is not None:
            gt = after_key(self.key_columns(key_columns), after)
            cond = gt if cond is None else exp.and_(exp.Paren(this=cond), exp.Paren(this=gt))
        return self.select(cond, key_columns=key_columns, order_by_key=True, limit=limit)

    def count_sql(self, condition: exp.Expr | None = None) -> str:
        """``SELECT COUNT(*)`` of the rows the mapping SQL yields (with an optional extra condition)."""
        inner = self.select(condition)
        return f"SELECT COUNT(*) AS `n` FROM ({inner}) AS `_cnt`"

    def evaluate_sql(self, fields: Sequence[FieldSpec], rows: Sequence[Mapping[str, Any]]) -> str:
        """Let MySQL compute main-table-only ``fields`` over literal row images (e.g. before-images
        of deleted rows): ``SELECT <exprs> FROM (SELECT ... UNION ALL ...) AS <main alias>``.
        Result rows come back in input order with the fields under their names.
        """
        for f in fields:
            if not self.main_only(f):
                raise ValueError(f"field {f.name!r} does not depend on the main table only")
        names = sorted({c.column for f in fields for c in f.columns})
        branches = []
        for i, row in enumerate(rows):
            cells = [f"{i} AS `__n`"] + [f"{literal(row.get(n)).sql(DIALECT)} AS {_quote(n)}" for n in names]
            branches.append("SELECT " + ", ".join(cells))
        outs = [exp.alias_(f.expr.copy(), f.name, quoted=True).sql(DIALECT) for f in fields]
        derived = " UNION ALL ".join(branches)
        return f"SELECT {', '.join([*outs, '`__n`'])} FROM ({derived}) AS {_quote(self.main.alias_sql)} ORDER BY `__n`"


def result_key(row: Mapping[str, Any], width: int) -> tuple[Any, ...]:
    """The main-table key carried in a back-query result row (``__key0..``)."""
    return tuple(row[f"{KEY_PREFIX}{i}"] for i in range(width))


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"
