"""The writer contract: what every outer adapter implements, and the values it receives."""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from adapter.dml import Dml


@dataclass(frozen=True)
class DataSource:
    """A source database from ``srcDataSources`` (for ETL and back-queries). ``url`` is SQLAlchemy."""

    key: str
    url: str
    #: Database (schema) name parsed from the URL, "" when the URL names none.
    database: str = ""


@dataclass(frozen=True)
class WriterConfig:
    """One ``outerAdapters`` entry of ``application.yml``, plus where it runs."""

    name: str
    key: str | None
    hosts: str | None
    properties: Mapping[str, Any]
    destination: str
    group_id: str


@dataclass(frozen=True)
class MappingHeader:
    """Header fields common to every mapping file (canal's names in snake_case)."""

    task: str  # the file name, e.g. "mytest_user.yml": the task name used by REST
    file: str  # full path, for error messages
    data_source_key: str | None
    destination: str | None
    group_id: str | None
    outer_adapter_key: str | None


class MappingSpec(Protocol):
    """What the core needs from a parsed mapping: its header and the source tables it reads."""

    header: MappingHeader

    def source_tables(self) -> frozenset[tuple[str, str]]:
        """(database, table) pairs whose changes this mapping consumes (lower-cased)."""
        ...


@dataclass(frozen=True)
class WriterContext:
    """Shared services handed to writers by the composition root (seams for tests)."""

    data_sources: Mapping[str, DataSource] = field(default_factory=dict)
    conf_dir: str = "."
    clock: Callable[[], float] | None = None


@dataclass(frozen=True)
class Routed:
    """One Dml routed to one mapping of a writer (mapping is None for mapping-less writers)."""

    mapping: Any
    dml: Dml


@dataclass
class EtlResult:
    """Outcome of a full ETL, in canal's REST JSON shape (``succeeded``, ``resultMessage``...)."""

    succeeded: bool
    result_message: str = ""
    error_message: str | None = None
    rows: int = 0

    def to_canal_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"succeeded": self.succeeded, "resultMessage": self.result_message}
        if self.error_message:
            out["errorMessage"] = self.error_message
        return out


class Writer(abc.ABC):
    """An outer adapter. Built once per ``outerAdapters`` entry; ``write`` is all-or-nothing.

    Errors: raise ``RetriableError`` for transient faults (the batch is rolled back and retried),
    ``FatalError`` when retrying cannot help, ``ConfigError`` from ``parse_mapping``. A writer
    translates its client's exceptions at this seam; the worker never sees driver errors.
    """

    #: Entry-point name (``name:`` in application.yml).
    name: ClassVar[str] = ""
    #: Folder under the conf dir holding this writer's mapping files; None when it takes none.
    mapping_dir: ClassVar[str | None] = None

    def __init__(self, config: WriterConfig, context: WriterContext) -> None:
        self.config = config
        self.context = context
        self.mappings: Sequence[Any] = ()

    @property
    def sync_lock(self) -> threading.RLock:
        """Serializes stream batches with ETL chunks of this writer.

        The worker holds it around every ``write`` call; ``SupportsEtl.etl`` must hold it around each
        chunk's select+write, so an ETL never overwrites a newer streamed row with an older snapshot.
        """
        lock = self.__dict__.get("_sync_lock")
        if lock is None:
            lock = self.__dict__.setdefault("_sync_lock", threading.RLock())
        return lock  # type: ignore[no-any-return]

    @classmethod
    def parse_mapping(cls, header: MappingHeader, raw: Mapping[str, Any], context: WriterContext) -> Any:
        """Validate one mapping file's body; return an object satisfying ``MappingSpec``.

        ``raw`` is the file's YAML without the four header keys (``dataSourceKey``, ``destination``,
        ``groupId``, ``outerAdapterKey``), which arrive parsed in ``header``; ``${ENV}`` placeholders
        are already resolved. Raise ``ConfigError`` (with ``key``) for invalid content.
        """
        raise NotImplementedError(f"writer {cls.name!r} takes no mapping files")

    def set_mappings(self, mappings: Sequence[Any]) -> None:
        """Install the mappings that belong to this writer (called at start and on reload)."""
        self.mappings = tuple(mappings)

    def open(self) -> None:  # noqa: B027 - optional hook
        """Connect to the target. Raise ``ConfigError`` for bad settings."""

    @abc.abstractmethod
    def write(self, items: Sequence[Routed]) -> None:
        """Apply a batch all-or-nothing, idempotently (a replay must leave the same target)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


@runtime_checkable
class SupportsEtl(Protocol):
    """Optional capability: full load and count of one mapping (REST /etl and /count).

    ``etl`` runs on the node that streams the mapping's (destination, group), in the HTTP request's
    thread, while streaming continues: hold ``Writer.sync_lock`` around each chunk's select+write.
    ``progress(n)`` reports rows written so far.
    """

    def etl(self, mapping: Any, params: Sequence[str], progress: Callable[[int], None]) -> EtlResult: ...

    def count(self, mapping: Any) -> int: ...


@runtime_checkable
class SupportsCountInfo(Protocol):
    """Optional: canal's adapter-specific /count JSON (rdb ``{"count","targetTable"}``, es ``{"esIndex","count"}``).

    Without it, REST answers ``{"count": SupportsEtl.count(mapping)}``.
    """

    def count_info(self, mapping: Any) -> dict[str, Any]: ...


def chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Split ``seq`` into slices of at most ``size`` items."""
    for i in range(0, len(seq), max(1, size)):
        yield seq[i : i + size]
