"""Parse a mapping SQL (MySQL dialect) into a :class:`MappingSql`, refusing what cannot sync correctly."""

from __future__ import annotations

from collections.abc import Iterable

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from adapter.errors import ConfigError
from adapter.sqlmap.dialect import DIALECT
from adapter.sqlmap.evaluate import can_evaluate
from adapter.sqlmap.mapping import MappingSql
from adapter.sqlmap.model import ColumnRef, FieldSpec, JoinKey, SubQuery, TableRef

# Outer-query clauses we understand; any other non-empty clause is refused by name.
_OUTER_OK = {"expressions", "from", "from_", "joins", "where", "group", "kind"}
_SUB_OK = {"expressions", "from", "from_", "where", "group", "kind"}


class _Refuse(Exception):
    pass


def parse_mapping_sql(
    sql: str, *, source: str | None = None, key: str = "sql", default_database: str | None = None
) -> MappingSql:
    """Parse and validate ``sql``; raise ``ConfigError(source=source, key=key)`` naming the construct.

    ``default_database`` is the schema of unqualified tables (the data source URL's database).
    """
    if not isinstance(sql, str) or not sql.strip():
        raise ConfigError("a non-empty SQL string is required", source=source, key=key)
    try:
        statements = [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except SqlglotError as e:
        raise ConfigError(f"cannot parse the SQL (MySQL dialect): {e}", source=source, key=key) from e
    try:
        if len(statements) != 1:
            raise _Refuse(f"exactly one SELECT statement is expected, found {len(statements)}")
        return _build(statements[0], sql, default_database)
    except _Refuse as e:
        raise ConfigError(f"unsupported mapping SQL: {e}", source=source, key=key) from None


def _clauses(select: exp.Select, allowed: set[str], where: str) -> None:
    for name, value in select.args.items():
        if name in allowed or value in (None, [], False):
            continue
        label = {"order": "ORDER BY", "limit": "LIMIT", "offset": "OFFSET", "having": "HAVING",
                 "distinct": "DISTINCT", "with": "WITH (CTE)", "locks": "FOR UPDATE/SHARE",
                 "qualify": "QUALIFY", "windows": "WINDOW"}.get(name, name.upper())
        raise _Refuse(f"{label} is not supported in {where}")


def _from_table(select: exp.Select) -> exp.Expr | None:
    node = select.args.get("from_") or select.args.get("from")
    return node.this if node is not None else None


def _build(stmt: exp.Expr, sql: str, default_database: str | None) -> MappingSql:
    if not isinstance(stmt, exp.Select):
        raise _Refuse(f"a plain SELECT is expected, got {stmt.key.upper()}")
    _clauses(stmt, _OUTER_OK, "the mapping SQL")
    main_node = _from_table(stmt)
    if not isinstance(main_node, exp.Table) or not main_node.name:
        raise _Refuse("the main (FROM) table must be a plain table, not a sub-query")
    main_alias_sql = main_node.alias_or_name
    refs: dict[str, TableRef] = {}
    main = TableRef(alias=main_alias_sql.lower(), alias_sql=main_alias_sql, database=main_node.db or None,
                    table=main_node.name, is_main=True)
    refs[main.alias] = main
    subqueries: dict[str, SubQuery] = {}
    pending_on: list[tuple[str, exp.Expr]] = []
    for join in stmt.args.get("joins") or []:
        ref, on = _join(join, refs, subqueries)
        refs[ref.alias] = ref
        pending_on.append((ref.alias, on))

    fields = _fields(stmt, refs, subqueries)
    used: dict[str, set[str]] = {alias: set() for alias in refs}
    for f in fields:
        for c in f.columns:
            used[c.alias].add(c.column)
    for alias, on in pending_on:
        keys, on_cols = _on(alias, on, refs, subqueries)
        for c in on_cols:
            used[c.alias].add(c.column)
        refs[alias] = _replace(refs[alias], join_keys=keys)
    where, group = stmt.args.get("where"), stmt.args.get("group")
    for clause, label in ((where, "WHERE"), (group, "GROUP BY")):
        if clause is None:
            continue
        for col in _columns(clause, refs, subqueries, label):
            if col.alias != main.alias:
                raise _Refuse(f"the outer {label} may only use main-table columns ({main.alias_sql}), not {col}")
            used[main.alias].add(col.column)
    if group is not None:
        for item in group.expressions:
            if not isinstance(item, exp.Column):
                raise _Refuse("the outer GROUP BY may only list plain main-table columns")
    elif any(f.expr.find(exp.AggFunc) is not None for f in fields):
        raise _Refuse("an aggregate function in the outer select needs GROUP BY on the main table's key")

    final: list[TableRef] = []
    for alias, ref in refs.items():
        sub = subqueries.get(alias)
        cols = set(sub.columns) if sub is not None else {c for c in used[alias]}
        if sub is None:
            cols |= {k.column for k in ref.join_keys}
        final.append(_replace(ref, columns=frozenset(cols)))
    return MappingSql(sql=sql, ast=stmt, tables=tuple(final), fields=tuple(fields),
                      default_database=default_database)


def _replace(ref: TableRef, **changes: object) -> TableRef:
    from dataclasses import replace

    return replace(ref, **changes)  # type: ignore[arg-type]


def _join(
    join: exp.Join, refs: dict[str, TableRef], subqueries: dict[str, SubQuery]
) -> tuple[TableRef, exp.Expr]:
    side = (join.side or "").upper()
    kind = (join.kind or "").upper()
    target = join.this
    label = target.sql(DIALECT)
    if side != "LEFT" or kind not in ("", "OUTER"):
        what = " ".join(p for p in (side, kind) if p) or "comma/plain"
        raise _Refuse(f"only LEFT JOIN is supported ({what} JOIN {label}); inner joins drop documents silently")
    if join.args.get("using"):
        raise _Refuse(f"JOIN ... USING is not supported ({label}); write ON a.x = b.y")
    on = join.args.get("on")
    if on is None:
        raise _Refuse(f"the join of {label} needs an ON clause")
    if isinstance(target, exp.Table):
        alias_sql = target.alias_or_name
        ref = TableRef(alias=alias_sql.lower(), alias_sql=alias_sql, database=target.db or None,
                       table=target.name, is_main=False)
    elif isinstance(target, exp.Subquery):
        alias_sql = target.alias
        if not alias_sql:
            raise _Refuse("a sub-query in a join needs an alias")
        inner_table, sub = _subquery(target.this, alias_sql)
        ref = TableRef(alias=alias_sql.lower(), alias_sql=alias_sql, database=inner_table.db or None,
                       table=inner_table.name, is_main=False, subquery=sub)
        subqueries[ref.alias] = sub
    else:
        raise _Refuse(f"cannot join {label}")
    if ref.alias in refs:
        raise _Refuse(f"table alias {alias_sql!r} is used twice")
    return ref, on


def _subquery(node: exp.Expr, alias: str) -> tuple[exp.Table, SubQuery]:
    if not isinstance(node, exp.Select):
        raise _Refuse(f"sub-query {alias} must be a plain SELECT")
    if node.args.get("joins"):
        raise _Refuse(f"sub-query {alias} must read a single table (no joins)")
    _clauses(node, _SUB_OK, f"sub-query {alias}")
    inner = _from_table(node)
    if not isinstance(inner, exp.Table) or not inner.name:
        raise _Refuse(f"sub-query {alias} must select FROM a plain table")
    inner_names = {inner.alias_or_name.lower(), inner.name.lower()}
    plain: dict[str, str] = {}
    outputs: set[str] = set()
    columns: set[str] = set()
    for node_ in node.walk():
        if isinstance(node_, (exp.Subquery, exp.Select)) and node_ is not node:
            raise _Refuse(f"nested sub-queries are not supported (in {alias})")
        if isinstance(node_, exp.Column):
            if node_.table and node_.table.lower() not in inner_names:
                raise _Refuse(f"sub-query {alias} references {node_.sql(DIALECT)} outside its table")
            columns.add(node_.name.lower())
    for item in node.expressions:
        if isinstance(item, exp.Star):
            raise _Refuse(f"SELECT * is not supported (sub-query {alias})")
        name = item.alias_or_name
        if not name:
            raise _Refuse(f"give the expression {item.sql(DIALECT)} in sub-query {alias} an alias")
        outputs.add(name.lower())
        inner_expr = item.this if isinstance(item, exp.Alias) else item
        if isinstance(inner_expr, exp.Column):
            plain[name.lower()] = inner_expr.name.lower()
    return inner, SubQuery(plain_outputs=plain, outputs=frozenset(outputs), columns=frozenset(columns),
                           sql=node.sql(DIALECT))


def _columns(node: exp.Expr, refs: dict[str, TableRef], subqueries: dict[str, SubQuery],
             where: str) -> Iterable[ColumnRef]:
    for nested in node.find_all(exp.Subquery, exp.Select):
        if nested is not node:
            raise _Refuse(f"sub-queries are not supported in {where} ({nested.sql(DIALECT)})")
    if node.find(exp.Window) is not None:
        raise _Refuse(f"window functions are not supported in {where}")
    for col in node.find_all(exp.Column):
        if isinstance(col.this, exp.Star):
            raise _Refuse(f"{col.sql(DIALECT)} is not supported in {where}; list the fields")
        owner = col.table.lower()
        if not owner:
            if len(refs) != 1:
                raise _Refuse(f"qualify column {col.name!r} in {where} with its table alias")
            owner = next(iter(refs))
        if owner not in refs:
            raise _Refuse(f"unknown table alias {col.table!r} in {where} ({col.sql(DIALECT)})")
        sub = subqueries.get(owner)
        if sub is not None and col.name.lower() not in sub.outputs:
            raise _Refuse(f"{col.sql(DIALECT)} in {where} is not an output of sub-query {owner}")
        yield ColumnRef(owner, col.name.lower())


def _fields(stmt: exp.Select, refs: dict[str, TableRef], subqueries: dict[str, SubQuery]) -> list[FieldSpec]:
    fields: list[FieldSpec] = []
    names: set[str] = set()
    for item in stmt.expressions:
        if isinstance(item, exp.Star) or (isinstance(item, exp.Column) and isinstance(item.this, exp.Star)):
            raise _Refuse("SELECT * is not supported; list the fields")
        expr = item.this if isinstance(item, exp.Alias) else item
        name = item.alias if isinstance(item, exp.Alias) else (item.name if isinstance(item, exp.Column) else "")
        if not name:
            raise _Refuse(f"give the expression {item.sql(DIALECT)} an alias (it names the field)")
        if name.lower() in names:
            raise _Refuse(f"field name {name!r} appears twice in the select list")
        names.add(name.lower())
        cols = frozenset(_columns(expr, refs, subqueries, f"field {name!r}"))
        simple = isinstance(expr, exp.Column)
        evaluable = can_evaluate(expr) and all(refs[c.alias].subquery is None for c in cols)
        fields.append(FieldSpec(name=name, sql=expr.sql(DIALECT), columns=cols, simple=simple,
                                evaluable=evaluable, expr=expr))
    return fields


def _conjuncts(node: exp.Expr) -> list[exp.Expr]:
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this)
    return [node]


