"""Redis mapping files (``<conf>/redis/*.yml``, section ``redisMapping``) validated into ``RedisMapping``.

The mapping SQL is parsed by :mod:`adapter.sqlmap`; its select-list fields are the value's fields,
and the key template (``user:{id}``) names fields of the select list. Everything that would make
the writer produce wrong keys is refused at load with ``ConfigError(source=file, key=...)``.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlglot import exp

from adapter.errors import ConfigError
from adapter.sqlmap import FieldSpec, MappingSql, TableRef, parse_mapping_sql
from adapter.writers.base import MappingHeader, WriterContext
from adapter.writers.redis import values as V
from adapter.writers.redis.commands import HASH, JSON, STRING, VALUE_FORMS

SECTION = "redisMapping"
_KNOWN = ("sql", "key", "prefix", "type", "value", "skips", "ttl", "binary", "etlCondition", "commitBatch")
DEFAULT_COMMIT_BATCH = 1000


@dataclass(frozen=True)
class KeyTemplate:
    """``literal{field}literal...`` (Python format syntax; ``{{``/``}}`` for literal braces)."""

    text: str
    literals: tuple[str, ...]  # len(fields) + 1 pieces around the placeholders
    fields: tuple[str, ...]  # placeholder field names in order (may repeat)

    def render(self, prefix: str, parts: Mapping[str, Any]) -> str | None:
        """The key for these placeholder values, or None when one of them is NULL."""
        out = [prefix, self.literals[0]]
        for name, lit in zip(self.fields, self.literals[1:], strict=True):
            v = parts.get(name)
            if v is None:
                return None
            out += [V.key_part(v), lit]
        return "".join(out)

    def pattern(self, prefix: str) -> str:
        """SCAN MATCH glob of every key this template can produce."""
        esc = [_glob_escape(x) for x in (prefix + self.literals[0], *self.literals[1:])]
        return "*".join(esc)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def parse_key_template(text: str, src: str, key: str = f"{SECTION}.key") -> KeyTemplate:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        raise ConfigError(f"bad key template {text!r}: {e} (use {{field}}, and {{{{ }}}} for literal braces)",
                          source=src, key=key) from None
    literals, fields = [""], []
    for lit, name, spec, conv in parsed:
        literals[-1] += lit
        if name is None:
            continue
        if not name or spec or conv:
            raise ConfigError(f"bad placeholder in key template {text!r}: use {{field}} with a select-list field "
                              "name, no format spec or conversion", source=src, key=key)
        fields.append(name)
        literals.append("")
    if not fields:
        raise ConfigError(f"key template {text!r} has no {{field}} placeholder: every row would write the same key",
                          source=src, key=key)
    return KeyTemplate(text, tuple(literals), tuple(fields))


@dataclass(frozen=True, eq=False)
class RedisMapping:
    """One parsed redis mapping file (satisfies ``MappingSpec``)."""

    header: MappingHeader
    sql: MappingSql
    key: KeyTemplate
    prefix: str
    value_form: str  # hash | json | string
    value_fields: tuple[str, ...]  # select-list names stored in the value, in select order
    ttl: int  # seconds; 0 = no expiry
    binary: str  # base64 | raw
    etl_condition: str | None
    commit_batch: int
    #: key placeholder name → its FieldSpec (main-table only)
    key_fields: Mapping[str, FieldSpec]
    #: the SQL has an outer WHERE or GROUP BY (a row's existence is not decided by its image alone)
    filtered: bool
    #: single table, no filter, every field Python-evaluable: events never need a back-query
    direct: bool

    def source_tables(self) -> frozenset[tuple[str, str]]:
        return self.sql.source_tables()

    @property
    def name(self) -> str:
        return self.header.task

    @property
    def main(self) -> TableRef:
        return self.sql.main

    def render_key(self, parts: Mapping[str, Any]) -> str | None:
        return self.key.render(self.prefix, parts)

    def key_pattern(self) -> str:
        return self.key.pattern(self.prefix)

    @cached_property
    def plain_columns(self) -> dict[str, str]:
        """Field name → main-table column, for fields that are a plain main-table column (fast path)."""
        main = self.sql.main.alias
        return {f.name: f.column.column for f in self.sql.fields if f.column is not None and f.column.alias == main}

    @cached_property
    def fields_by_main_column(self) -> dict[str, frozenset[str]]:
        """Main-table column → names of the fields whose expression reads it."""
        main = self.sql.main.alias
        out: dict[str, set[str]] = {}
        for f in self.sql.fields:
            for c in f.columns:
                if c.alias == main:
                    out.setdefault(c.column, set()).add(f.name)
        return {k: frozenset(v) for k, v in out.items()}


def _text(body: Mapping[str, Any], name: str, src: str, *, required: bool = False) -> str | None:
    v = body.get(name)
    if v is None or (isinstance(v, str) and not v.strip()):
        if required:
            raise ConfigError("is required", source=src, key=f"{SECTION}.{name}")
        return None
    if not isinstance(v, (str, int)) or isinstance(v, bool):
        raise ConfigError(f"expected a string, got {type(v).__name__}", source=src, key=f"{SECTION}.{name}")
    return str(v)


def _int(body: Mapping[str, Any], name: str, src: str, default: int, lo: int) -> int:
    v = body.get(name, default)
    if v is None:
        return default
    try:
        n = int(v)
        if isinstance(v, bool) or (isinstance(v, float) and v != n) or (isinstance(v, str) and not v.strip().isdigit()):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"expected an integer, got {v!r}", source=src, key=f"{SECTION}.{name}") from None
    if n < lo:
        raise ConfigError(f"must be >= {lo}, got {n}", source=src, key=f"{SECTION}.{name}")
    return n


def parse_redis_mapping(header: MappingHeader, raw: Mapping[str, Any], context: WriterContext) -> RedisMapping:
    """Validate a mapping file body (``{"redisMapping": {...}}``); ConfigError names the file and key."""
    src = header.file
    body = raw.get(SECTION)
    if not isinstance(body, Mapping):
        others = ", ".join(sorted(map(str, raw))) or "nothing"
        raise ConfigError(f"a '{SECTION}' section is required (found: {others})", source=src, key=SECTION)
    unknown = sorted(set(map(str, body)) - set(_KNOWN))
    if unknown:
        raise ConfigError(f"unknown keys {unknown}; known: {list(_KNOWN)}", source=src, key=SECTION)

    ds = context.data_sources.get(header.data_source_key) if header.data_source_key else None
    default_db = ds.database if ds is not None and ds.database else None
    sql_text = _text(body, "sql", src, required=True)
    assert sql_text is not None
    msql = parse_mapping_sql(sql_text, source=src, key=f"{SECTION}.sql", default_database=default_db)
    for t in msql.tables:
        if not t.database and not default_db:
            raise ConfigError(f"cannot tell the database of table {t.table!r}: set dataSourceKey to a source whose "
                              "URL names a database, or qualify the table (db.table)", source=src, key=f"{SECTION}.sql")
    names = [f.name for f in msql.fields]

    def field_named(name: str, key: str) -> FieldSpec:
        f = msql.field(name)
        if f is None:
            raise ConfigError(f"{name!r} is not a field of the mapping SQL's select list ({', '.join(names)})",
                              source=src, key=key)
        return f

    key_text = _text(body, "key", src, required=True)
    assert key_text is not None
    tmpl = parse_key_template(key_text, src)
    key_fields: dict[str, FieldSpec] = {}
    for name in tmpl.fields:
        f = field_named(name, f"{SECTION}.key")
        if not msql.main_only(f):
            raise ConfigError(f"key field {name!r} must be computed from main-table ({msql.main.alias_sql}) columns "
                              "only: the key of a deleted or re-keyed row must be known from its binlog image",
                              source=src, key=f"{SECTION}.key")
        if f.expr is not None and f.expr.find(exp.AggFunc) is not None:
            raise ConfigError(f"key field {name!r} must not be an aggregate", source=src, key=f"{SECTION}.key")
        key_fields[name] = f

    form = (_text(body, "type", src) or HASH).strip().lower()
    if form not in VALUE_FORMS:
        raise ConfigError(f"unknown value form {form!r}; expected one of {list(VALUE_FORMS)}", source=src,
                          key=f"{SECTION}.type")
    skips_raw = body.get("skips") or []
    if not isinstance(skips_raw, list) or not all(isinstance(s, str) for s in skips_raw):
        raise ConfigError("expected a list of field names", source=src, key=f"{SECTION}.skips")
    skips = {field_named(s, f"{SECTION}.skips").name for s in skips_raw}
    value_name = _text(body, "value", src)
    if value_name is not None and form != STRING:
        raise ConfigError(f"'value' only applies to type: string (this mapping is type: {form})", source=src,
                          key=f"{SECTION}.value")
    if form == STRING:
        fields = _string_value(msql, tmpl, skips, value_name, field_named, src)
    else:
        fields = tuple(n for n in names if n not in skips)
        if not fields:
            raise ConfigError("every field is skipped: the value would be empty", source=src, key=f"{SECTION}.skips")

    binary = (_text(body, "binary", src) or V.BASE64).strip().lower()
    if binary not in V.BINARY_MODES:
        raise ConfigError(f"unknown binary mode {binary!r}; expected one of {list(V.BINARY_MODES)}", source=src,
                          key=f"{SECTION}.binary")
    if binary == V.RAW and form == JSON:
        raise ConfigError("binary: raw cannot be used with type: json (JSON carries text only)", source=src,
                          key=f"{SECTION}.binary")
    prefix = _text(body, "prefix", src) or ""
    filtered = msql.ast.args.get("where") is not None or msql.ast.args.get("group") is not None
    direct = len(msql.tables) == 1 and not filtered and all(f.evaluable for f in msql.fields)
    return RedisMapping(
        header=header, sql=msql, key=tmpl, prefix=prefix, value_form=form, value_fields=fields,
        ttl=_int(body, "ttl", src, 0, 0), binary=binary, etl_condition=_text(body, "etlCondition", src),
        commit_batch=_int(body, "commitBatch", src, DEFAULT_COMMIT_BATCH, 1), key_fields=key_fields,
        filtered=filtered, direct=direct,
    )  # fmt: skip


def _string_value(msql: MappingSql, tmpl: KeyTemplate, skips: set[str], value_name: str | None,
                  field_named: Any, src: str) -> tuple[str, ...]:
    """The one field a ``string`` value holds: ``value:``, else the only field outside key and skips."""
    rest = [f.name for f in msql.fields if f.name not in skips and f.name not in tmpl.fields]
    if value_name is not None:
        chosen = field_named(value_name, f"{SECTION}.value").name
        extra = [n for n in rest if n != chosen]
        if extra:
            raise ConfigError(f"type: string stores one field ({chosen!r}); fields {extra} would be computed and "
                              "dropped: remove them from the SQL or list them in skips", source=src,
                              key=f"{SECTION}.sql")
        return (chosen,)
    if len(rest) != 1:
        raise ConfigError(f"type: string stores exactly one field, but the SQL yields {len(rest)} outside the key "
                          f"({rest}); set 'value' or list the others in skips", source=src, key=f"{SECTION}.value")
    return (rest[0],)

