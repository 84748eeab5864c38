"""Loading ``application.yml``: YAML → validated models → ``AppConfig``, with clear errors and env overrides.

Every error is a ``ConfigError`` naming the file, the key path (for example
``canal.conf.canalAdapters[0].groups[0].outerAdapters[1].name``) and what was expected. Secrets may
come from the environment instead of the file (names in ``docs/configuration.md``):

- ``CANAL_TCP_USERNAME`` / ``CANAL_TCP_PASSWORD`` → ``consumerProperties`` ``canal.tcp.username/password``
- ``CANAL_SRC_<KEY>_USERNAME`` / ``CANAL_SRC_<KEY>_PASSWORD`` → ``srcDataSources.<key>.username/password``
- ``CANAL_WRITER_<KEY>_<PROP>`` → property ``<prop>`` of the outer adapter with ``key: <key>``, for a
  property that is present in the file (possibly blank); ``<KEY>``/``<PROP>`` are upper-cased with
  every non-alphanumeric character replaced by ``_`` (``jdbc.password`` → ``JDBC_PASSWORD``).
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapter.errors import ConfigError
from adapter.jdbc import jdbc_to_url
from adapter.node.config import (
    CanalConf,
    ServerConf,
    auto_key,
    effective_client_id,
)
from adapter.writers.base import DataSource

log = logging.getLogger(__name__)

APPLICATION_FILE = "application.yml"
ROOT_KEY = "canal.conf"
_TCP_KEYS = {
    "canal.tcp.server.host",
    "canal.tcp.zookeeper.hosts",
    "canal.tcp.batch.size",
    "canal.tcp.username",
    "canal.tcp.password",
    "canal.tcp.so.timeout",
}
_MQ_PREFIXES = ("kafka.", "rocketmq.", "rabbitmq.", "pulsarmq.")
_SECRET = re.compile(r"password|passwd|secret|token|auth", re.I)


class _Root(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)
    server: ServerConf = ServerConf.model_validate({})
    canal_conf: CanalConf = Field(alias="canal.conf")


@dataclass(frozen=True)
class WriterSpec:
    """One configured writer instance, ready to build (secrets from env applied)."""

    name: str
    key: str  # configured key, or canal's AUTO_GENERATED_-<instance>-<group>-<index>
    keyed: bool  # False when the key was generated (keyless mapping files bind to these)
    hosts: str | None
    zk_hosts: str | None
    properties: Mapping[str, Any]
    key_path: str  # e.g. canal.conf.canalAdapters[0].groups[0].outerAdapters[1]


@dataclass(frozen=True)
class TaskSpec:
    """One (instance, group): one consumer with its own client id, feeding its writers."""

    destination: str
    group_id: str
    client_id: int
    writers: tuple[WriterSpec, ...]
    key_path: str

    @property
    def task_id(self) -> str:
        return f"{self.destination}/{self.group_id}"


@dataclass(frozen=True)
class AppConfig:
    """Everything the composition root needs, derived from one ``application.yml``."""

    file: str
    conf_dir: str
    server: ServerConf
    canal: CanalConf
    tasks: tuple[TaskSpec, ...]
    data_sources: Mapping[str, DataSource]
    tcp_username: str
    tcp_password: str
    dead_letter_dir: str
    node_id: str
    notes: tuple[str, ...] = field(default=())

    @property
    def destinations(self) -> list[str]:
        """Instance names in file order, without duplicates (canal's DESTINATIONS)."""
        return list(dict.fromkeys(t.destination for t in self.tasks))


def key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _env_name(*parts: str) -> str:
    return "_".join(re.sub(r"[^0-9A-Za-z]", "_", p).upper() for p in parts)


def _describe(value: Any, loc: str) -> str:
    if _SECRET.search(loc):
        return "***"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; broken YAML → ConfigError naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read file: {e.strerror or e}", source=str(path)) from e
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"invalid YAML: {where}{e.problem or e}", source=str(path)) from e
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML: {e}", source=str(path)) from e