def _on(alias: str, on: exp.Expr, refs: dict[str, TableRef],
        subqueries: dict[str, SubQuery]) -> tuple[tuple[JoinKey, ...], set[ColumnRef]]:
    """Join keys of ``alias`` (equalities with earlier aliases) and every column its ON uses."""
    order = list(refs)
    earlier = set(order[: order.index(alias)])
    keys: list[JoinKey] = []
    used: set[ColumnRef] = set()
    where = f"the ON clause of {refs[alias].alias_sql}"
    for term in _conjuncts(on):
        cols = list(_columns(term, refs, subqueries, where))
        used.update(cols)
        owners = {c.alias for c in cols}
        if owners <= {alias}:
            continue  # a filter on the joined table itself (e.g. b.type = 1): harmless
        if owners - {alias} - earlier:
            raise _Refuse(f"{where} references a table joined later: {term.sql(DIALECT)}")
        if (isinstance(term, exp.EQ) and isinstance(term.this, exp.Column)
                and isinstance(term.expression, exp.Column) and len(cols) == 2 and alias in owners):
            mine, other = (cols[0], cols[1]) if cols[0].alias == alias else (cols[1], cols[0])
            sub = subqueries.get(alias)
            column = mine.column
            if sub is not None:
                if mine.column not in sub.plain_outputs:
                    raise _Refuse(f"sub-query {alias} must select its join column {mine.column!r} as a plain column")
                column = sub.plain_outputs[mine.column]
            keys.append(JoinKey(column=column, other=other, output=mine.column))
            continue
        raise _Refuse(f"{where} may only combine column equalities with AND: {term.sql(DIALECT)}")
    if not keys:
        raise _Refuse(f"{where} needs at least one equality with an earlier table (b.x = a.y)")
    return tuple(keys), used
