"""MySQL DDL → target-dialect DDL with sqlglot: portable types, idempotent forms, renamed tables.

MySQL-only pieces (unsigned types, ENUM/SET, AUTO_INCREMENT, ON UPDATE, COMMENT, charsets, table
options, AFTER/FIRST, inline KEYs) are mapped or dropped for PostgreSQL and SQLite. Statements get
``IF [NOT] EXISTS`` where the target supports it, and column adds/drops are skipped when the target
already has/lacks the column, so a replayed DDL event is harmless.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp

T = exp.DataType.Type
#: (schema, table) of a source table on the target, or None when the table is not mapped.
TargetOf = Callable[[str | None, str], tuple[str | None, str] | None]
#: Lower-cased column names of a target table, or None when it does not exist.
ColumnsOf = Callable[[str | None, str], set[str] | None]

_INTS = {T.TINYINT: T.SMALLINT, T.UTINYINT: T.SMALLINT, T.SMALLINT: T.SMALLINT, T.USMALLINT: T.INT,
         T.MEDIUMINT: T.INT, T.UMEDIUMINT: T.INT, T.INT: T.INT, T.UINT: T.BIGINT, T.BIGINT: T.BIGINT}
_BINARY = {T.BINARY, T.VARBINARY, T.BLOB, T.TINYBLOB, T.MEDIUMBLOB, T.LONGBLOB}
_DROP_CONSTRAINTS = (exp.AutoIncrementColumnConstraint, exp.OnUpdateColumnConstraint, exp.CommentColumnConstraint,
                     exp.CharacterSetColumnConstraint, exp.CollateColumnConstraint)
_RENAME = re.compile(r"^\s*rename\s+tables?\s+(.+?)\s*;?\s*$", re.I | re.S)


def glot_dialect(family: str) -> str:
    return {"postgresql": "postgres", "sqlite": "sqlite"}.get(family, "mysql")


def portable_type(dt: exp.DataType, family: str) -> exp.DataType:
    """A MySQL column type expressed in types the target family has (values convert losslessly)."""
    if family == "mysql":
        return dt
    t = dt.this
    params = list(dt.expressions)
    if t in _INTS:
        return exp.DataType(this=_INTS[t])
    if t == T.UBIGINT:  # 2^64-1 does not fit bigint
        return exp.DataType.build("DECIMAL(20, 0)") if family == "postgresql" else _udt("NUMERIC(20, 0)")
    if t in (T.DECIMAL, T.UDECIMAL):
        if family == "sqlite":
            args = ", ".join(p.sql() for p in params)
            return _udt(f"DECIMAL({args})" if args else "DECIMAL")
        return exp.DataType(this=T.DECIMAL, expressions=params)
    if t in (T.DOUBLE, T.UDOUBLE):
        return exp.DataType(this=T.DOUBLE)
    if t == T.FLOAT:
        return exp.DataType(this=T.FLOAT)
    if t == T.YEAR:
        return exp.DataType(this=T.SMALLINT)
    if t in (T.ENUM, T.SET):
        return exp.DataType(this=T.TEXT)
    if t in _BINARY:
        return exp.DataType(this=T.VARBINARY) if family == "postgresql" else _udt("BLOB")
    if t == T.BIT and family == "sqlite":
        return exp.DataType(this=T.BIGINT)
    if t in (T.DATETIME, T.TIMESTAMP, T.TIMESTAMPTZ) and family == "sqlite":
        return _udt("DATETIME")
    if t == T.DATETIME:
        return exp.DataType(this=T.TIMESTAMP, expressions=params)
    if t in (T.TINYTEXT, T.MEDIUMTEXT, T.LONGTEXT):
        return exp.DataType(this=T.TEXT)
    return dt


def _udt(text: str) -> exp.DataType:
    return exp.DataType(this=T.USERDEFINED, kind=text)


def column_type_sql(mysql_type: str, family: str) -> str:
    """``bigint(20) unsigned`` → the target's type text (for adding a column seen only in rows)."""
    return portable_type(exp.DataType.build(mysql_type, dialect="mysql"), family).sql(glot_dialect(family))


