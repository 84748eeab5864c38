"""Prometheus metrics of canal-server on ``canal.metrics.pull.port`` (own registry, not the global one).

Per destination: delay behind the source (ms), events/rows/bytes/transactions parsed (read from the
parser's stats at scrape time), store fill (events, bytes) and capacity, whether the instance and
its parser run; client GETs and ACKs with latency histograms.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from adapter.server.embedded import EmbeddedServer

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_PARSED = (("events", "binlog events parsed"), ("rows", "rows parsed"), ("bytes", "binlog bytes parsed"),
           ("transactions", "transactions parsed"), ("reconnects", "binlog reconnects"))


class _InstanceCollector(Collector):
    """Reads the running instances when scraped (no background thread, no stale values)."""

    def __init__(self, server: EmbeddedServer, clock: Callable[[], float]) -> None:
        self.server = server
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        labels = ["destination"]
        delay = GaugeMetricFamily("canal_instance_delay", "ms behind the source (last commit put into the store)",
                                  labels=labels)
        running = GaugeMetricFamily("canal_instance_running", "1 while the instance runs here", labels=labels)
        parser_up = GaugeMetricFamily("canal_instance_parser_up", "1 unless the parser stopped on an error",
                                      labels=labels)
        fill_events = GaugeMetricFamily("canal_instance_store_events", "events held in the store", labels=labels)
        fill_bytes = GaugeMetricFamily("canal_instance_store_bytes", "bytes held in the store", labels=labels)
        cap_events = GaugeMetricFamily("canal_instance_store_capacity_events", "store capacity (entries)",
                                       labels=labels)
        cap_bytes = GaugeMetricFamily("canal_instance_store_capacity_bytes", "store capacity (bytes)", labels=labels)
        parsed = {name: CounterMetricFamily(f"canal_instance_parsed_{name}", help_, labels=labels)
                  for name, help_ in _PARSED}
        running_now = self.server.running()
        for dest in self.server.config.destinations:
            inst = running_now.get(dest)
            running.add_metric([dest], 1.0 if inst is not None else 0.0)
            if inst is None:
                continue
            parser, store = inst.parser, inst.store
            parser_up.add_metric([dest], 1.0 if parser is not None and parser.error is None else 0.0)
            stats: Any = getattr(parser, "stats", None)
            if stats is not None:
                delay.add_metric([dest], float(_delay_ms(stats, self.clock)))
                for name, _ in _PARSED:
                    parsed[name].add_metric([dest], float(getattr(stats, name, 0) or 0))
            if store is not None:
                n, b = store.fill()
                fill_events.add_metric([dest], float(n))
                fill_bytes.add_metric([dest], float(b))
                cap_events.add_metric([dest], float(store.capacity))
                cap_bytes.add_metric([dest], float(store.max_bytes))
        yield from (delay, running, parser_up, fill_events, fill_bytes, cap_events, cap_bytes, *parsed.values())


def _delay_ms(stats: Any, clock: Callable[[], float]) -> int:
    delay = getattr(stats, "delay_ms", None)
    if isinstance(delay, int):
        return delay
    last = int(getattr(stats, "last_execute_time_ms", 0) or 0)
    return max(0, int(clock() * 1000) - last) if last else 0


class ServerMetrics:
    """The server's registry; ``serve(port)`` exposes it over HTTP."""

    def __init__(self, server: EmbeddedServer, *, clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_InstanceCollector(server, clock))
        labels = ["destination"]
        self.get_latency = Histogram("canal_client_get_seconds", "GET handling time (includes waiting)", labels,
                                     registry=self.registry, buckets=_LATENCY_BUCKETS)
        self.get_entries = Counter("canal_client_get_entries", "entries handed out by GET", labels,
                                   registry=self.registry)
        self.ack_latency = Histogram("canal_client_ack_seconds", "CLIENTACK handling time", labels,
                                     registry=self.registry, buckets=_LATENCY_BUCKETS)
        self._http: Any = None
        self.port: int | None = None

    def observe_get(self, destination: str, seconds: float, entries: int) -> None:
        self.get_latency.labels(destination).observe(seconds)
        self.get_entries.labels(destination).inc(entries)

    def observe_ack(self, destination: str, seconds: float) -> None:
        self.ack_latency.labels(destination).observe(seconds)

    def serve(self, port: int, addr: str = "0.0.0.0") -> int:
        """Start the HTTP endpoint (``port`` 0 picks a free one); returns the bound port."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        self._http = server
        self.port = int(server.server_port)
        return self.port

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
