"""ES mapping files (canal's ``esMapping``) and ES writer properties, validated into frozen objects."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adapter.errors import ConfigError
from adapter.sqlmap import FieldSpec, MappingSql, parse_mapping_sql
from adapter.writers.base import MappingHeader, WriterConfig, WriterContext

log = logging.getLogger(__name__)

_KNOWN = {"_index", "index", "_type", "type", "_id", "id", "pk", "upsert", "sql", "objFields", "relations",
          "skips", "etlCondition", "commitBatch", "syncByTimestamp", "syncInterval"}


@dataclass(frozen=True)
class ObjField:
    """An ``objFields`` entry: ``array`` (split on a literal separator) or ``json`` (parse JSON text)."""

    kind: str  # "array" | "json"
    separator: str = ""


@dataclass(frozen=True)
class Relation:
    """A ``relations`` entry: the join field, the relation name, and the field holding the parent id."""

    join_field: str
    name: str
    parent: str | None


@dataclass(frozen=True, eq=False)
class EsMapping:
    """One parsed ES mapping file (satisfies ``MappingSpec``)."""

    header: MappingHeader
    index: str
    type: str | None
    id_field: str | None
    pk_field: str | None
    upsert: bool
    sql: MappingSql
    obj_fields: Mapping[str, ObjField]
    relation: Relation | None
    skips: frozenset[str]
    etl_condition: str | None
    commit_batch: int
    #: single table and every field computable from the row image in Python: no back-queries.
    direct: bool = field(default=False)

    def source_tables(self) -> frozenset[tuple[str, str]]:
        return self.sql.source_tables()

    @property
    def identity_fields(self) -> tuple[FieldSpec, ...]:
        """The fields needed to address a document: ``_id`` (or ``pk``) and the routing parent."""
        names = [n for n in (self.id_field or self.pk_field, self.relation.parent if self.relation else None) if n]
        return tuple(f for n in dict.fromkeys(names) if (f := self.sql.field(n)) is not None)


def parse_es_mapping(header: MappingHeader, raw: Mapping[str, Any], context: WriterContext,
                     writer_name: str) -> EsMapping:
    """Validate a mapping file body (``{"esMapping": {...}}``); ConfigError names the file and key."""
    src = header.file
    body = raw.get("esMapping")
    if not isinstance(body, Mapping):
        raise ConfigError("an 'esMapping' section is required", source=src, key="esMapping")
    unknown = sorted(set(body) - _KNOWN)
    if unknown:
        log.warning("unknown esMapping keys ignored", extra={"mapping_file": src, "keys": unknown})
    for k in (k for k in body if k not in _KNOWN and k.lower() in {x.lower() for x in _KNOWN}):
        raise ConfigError(f"unknown key {k!r}; keys are case-sensitive", source=src, key=f"esMapping.{k}")

    def text(*names: str, required: bool = False) -> str | None:
        for n in names:
            v = body.get(n)
            if v is not None and str(v).strip():
                if not isinstance(v, (str, int)):
                    raise ConfigError(f"expected a string, got {type(v).__name__}", source=src, key=f"esMapping.{n}")
                return str(v).strip()
        if required:
            raise ConfigError("is required", source=src, key=f"esMapping.{names[0]}")
        return None

    index = text("_index", "index", required=True)
    assert index is not None
    type_ = text("_type", "type")
    if writer_name == "es6" and not type_:
        raise ConfigError("is required for es6 (the mapping type, e.g. _doc)", source=src, key="esMapping._type")
    sql_text = text("sql", required=True)
    assert sql_text is not None
    ds = context.data_sources.get(header.data_source_key) if header.data_source_key else None
    default_db = (ds.database or _url_database(ds.url)) if ds is not None else None
    msql = parse_mapping_sql(sql_text, source=src, key="esMapping.sql", default_database=default_db)
    for t in msql.tables:
        if not t.database and not default_db:
            raise ConfigError(f"cannot tell the database of table {t.table!r}: set dataSourceKey to a source whose "
                              "URL names a database, or qualify the table (db.table)", source=src, key="esMapping.sql")

    def select_field(name: str, key: str, *, identity: bool = False) -> FieldSpec:
        f = msql.field(name)
        if f is None:
            names = ", ".join(x.name for x in msql.fields)
            raise ConfigError(f"{name!r} is not a field of the select list ({names})", source=src, key=key)
        if identity and not msql.main_only(f):
            raise ConfigError(f"field {name!r} must be computed from main-table ({msql.main.alias_sql}) columns "
                              "only: it addresses the document, so it must be known when that row is deleted",
                              source=src, key=key)
        return f

    id_field = text("_id", "id")
    pk_field = text("pk")
    if not id_field and not pk_field:
        raise ConfigError("one of _id or pk is required", source=src, key="esMapping._id")
    if id_field:
        id_field = select_field(id_field, "esMapping._id", identity=True).name
        pk_field = None
    elif pk_field:
        pk_field = select_field(pk_field, "esMapping.pk", identity=True).name

    obj_fields = _obj_fields(body.get("objFields"), src, select_field)
    relation = _relation(body.get("relations"), src, select_field)
    skips_raw = body.get("skips") or []
    if not isinstance(skips_raw, list):
        raise ConfigError("expected a list of field names", source=src, key="esMapping.skips")
    skips = frozenset(select_field(str(s), "esMapping.skips").name for s in skips_raw)
    commit = body.get("commitBatch", 1000)
    if isinstance(commit, bool) or not isinstance(commit, int) or commit <= 0:
        raise ConfigError(f"expected a positive integer, got {commit!r}", source=src, key="esMapping.commitBatch")
    upsert = body.get("upsert", False)
    if not isinstance(upsert, bool):
        raise ConfigError(f"expected true or false, got {upsert!r}", source=src, key="esMapping.upsert")
    if body.get("syncByTimestamp"):
        log.warning("syncByTimestamp is not implemented (canal ignores the mapping); syncing from the binlog",
                    extra={"mapping_file": src})
    direct = (len(msql.tables) == 1 and all(f.evaluable for f in msql.fields)
              and not msql.ast.args.get("where") and not msql.ast.args.get("group"))
    return EsMapping(header=header, index=index, type=type_, id_field=id_field, pk_field=pk_field, upsert=upsert,
                     sql=msql, obj_fields=obj_fields, relation=relation, skips=skips,
                     etl_condition=text("etlCondition"), commit_batch=commit, direct=direct)


def _url_database(url: str) -> str | None:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).database or None
    except Exception:  # not a SQLAlchemy URL: the node validates URLs; no default database then
        return None


def _obj_fields(raw: Any, src: str, select_field: Any) -> dict[str, ObjField]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError("expected a map of field → array:<sep> | object | json", source=src,
                          key="esMapping.objFields")
    out: dict[str, ObjField] = {}
    for name, spec in raw.items():
        key = f"esMapping.objFields.{name}"
        select_field(str(name), key)
        s = str(spec or "").strip()
        if s.startswith("array:") and len(s) > len("array:"):
            out[str(name)] = ObjField("array", s[len("array:"):])
        elif s.startswith("object") or s == "json":
            out[str(name)] = ObjField("json")
        else:
            raise ConfigError(f"expected array:<separator>, object or json, got {spec!r} (canal would silently "
                              "write null)", source=src, key=key)
    return out


def _relation(raw: Any, src: str, select_field: Any) -> Relation | None:
    if not raw:
        return None
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise ConfigError("expected exactly one join field: {<joinField>: {name: .., parent: ..}}", source=src,
                          key="esMapping.relations")
    join_field, spec = next(iter(raw.items()))
    key = f"esMapping.relations.{join_field}"
    if not isinstance(spec, Mapping) or not spec.get("name"):
        raise ConfigError("expected {name: <relation name>[, parent: <field>]}", source=src, key=key)
    parent = spec.get("parent")
    if parent:
        parent = select_field(str(parent), f"{key}.parent", identity=True).name
    return Relation(str(join_field), str(spec["name"]), parent or None)


# ---------------------------------------------------------------- writer properties
@dataclass(frozen=True)
class EsSettings:
    """``outerAdapters[].hosts`` and ``properties`` of an es6/es7/es8 writer."""

    hosts: tuple[str, ...]  # full URLs
    username: str | None = None
    password: str | None = None
    ca_path: str | None = None
    verify_certs: bool = True
    timezone: dt.tzinfo = dt.timezone.utc
    bulk_max_bytes: int = 5 * 1024 * 1024
    bulk_retries: int = 3
    retry_backoff: float = 0.5
    request_timeout: float = 30.0

    def __repr__(self) -> str:  # never show the password
        return f"EsSettings(hosts={self.hosts!r}, username={self.username!r}, timezone={self.timezone!r})"


def parse_settings(config: WriterConfig) -> EsSettings:
    """Hosts (canal style ``127.0.0.1:9200,h2:9200``, scheme optional) and properties; ConfigError on bad values."""
    src = f"outerAdapter {config.name}" + (f" (key {config.key})" if config.key else "")
    props = {str(k): v for k, v in (config.properties or {}).items()}
    mode = str(props.get("mode") or "rest").lower()
    if mode == "transport":
        raise ConfigError("transport mode (binary port 9300) is not supported; set mode: rest and list the HTTP "
                          "port (9200) in hosts", source=src, key="properties.mode")
    if not config.hosts or not str(config.hosts).strip():
        raise ConfigError("is required (e.g. 127.0.0.1:9200)", source=src, key="hosts")
    ca = str(props["security.ca.path"]) if props.get("security.ca.path") else None
    ssl = _bool(props.get("security.ssl", ca is not None), src, "properties.security.ssl")
    hosts = []
    for h in str(config.hosts).split(","):
        h = h.strip()
        if not h:
            continue
        if not re.match(r"^https?://", h):
            h = ("https://" if ssl else "http://") + h
        if not re.match(r"^https?://[^/:]+(:\d+)?(/.*)?$", h):
            raise ConfigError(f"bad host {h!r}; expected host:port or http(s)://host:port", source=src, key="hosts")
        hosts.append(h.rstrip("/"))
    user = pwd = None
    auth = props.get("security.auth")
    if auth:
        user, sep, pwd = str(auth).partition(":")
        if not sep:
            raise ConfigError("expected user:password", source=src, key="properties.security.auth")
    return EsSettings(
        hosts=tuple(hosts), username=user, password=pwd, ca_path=ca,
        verify_certs=_bool(props.get("security.ssl.verify", True), src, "properties.security.ssl.verify"),
        timezone=parse_timezone(props.get("timezone"), src),
        bulk_max_bytes=_positive(props.get("bulk.max.bytes", 5 * 1024 * 1024), src, "properties.bulk.max.bytes"),
        bulk_retries=_positive(props.get("bulk.retries", 3), src, "properties.bulk.retries", zero=True),
        retry_backoff=_positive(props.get("bulk.retry.backoff.ms", 500), src, "properties.bulk.retry.backoff.ms",
                                zero=True) / 1000.0,
        request_timeout=_positive(props.get("request.timeout.ms", 30000), src, "properties.request.timeout.ms") / 1000,
    )


def parse_timezone(value: Any, src: str = "") -> dt.tzinfo:
    """``+08:00`` / ``-0530`` / ``UTC`` / ``Asia/Shanghai``; unset → the host's local zone (canal uses the JVM's)."""
    if value is None or str(value).strip() == "":
        local = dt.datetime.now().astimezone().tzinfo
        return local if local is not None else dt.timezone.utc
    s = str(value).strip()
    m = re.fullmatch(r"(?:GMT|UTC)?([+-])(\d{1,2}):?(\d{2})?", s)
    if m:
        delta = dt.timedelta(hours=int(m[2]), minutes=int(m[3] or 0))
        return dt.timezone(-delta if m[1] == "-" else delta)
    if s.upper() in ("UTC", "GMT", "Z"):
        return dt.timezone.utc
    try:
        return ZoneInfo(s)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ConfigError(f"unknown time zone {s!r} (use +08:00, UTC or an IANA name)", source=src,
                          key="properties.timezone") from e


def _bool(v: Any, src: str, key: str) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("true", "1", "yes", "on"):
        return True
    if s in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"expected true or false, got {v!r}", source=src, key=key)


def _positive(v: Any, src: str, key: str, *, zero: bool = False) -> int:
    try:
        n = int(v)
    except (TypeError, ValueError):
        n = -1
    if n < 0 or (n == 0 and not zero):
        what = "non-negative" if zero else "positive"
        raise ConfigError(f"expected a {what} integer, got {v!r}", source=src, key=key)
    return n
