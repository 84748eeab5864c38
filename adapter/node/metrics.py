"""Prometheus metrics of one node, per destination and group (own registry: nodes in one process don't clash)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

_LABELS = ("destination", "group")


class NodeMetrics:
    """Batches, rows, errors, retries, lag behind the source (from ``Dml.es``) and the last acked position."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.batches = Counter("canal_adapter_batches", "Batches acked", _LABELS, registry=r)
        self.rows = Counter("canal_adapter_rows", "Rows applied (all writers of the group)", _LABELS, registry=r)
        self.errors = Counter("canal_adapter_errors", "Failed batch attempts and source faults", _LABELS, registry=r)
        self.retries = Counter("canal_adapter_retries", "Batches rolled back for a retry", _LABELS, registry=r)
        self.skipped = Counter("canal_adapter_skipped_batches", "Batches dead-lettered after retries", _LABELS,
                               registry=r)
        self.stops = Counter("canal_adapter_stops", "Times a group stopped its destination (switch off)", _LABELS,
                             registry=r)
        self.lag = Gauge("canal_adapter_lag_ms", "Milliseconds between the binlog event and its ack (0 when idle)",
                         _LABELS, registry=r)
        self.acked_offset = Gauge("canal_adapter_last_acked_offset", "Binlog offset of the last acked event",
                                  (*_LABELS, "journal"), registry=r)
        self._journal: dict[tuple[str, str], str] = {}
        self.running = Gauge("canal_adapter_task_running", "1 while this node runs the (destination, group)",
                             _LABELS, registry=r)

    def acked(self, destination: str, group: str, rows: int, lag_ms: float | None, position: str) -> None:
        self.batches.labels(destination, group).inc()
        self.rows.labels(destination, group).inc(rows)
        if lag_ms is not None:
            self.lag.labels(destination, group).set(max(0.0, lag_ms))
        journal, _, offset = position.rpartition(":")
        if journal and offset.isdigit():
            prev = self._journal.get((destination, group))
            if prev is not None and prev != journal:  # one series per group: drop the previous journal's
                self.acked_offset.remove(destination, group, prev)
            self._journal[(destination, group)] = journal
            self.acked_offset.labels(destination, group, journal).set(int(offset))

    def idle(self, destination: str, group: str) -> None:
        self.lag.labels(destination, group).set(0)

    def error(self, destination: str, group: str) -> None:
        self.errors.labels(destination, group).inc()

    def retry(self, destination: str, group: str) -> None:
        self.retries.labels(destination, group).inc()

    def skip(self, destination: str, group: str) -> None:
        self.skipped.labels(destination, group).inc()

    def stop(self, destination: str, group: str) -> None:
        self.stops.labels(destination, group).inc()

    def set_running(self, destination: str, group: str, running: bool) -> None:
        self.running.labels(destination, group).set(1 if running else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