def _clean_column(col: exp.ColumnDef, family: str) -> None:
    if family == "mysql":
        return
    col.set("position", None)
    if isinstance(col.args.get("kind"), exp.DataType):
        col.set("kind", portable_type(col.args["kind"], family))
    kept = []
    for c in col.args.get("constraints") or []:
        kind = c.args.get("kind")
        if isinstance(kind, _DROP_CONSTRAINTS):
            continue
        if isinstance(kind, exp.DefaultColumnConstraint) and str(kind.this.name).startswith("0000-00-00"):
            continue  # zero-date defaults exist only in MySQL
        kept.append(c)
    col.set("constraints", kept)


@dataclass
class DdlPlan:
    """Statements to run on the target, the source tables whose bindings go stale, and notes."""

    statements: list[str] = field(default_factory=list)
    tables: set[str] = field(default_factory=set)
    skipped: str | None = None


def _retarget(tree: exp.Expression, source_db: str, target_of: TargetOf) -> set[str]:
    """Point every table at its target (schema, name); return the source table names touched."""
    touched: set[str] = set()
    for tbl in tree.find_all(exp.Table):
        db = tbl.db or source_db
        if not tbl.name:
            continue
        touched.add(tbl.name.lower())
        mapped = target_of(db, tbl.name)
        if mapped is None:
            continue
        schema, name = mapped
        tbl.set("this", exp.to_identifier(name))
        tbl.set("db", exp.to_identifier(schema) if schema else None)
    return touched


def translate_ddl(sql: str, *, source_db: str, family: str, target_of: TargetOf, columns_of: ColumnsOf,
              only_add_columns: bool = False) -> DdlPlan:
    """Plan the target statements for one source DDL. ``only_add_columns`` keeps just ADD COLUMN actions."""
    dialect = glot_dialect(family)
    m = _RENAME.match(sql)
    if m and not only_add_columns:
        sql = ";".join(f"ALTER TABLE {a.strip()} RENAME TO {b.strip()}"
                       for a, b in (p.split(" to ", 1) if " to " in p else p.split(" TO ", 1)
                                    for p in m[1].split(",")))
    try:
        trees: list[Any] = [t for t in sqlglot.parse(sql, read="mysql") if t is not None]
    except sqlglot.errors.ParseError as e:
        return DdlPlan(skipped=f"not parsed by sqlglot: {str(e).splitlines()[0]}")
    plan = DdlPlan()
    for tree in trees:
        actions = tree.args.get("actions") if isinstance(tree, exp.Alter) else None
        if isinstance(tree, exp.Alter) and actions and isinstance(actions[0], exp.AlterRename):
            _rename(tree, source_db, target_of, dialect, plan)
            continue
        if isinstance(tree, exp.Command) or (only_add_columns and not isinstance(tree, exp.Alter)):
            plan.skipped = plan.skipped or f"unsupported DDL for this target: {sql[:80]!r}"
            continue
        kind = str(tree.args.get("kind") or "").upper()
        if kind in ("DATABASE", "SCHEMA"):
            plan.skipped = "database-level DDL is not mirrored"
            continue
        plan.tables |= _retarget(tree, source_db, target_of)
        if isinstance(tree, exp.Alter):
            _alter(tree, family, dialect, columns_of, plan, only_add_columns)
            continue
        if isinstance(tree, exp.Create):
            tree.set("exists", True)
            if kind == "TABLE":
                _create_table(tree, family)
        elif isinstance(tree, exp.Drop):
            tree.set("exists", True)
        plan.statements.append(tree.sql(dialect, identify=True))
    return plan


def _rename(tree: exp.Alter, source_db: str, target_of: TargetOf, dialect: str, plan: DdlPlan) -> None:
    old, new = tree.this, tree.args["actions"][0].this
    old_target = target_of(old.db or source_db, old.name)
    new_target = target_of(new.db or old.db or source_db, new.name)
    plan.tables |= {old.name.lower(), new.name.lower()}
    if old_target is None or new_target is None:
        plan.skipped = f"rename of unmapped table {old.name}"
        return
    db = exp.to_identifier(old_target[0], quoted=True) if old_target[0] else None
    tree.set("this", exp.Table(this=exp.to_identifier(old_target[1], quoted=True), db=db))
    # the new name stays in the same schema
    tree.args["actions"][0].set("this", exp.Table(this=exp.to_identifier(new_target[1], quoted=True)))
    plan.statements.append(tree.sql(dialect, identify=True))


