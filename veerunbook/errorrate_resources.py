"""Resource usage for the high-error-rate procedure: memory, pool, CPU, event loop.

Read from the first and last successful scrapes of the window. Each figure is None
when the target does not export it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from veerunbook import metrics

# The gauges of prom-client's (Node.js) eventLoopLag collector, p99 first.
LAG_GAUGES = ("nodejs_eventloop_lag_p99_seconds", "nodejs_eventloop_lag_seconds")
CPU_COUNTER = "process_cpu_seconds_total"


@dataclass(frozen=True)
class Resources:
    """Resource gauges of the last scrape and CPU use over the window.

    ``cpu_cores`` is CPU seconds per wall-clock second from
    ``process_cpu_seconds_total``, so 1.0 is one core busy the whole window.
    """

    heap_fraction: float | None
    resident_bytes: float | None
    pool: metrics.PoolUsage | None
    cpu_cores: float | None
    event_loop_lag_seconds: float | None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pool"] = self.pool.to_dict() if self.pool else None
        return data


def read_resources(first: metrics.Scrape, last: metrics.Scrape) -> Resources:
    """Read memory, pool and event loop lag from ``last`` and CPU from both."""
    heap_used = metrics.gauge(last, "nodejs_heap_size_used_bytes")
    heap_limit = metrics.gauge(last, "nodejs_heap_size_limit_bytes")
    memory = metrics.process_memory(last)
    pool = metrics.database_pool(last)
    lag = next(
        (
            value
            for name in LAG_GAUGES
            if (value := metrics.gauge(last, name)) is not None
        ),
        None,
    )
    return Resources(
        heap_fraction=heap_used / heap_limit
        if heap_used is not None and heap_limit
        else None,
        resident_bytes=memory.rss_bytes,
        pool=pool if pool.active is not None else None,
        cpu_cores=_cpu_cores(first, last),
        event_loop_lag_seconds=lag,
    )


def _cpu_cores(first: metrics.Scrape, last: metrics.Scrape) -> float | None:
    before = metrics.gauge(first, CPU_COUNTER)
    after = metrics.gauge(last, CPU_COUNTER)
    if before is None or after is None or first.scraped_at is None:
        return None
    if last.scraped_at is None or last.scraped_at <= first.scraped_at:
        return None
    if metrics.detect_restart(first, last) is not None or after < before:
        return None
    return (after - before) / (last.scraped_at - first.scraped_at)
