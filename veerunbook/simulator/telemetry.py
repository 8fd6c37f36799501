"""Request counters and latency histograms, exposed as Prometheus metrics.

``ServiceCollector`` is a prometheus_client custom collector rather than a set of
``Counter`` and ``Histogram`` objects. One lock then makes every scrape a consistent
snapshot, so a request is either in both the counter and the histogram or in
neither. The output also carries no ``_created`` series, like the text that
prom-client (the Node.js client, ``lib/counter.js``) writes, and this needs no
process-wide ``disable_created_metrics()`` switch.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from veerunbook.simulator.behaviour import USER_API_PATHS, MemorySnapshot, PoolSnapshot
from veerunbook.simulator.security import SecurityState

# prom-client's default buckets with 2.5, 5 and 10 s, so slow requests stay visible.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LATENCY_SAMPLE_CAPACITY = 5000


@dataclass
class _Histogram:
    counts: list[int]
    total: float = 0.0


@dataclass(frozen=True)
class ProcessFigures:
    """Gauge values read at scrape time."""

    pool: PoolSnapshot
    memory: MemorySnapshot
    start_time: float


class RequestStats:
    """Thread-safe request counts per status and latency histograms per route."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], int] = {}
        self._histograms: dict[tuple[str, str], _Histogram] = {}
        self._api_latencies: deque[tuple[float, float]] = deque(
            maxlen=LATENCY_SAMPLE_CAPACITY
        )

    def observe(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        """Count one finished request and its duration in seconds."""
        with self._lock:
            key = (method, endpoint, str(status))
            self._counts[key] = self._counts.get(key, 0) + 1
            histogram = self._histograms.get((method, endpoint))
            if histogram is None:
                histogram = _Histogram([0] * (len(BUCKETS) + 1))
                self._histograms[(method, endpoint)] = histogram
            histogram.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            histogram.total += seconds
            if endpoint in USER_API_PATHS:
                self._api_latencies.append((time.time(), seconds))

    def api_latencies(self, window_seconds: float) -> list[float]:
        """Return the durations of user API requests in the last window, in seconds."""
        since = time.time() - window_seconds
        with self._lock:
            return [seconds for at, seconds in self._api_latencies if at >= since]

    def snapshot(
        self,
    ) -> tuple[dict[tuple[str, str, str], int], dict[tuple[str, str], _Histogram]]:
        """Copy the counts and histograms under the lock."""
        with self._lock:
            histograms = {
                key: _Histogram(list(value.counts), value.total)
                for key, value in self._histograms.items()
            }
            return dict(self._counts), histograms


class ServiceCollector:
    """Collect the service's metrics with the names an Express app exports."""

    def __init__(
        self,
        stats: RequestStats,
        security: SecurityState,
        figures: Callable[[], ProcessFigures],
    ) -> None:
        self._stats = stats
        self._security = security
        self._figures = figures

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family; prometheus_client calls this on each scrape."""
        counts, histograms = self._stats.snapshot()
        yield _request_counter(counts)
        yield _duration_histogram(histograms)
        yield from _process_gauges(self._figures())

        blocked = CounterMetricFamily(
            "security_blocked_ips", "IP addresses blocked since the process started"
        )
        blocked.add_metric([], self._security.blocked_total)
        yield blocked
        failed = CounterMetricFamily(
            "auth_failed_logins", "Failed login attempts since the process started"
        )
        failed.add_metric([], self._security.failed_logins_total)
        yield failed


def _request_counter(counts: dict[tuple[str, str, str], int]) -> Metric:
    family = CounterMetricFamily(
        "http_requests",
        "Total HTTP requests",
        labels=["method", "endpoint", "status_code"],
    )
    for labels, value in sorted(counts.items()):
        family.add_metric(list(labels), value)
    return family


def _duration_histogram(histograms: dict[tuple[str, str], _Histogram]) -> Metric:
    family = HistogramMetricFamily(
        "http_request_duration_seconds",
        "HTTP request duration in seconds",
        labels=["method", "endpoint"],
    )
    bounds = [*(repr(bound) for bound in BUCKETS), "+Inf"]
    for labels, histogram in sorted(histograms.items()):
        cumulative, buckets = 0, []
        for bound, count in zip(bounds, histogram.counts, strict=True):
            cumulative += count
            buckets.append((bound, float(cumulative)))
        family.add_metric(list(labels), buckets, histogram.total)
    return family


def _process_gauges(figures: ProcessFigures) -> Iterator[Metric]:
    pool = figures.pool
    connections = GaugeMetricFamily(
        "database_connections", "Database pool connections", labels=["state"]
    )
    connections.add_metric(["active"], pool.active)
    connections.add_metric(["idle"], pool.idle)
    connections.add_metric(["waiting"], pool.waiting)
    yield connections
    yield GaugeMetricFamily(
        "database_connections_max", "Database pool size limit", value=pool.max
    )

    memory = figures.memory
    uptime = time.time() - figures.start_time
    for name, documentation, value in (
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            memory.resident,
        ),
        (
            "nodejs_heap_size_used_bytes",
            "Process heap size used in bytes",
            memory.heap_used,
        ),
        (
            "nodejs_heap_size_total_bytes",
            "Process heap size in bytes",
            memory.heap_total,
        ),
        (
            "nodejs_heap_size_limit_bytes",
            "V8 heap size limit in bytes",
            memory.heap_limit,
        ),
        ("nodejs_process_uptime_seconds", "Process uptime in seconds", uptime),
        (
            "process_start_time_seconds",
            "Start time since the epoch in seconds",
            figures.start_time,
        ),
    ):
        yield GaugeMetricFamily(name, documentation, value=value)