def _create_table(tree: exp.Create, family: str) -> None:
    if family == "mysql":
        return
    tree.set("properties", None)
    schema = tree.this
    kept: list[exp.Expression] = []
    for e in schema.expressions:
        if isinstance(e, exp.ColumnDef):
            _clean_column(e, family)
        elif isinstance(e, exp.IndexColumnConstraint):
            continue  # plain KEY/INDEX: an optimisation of the source, not a constraint
        elif isinstance(e, exp.UniqueColumnConstraint) and isinstance(e.this, exp.Schema):
            e = exp.UniqueColumnConstraint(this=exp.Schema(expressions=e.this.expressions))
        kept.append(e)
    schema.set("expressions", kept)


def _alter(tree: exp.Alter, family: str, dialect: str, columns_of: ColumnsOf, plan: DdlPlan, only_add: bool) -> None:
    table = tree.this
    existing = columns_of(table.db or None, table.name)
    if existing is None:
        plan.skipped = f"target table {table.name} does not exist"
        return
    if not tree.args.get("actions"):
        if family == "mysql" and not only_add:
            plan.statements.append(tree.sql(dialect, identify=True))
        else:
            plan.skipped = "table options are not mirrored to non-MySQL targets"
        return
    for action in tree.args.get("actions") or []:
        one = tree.copy()
        if isinstance(action, exp.ColumnDef):
            if action.name.lower() in existing:
                continue  # replay: already added
            _clean_column(action, family)
            one.set("actions", [action])
        elif only_add:
            continue
        elif isinstance(action, exp.Drop) and str(action.args.get("kind") or "").upper() == "COLUMN":
            dropped = [t.name.lower() for t in action.args.get("tables") or []]
            if not any(d in existing for d in dropped):
                continue  # replay: already dropped
            one.set("actions", [action])
        elif isinstance(action, exp.ModifyColumn) and family != "mysql":
            _modify(one, action, family, dialect, existing, plan)
            continue
        elif isinstance(action, exp.AddConstraint) and family != "mysql":
            plan.skipped = "index changes are not mirrored to non-MySQL targets"
            continue
        elif family == "sqlite":
            plan.skipped = f"SQLite cannot run {action.sql('mysql')!r}"
            continue
        else:
            one.set("actions", [action])
        plan.statements.append(one.sql(dialect, identify=True))


def _modify(one: exp.Alter, action: exp.ModifyColumn, family: str, dialect: str, existing: set[str],
            plan: DdlPlan) -> None:
    if family == "sqlite":
        plan.skipped = "SQLite cannot change a column's type"
        return
    col: exp.ColumnDef = action.this
    name = col.name
    old = action.args.get("rename_from")
    if old is not None and old.name.lower() in existing and old.name != name:
        ren = one.copy()
        ren.set("actions", [exp.RenameColumn(this=exp.to_identifier(old.name), to=exp.to_identifier(name))])
        plan.statements.append(ren.sql(dialect, identify=True))
    _clean_column(col, family)
    kind = col.args.get("kind")
    if isinstance(kind, exp.DataType):
        typed = one.copy()
        typed.set("actions", [exp.AlterColumn(this=exp.to_identifier(name), dtype=kind)])
        plan.statements.append(typed.sql(dialect, identify=True))
    constraints = col.args.get("constraints") or []
    not_null = any(isinstance(c.args.get("kind"), exp.NotNullColumnConstraint) for c in constraints)
    nn = one.copy()
    # sqlglot renders allow_null+drop as DROP NOT NULL, allow_null alone as SET NOT NULL
    nn.set("actions", [exp.AlterColumn(this=exp.to_identifier(name), allow_null=True, drop=not not_null)])
    plan.statements.append(nn.sql(dialect, identify=True))


def add_column(schema: str | None, table: str, column: str, mysql_type: str, family: str) -> str:
    """``ALTER TABLE ... ADD COLUMN`` for a column seen in rows but missing on the target (nullable)."""
    kind = portable_type(exp.DataType.build(mysql_type, dialect="mysql"), family)
    target = exp.Table(this=exp.to_identifier(table, quoted=True),
                       db=exp.to_identifier(schema, quoted=True) if schema else None)
    alter = exp.Alter(this=target, kind="TABLE",
                      actions=[exp.ColumnDef(this=exp.to_identifier(column, quoted=True), kind=kind)])
    return alter.sql(glot_dialect(family), identify=True)
