"""The ``dbMapping`` model of one rdb mapping file: parsing and validation that needs no database.

canal's fields (``RDB/config/MappingConfig.java``) keep their names and defaults. Beyond canal:
``ddl`` (``ignore`` | ``addColumns``; alias ``syncAddColumn: true``), ``zeroDate`` (``null`` | ``error``
| ``keep``), and ``targetDb`` is honoured for ``mirrorDb``. Unknown keys are errors, so a typo
cannot silently drop columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adapter.errors import ConfigError
from adapter.writers.base import MappingHeader

DDL_IGNORE = "ignore"
DDL_ADD_COLUMNS = "addColumns"
ZERO_NULL, ZERO_ERROR, ZERO_KEEP = "null", "error", "keep"

_HEADER_KEYS = frozenset({"dataSourceKey", "destination", "groupId", "outerAdapterKey", "concurrent", "dbMapping"})
_BODY_KEYS = frozenset({"database", "table", "targetDb", "targetTable", "targetPk", "mapAll", "targetColumns",
                        "caseInsensitive", "etlCondition", "commitBatch", "readBatch", "mirrorDb", "ddl",
                        "syncAddColumn", "zeroDate"})


@dataclass(frozen=True)
class RdbMapping:
    """One validated rdb mapping file. ``target_pk``/``target_columns`` map target column → source column."""

    header: MappingHeader
    database: str
    table: str
    target_db: str | None = None
    target_table: str | None = None
    target_pk: Mapping[str, str] = field(default_factory=dict)
    map_all: bool = False
    target_columns: Mapping[str, str] = field(default_factory=dict)
    case_insensitive: bool = False
    etl_condition: str | None = None
    commit_batch: int = 5000
    mirror_db: bool = False
    concurrent: bool = False
    ddl: str = DDL_IGNORE
    zero_date: str | None = None  # None: "keep" on MySQL-family targets, "null" elsewhere

    def source_tables(self) -> frozenset[tuple[str, str]]:
        """(database, table) pairs read; a mirrorDb mapping reads every table: ``(database, "*")``."""
        return frozenset({(self.database.lower(), "*" if self.mirror_db else self.table.lower())})

    @property
    def task(self) -> str:
        return self.header.task

    @property
    def add_columns(self) -> bool:
        return self.ddl == DDL_ADD_COLUMNS

    def target_name(self, table: str | None = None) -> tuple[str | None, str]:
        """(schema, table) of the target; ``table`` is the source table for mirrorDb mappings."""
        if self.mirror_db:
            return (self.target_db or self.database), (table or "")
        return self.target_db, self.target_table or ""

    def display_target(self) -> str:
        schema, name = self.target_name()
        return f"{schema}.{name}" if schema else name


def _err(header: MappingHeader, key: str, msg: str) -> ConfigError:
    return ConfigError(msg, source=header.file, key=key)


def _str(header: MappingHeader, body: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _err(header, f"dbMapping.{key}", "is required")
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise _err(header, f"dbMapping.{key}", f"expected a string, got {type(value).__name__}")
    return str(value).strip()


def _bool(header: MappingHeader, raw: Mapping[str, Any], key: str, path: str) -> bool:
    value = raw.get(key, False)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _err(header, path, f"expected true or false, got {value!r}")


def _column_map(header: MappingHeader, body: Mapping[str, Any], key: str) -> dict[str, str]:
    """``{target: source}``; an empty/null source means "the same name" (canal's convention)."""
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _err(header, f"dbMapping.{key}", f"expected a map of target column: source column, got {value!r}")
    out: dict[str, str] = {}
    for tgt, src in value.items():
        if not isinstance(tgt, str) or not tgt.strip():
            raise _err(header, f"dbMapping.{key}", f"expected column names as keys, got {tgt!r}")
        if isinstance(src, bool):  # YAML 1.1 reads no/yes/on/off as booleans
            raise _err(header, f"dbMapping.{key}.{tgt}",
                       f"expected a column name, got {src!r} (YAML reads no/yes/on/off as booleans: quote it)")
        if src is not None and not isinstance(src, (str, int)):
            raise _err(header, f"dbMapping.{key}.{tgt}", f"expected a source column name or nothing, got {src!r}")
        out[tgt.strip()] = str(src).strip() if src not in (None, "") else tgt.strip()
    return out


def split_dotted(name: str) -> tuple[str | None, str]:
    """canal's ``targetTable: db.table`` form → (db, table). Backticks or quotes keep a dot literal."""
    if len(name) > 1 and name[0] == name[-1] and name[0] in "`\"":
        return None, name[1:-1]
    db, dot, table = name.partition(".")
    if dot and db and table and "." not in table:
        return db.strip("`\""), table.strip("`\"")
    return None, name


def parse_rdb_mapping(header: MappingHeader, raw: Mapping[str, Any]) -> RdbMapping:
    """Validate a whole mapping document (header keys + ``dbMapping``)."""
    if "dbMapping" not in raw:
        raise _err(header, "dbMapping", "is required (an rdb mapping file needs a dbMapping section)")
    unknown = sorted(str(k) for k in raw if k not in _HEADER_KEYS)
    if unknown:
        raise _err(header, unknown[0], f"unknown key; expected one of {sorted(_HEADER_KEYS)}")
    body = raw["dbMapping"]
    if not isinstance(body, Mapping):
        raise _err(header, "dbMapping", f"expected a map, got {type(body).__name__}")
    unknown = sorted(str(k) for k in body if k not in _BODY_KEYS)
    if unknown:
        raise _err(header, f"dbMapping.{unknown[0]}", f"unknown key; expected one of {sorted(_BODY_KEYS)}")
    mirror = _bool(header, body, "mirrorDb", "dbMapping.mirrorDb")
    database = _str(header, body, "database", required=True) or ""
    table = _str(header, body, "table", required=not mirror) or ""
    target_db = _str(header, body, "targetDb")
    target_table = _str(header, body, "targetTable", required=not mirror)
    if target_table and not target_db:
        target_db, target_table = split_dotted(target_table)  # fixes canal #2941: no `db.table` identifier
    elif target_table and len(target_table) > 1 and target_table[0] == target_table[-1] and target_table[0] in "`\"":
        target_table = target_table[1:-1]
    map_all = _bool(header, body, "mapAll", "dbMapping.mapAll")
    columns = _column_map(header, body, "targetColumns")
    if not mirror and not map_all and not columns:
        raise _err(header, "dbMapping.targetColumns",
                   "is required unless mapAll: true (which target columns to write?)")
    commit_batch = body.get("commitBatch", 5000)
    if commit_batch is None:
        commit_batch = 5000
    if not isinstance(commit_batch, int) or isinstance(commit_batch, bool) or commit_batch < 1:
        raise _err(header, "dbMapping.commitBatch", f"expected a positive integer, got {commit_batch!r}")
    ddl = str(body.get("ddl") or DDL_IGNORE)
    if ddl not in (DDL_IGNORE, DDL_ADD_COLUMNS):
        raise _err(header, "dbMapping.ddl", f"expected {DDL_IGNORE} or {DDL_ADD_COLUMNS}, got {ddl!r}")
    if _bool(header, body, "syncAddColumn", "dbMapping.syncAddColumn"):
        ddl = DDL_ADD_COLUMNS
    if ddl == DDL_ADD_COLUMNS and not (map_all or mirror):
        raise _err(header, "dbMapping.ddl", "addColumns needs mapAll: true (new columns have no targetColumns entry)")
    zero = body.get("zeroDate")
    if "zeroDate" in body and zero is None:
        zero = ZERO_NULL  # YAML reads `zeroDate: null` as None: an explicit choice, not "unset"
    if zero is not None and zero not in (ZERO_NULL, ZERO_ERROR, ZERO_KEEP):
        raise _err(header, "dbMapping.zeroDate", f"expected null, error or keep, got {zero!r}")
    cond = _str(header, body, "etlCondition")
    return RdbMapping(
        header=header, database=database, table=table, target_db=target_db, target_table=target_table,
        target_pk=_column_map(header, body, "targetPk"), map_all=map_all or mirror, target_columns=columns,
        case_insensitive=_bool(header, body, "caseInsensitive", "dbMapping.caseInsensitive"),
        etl_condition=cond, commit_batch=commit_batch, mirror_db=mirror,
        concurrent=_bool(header, raw, "concurrent", "concurrent"), ddl=ddl, zero_date=zero,
    )
