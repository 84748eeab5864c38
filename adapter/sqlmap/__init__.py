"""Mapping SQL (canal's ES ``sql``, redis ``sql``): parse, inspect, evaluate, build targeted queries.

Public API (stable; see docs/sqlmap.md):

* ``parse_mapping_sql(sql, *, source=None, key="sql", default_database=None) -> MappingSql``
  raises ``ConfigError`` naming the file/key and the refused construct.
* ``MappingSql``: ``main``, ``tables``, ``fields``, ``field(name)``, ``table(alias)``,
  ``source_tables()``, ``tables_for(db, table)``, ``fields_of(alias)``, ``main_only(field)``,
  ``touches(ref, changed_columns)``, and query builders ``select(...)``, ``select_by_keys(...)``,
  ``affected_condition(...)``, ``select_affected(...)``, ``select_page(...)``, ``count_sql(...)``,
  ``evaluate_sql(...)``.
* ``TableRef``, ``FieldSpec``, ``JoinKey``, ``SubQuery``, ``ColumnRef``: the model.
* ``evaluate(expr, row, alias)``, ``lower_row(row)``, ``NotEvaluable``: Python evaluation.
* ``etl_condition(template, params)``, ``literal(value)``, ``result_key(row, width)``, ``KEY_PREFIX``.
* ``SourceDb(url)``: ``fetch(sql) -> list[dict]``, ``primary_key(db, table)``, ``database``, ``close()``.
"""

from adapter.sqlmap.db import SourceDb
from adapter.sqlmap.evaluate import NotEvaluable, evaluate, lower_row
from adapter.sqlmap.mapping import KEY_PREFIX, MappingSql, result_key
from adapter.sqlmap.model import ColumnRef, FieldSpec, JoinKey, SubQuery, TableRef
from adapter.sqlmap.parser import parse_mapping_sql
from adapter.sqlmap.queries import etl_condition, literal

__all__ = [
    "KEY_PREFIX",
    "ColumnRef",
    "FieldSpec",
    "JoinKey",
    "MappingSql",
    "NotEvaluable",
    "SourceDb",
    "SubQuery",
    "TableRef",
    "etl_condition",
    "evaluate",
    "literal",
    "lower_row",
    "parse_mapping_sql",
    "result_key",
]