def _normalise_root(raw: Any, source: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping with a '{ROOT_KEY}' section, got {type(raw).__name__}", source=source)
    out: dict[str, Any] = dict(raw)
    nested = out.get("canal")
    if ROOT_KEY not in out and isinstance(nested, dict) and "conf" in nested:
        # Spring's relaxed binding also accepts canal: {conf: ...}
        out[ROOT_KEY] = nested["conf"]
        rest = {k: v for k, v in nested.items() if k != "conf"}
        if rest:
            out["canal"] = rest
        else:
            del out["canal"]
    if out.get(ROOT_KEY) is None:
        raise ConfigError("missing section; expected the canal.conf mapping of canal's application.yml",
                          source=source, key=ROOT_KEY)
    return out


def _validation_error(e: ValidationError, source: str) -> ConfigError:
    problems = []
    for err in e.errors():
        loc = key_path(tuple(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ").removeprefix("Input should be ")
        if err["type"] == "missing":
            problems.append((loc, "required key is missing"))
        else:
            problems.append((loc, f"expected {msg}; got {_describe(err.get('input'), loc)}"))
    first_loc, first_msg = problems[0]
    more = "".join(f"\n  {loc}: {msg}" for loc, msg in problems[1:])
    return ConfigError(first_msg + more, source=source, key=first_loc)


def translate_url(url: str, username: str | None, password: str | None, *, source: str, key: str) -> tuple[str, str]:
    """canal JDBC URL (or SQLAlchemy URL) + credentials → (SQLAlchemy URL string, database name)."""
    u = jdbc_to_url(url, username, password, source=source, key=key)
    return u.render_as_string(hide_password=False), u.database or ""


def _notes(root: _Root) -> list[str]:
    notes = [f"key '{k}' ignored (Spring/launcher setting)" for k in sorted((root.model_extra or {}).keys())]
    cc = root.canal_conf
    notes += [f"key '{ROOT_KEY}.{k}' ignored (not used by this adapter)" for k in cc.unknown_keys()]
    if cc.flat_message is not None:
        notes.append(f"key '{ROOT_KEY}.flatMessage' ignored (MQ modes only)")
    if cc.terminate_on_exception is not None:
        notes.append(f"key '{ROOT_KEY}.terminateOnException' ignored: use onExhausted (stop|skip; default stop)")
    mq = sorted(k for k in cc.consumer_properties if k.startswith(_MQ_PREFIXES))
    if mq:
        notes.append(f"consumerProperties {', '.join(mq)} ignored (mode is tcp)")
    other = sorted(k for k in cc.consumer_properties if k not in _TCP_KEYS and not k.startswith(_MQ_PREFIXES))
    notes += [f"consumerProperties key '{k}' unknown; ignored" for k in other]
    for i, inst in enumerate(cc.canal_adapters):
        for k in inst.unknown_keys():
            notes.append(f"key '{ROOT_KEY}.canalAdapters[{i}].{k}' ignored")
        for j, g in enumerate(inst.groups):
            for k in g.unknown_keys():
                notes.append(f"key '{ROOT_KEY}.canalAdapters[{i}].groups[{j}].{k}' ignored")
    return notes


def _tasks(cc: CanalConf, env: Mapping[str, str], source: str) -> tuple[TaskSpec, ...]:
    tasks: list[TaskSpec] = []
    seen_pairs: dict[tuple[str, str], str] = {}
    seen_keys: dict[tuple[str, str], str] = {}
    for i, inst in enumerate(cc.canal_adapters):
        ids: dict[int, str] = {}
        for j, group in enumerate(inst.groups):
            gpath = f"{ROOT_KEY}.canalAdapters[{i}].groups[{j}]"
            pair = (inst.instance, group.group_id)
            if pair in seen_pairs:
                raise ConfigError(f"expected a unique groupId per instance; {group.group_id!r} of {inst.instance!r} "
                                  f"is also at {seen_pairs[pair]}", source=source, key=f"{gpath}.groupId")
            seen_pairs[pair] = gpath
            cid = effective_client_id(inst, j)
            if cid in ids:
                raise ConfigError(f"expected a unique client id per instance; {cid} is also used by {ids[cid]} "
                                  f"(set clientId explicitly)", source=source, key=f"{gpath}.clientId")
            ids[cid] = gpath
            writers = []
            for k, oa in enumerate(group.outer_adapters):
                wpath = f"{gpath}.outerAdapters[{k}]"
                key = oa.key or auto_key(inst.instance, group.group_id, k)
                ident = (oa.name.lower(), key.lower())
                if oa.key and ident in seen_keys:
                    raise ConfigError(f"expected a unique key per writer name; {oa.name}/{oa.key} is also at "
                                      f"{seen_keys[ident]}", source=source, key=f"{wpath}.key")
                seen_keys[ident] = wpath
                props = dict(oa.properties)
                if oa.key:
                    for prop in props:
                        val = env.get(_env_name("CANAL_WRITER", oa.key, prop))
                        if val is not None:
                            props[prop] = val
                writers.append(WriterSpec(oa.name, key, bool(oa.key), oa.hosts, oa.zk_hosts, props, wpath))
            tasks.append(TaskSpec(inst.instance, group.group_id, cid, tuple(writers), gpath))
    return tuple(tasks)


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> AppConfig:
    """Load ``path`` (a conf dir holding application.yml, or the file itself) into an ``AppConfig``."""
    env = os.environ if env is None else env
    p = Path(path)
    file = (p / APPLICATION_FILE if p.is_dir() else p).absolute()
    if not file.exists():
        raise ConfigError("file not found; expected canal's conf dir layout (DIR/application.yml)", source=str(file))
    source = str(file)
    raw = _normalise_root(read_yaml(file), source)
    try:
        root = _Root.model_validate(raw)
    except ValidationError as e:
        raise _validation_error(e, source) from None
    cc = root.canal_conf
    data_sources: dict[str, DataSource] = {}
    for dkey, ds in cc.src_data_sources.items():
        user = env.get(_env_name("CANAL_SRC", dkey, "USERNAME"), ds.username)
        pwd = env.get(_env_name("CANAL_SRC", dkey, "PASSWORD"), ds.password)
        url, db = translate_url(ds.url, user, pwd, source=source, key=f"{ROOT_KEY}.srcDataSources.{dkey}.url")
        data_sources[dkey] = DataSource(dkey, url, db)
    tasks = _tasks(cc, env, source)
    conf_dir = file.parent.resolve()
    dl = Path(cc.dead_letter_dir or "logs/dead-letter")
    dead_letter = dl if dl.is_absolute() else conf_dir.parent / dl
    node_id = cc.node_id or f"{socket.gethostname()}:{root.server.port}"
    notes = tuple(_notes(root))
    for note in notes:
        log.info("config note: %s", note, extra={"config_file": source})
    return AppConfig(
        file=source,
        conf_dir=str(conf_dir),
        server=root.server,
        canal=cc,
        tasks=tasks,
        data_sources=data_sources,
        tcp_username=env.get("CANAL_TCP_USERNAME") or cc.prop("canal.tcp.username") or "",
        tcp_password=env.get("CANAL_TCP_PASSWORD") or cc.prop("canal.tcp.password") or "",
        dead_letter_dir=str(dead_letter),
        node_id=node_id,
        notes=notes,
    )
