"""Read single values from a scrape: gauges, the database pool and process memory."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from veerunbook.metrics_scrape import Scrape, finite_or_none

# Pool gauges: each state is read from database_connections{state="..."} and, failing
# that, from a gauge named database_connections_<state>.
_POOL_METRIC = "database_connections"
_POOL_STATES = {
    "active": ("active", "used", "in_use", "busy"),
    "idle": ("idle",),
    "waiting": ("waiting", "pending"),
    "total": ("total",),
    "max": ("max",),
}

# Memory gauges in order of preference: prometheus_client and prom-client (Node.js)
# default collector names first, then a nodejs_memory_usage_bytes{type} gauge as
# exporters built on process.memoryUsage() write it.
_Candidates = tuple[tuple[str, dict[str, str]], ...]
_RSS: _Candidates = (
    ("process_resident_memory_bytes", {}),
    ("nodejs_memory_usage_bytes", {"type": "rss"}),
)
_HEAP_USED: _Candidates = (
    ("nodejs_heap_size_used_bytes", {}),
    ("nodejs_memory_usage_bytes", {"type": "heap_used"}),
    ("nodejs_memory_usage_bytes", {"type": "heapUsed"}),
)
_HEAP_TOTAL: _Candidates = (
    ("nodejs_heap_size_total_bytes", {}),
    ("nodejs_memory_usage_bytes", {"type": "heap_total"}),
    ("nodejs_memory_usage_bytes", {"type": "heapTotal"}),
)


def gauge(scrape: Scrape, name: str, /, **labels: str) -> float | None:
    """Return the value of the first sample named ``name`` that has ``labels``.

    Other labels of the sample are ignored. Returns None when no sample matches or
    when its value is NaN or infinite.
    """
    for sample in scrape.find(name):
        if all(sample.labels.get(key) == value for key, value in labels.items()):
            return finite_or_none(sample.value)
    return None


@dataclass
class PoolUsage:
    """Database connection pool gauges, with ``utilisation`` as active / max."""

    active: float | None
    idle: float | None
    waiting: float | None
    total: float | None
    max: float | None
    utilisation: float | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def database_pool(scrape: Scrape) -> PoolUsage:
    """Read the database connection pool from ``database_connections`` gauges."""
    values = {
        state: _pool_gauge(scrape, names) for state, names in _POOL_STATES.items()
    }
    active, maximum = values["active"], values["max"]
    notes: list[str] = []

    utilisation = None
    if active is not None and maximum:
        utilisation = active / maximum
    elif active is None:
        notes.append("no active-connection gauge, so the utilisation is unknown")
    else:
        notes.append("no database_connections_max gauge, so the utilisation is unknown")
    if values["waiting"]:
        notes.append(
            f"{values['waiting']:g} requests are waiting for a connection,"
            " so the pool is exhausted"
        )
    return PoolUsage(
        active=active,
        idle=values["idle"],
        waiting=values["waiting"],
        total=values["total"],
        max=maximum,
        utilisation=utilisation,
        notes=notes,
    )


def _pool_gauge(scrape: Scrape, states: tuple[str, ...]) -> float | None:
    for state in states:
        value = gauge(scrape, _POOL_METRIC, state=state)
        if value is None:
            value = gauge(scrape, f"{_POOL_METRIC}_{state}")
        if value is not None:
            return value
    return None


@dataclass
class ProcessMemory:
    """Process memory gauges in bytes, with ``heap_utilisation`` as used / total."""

    rss_bytes: float | None
    heap_used_bytes: float | None
    heap_total_bytes: float | None
    heap_utilisation: float | None
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def process_memory(scrape: Scrape) -> ProcessMemory:
    """Read resident memory and the Node.js heap from the gauges that are present.

    ``sources`` names the gauges read. There is no memory limit in a scrape, so the
    runbook's "memory usage above 85 %" cannot be computed from RSS alone.
    """
    sources: list[str] = []
    rss = _first_gauge(scrape, _RSS, sources)
    heap_used = _first_gauge(scrape, _HEAP_USED, sources)
    heap_total = _first_gauge(scrape, _HEAP_TOTAL, sources)
    utilisation = (
        heap_used / heap_total if heap_used is not None and heap_total else None
    )
    return ProcessMemory(rss, heap_used, heap_total, utilisation, sources)


def _first_gauge(
    scrape: Scrape,
    candidates: _Candidates,
    sources: list[str],
) -> float | None:
    for name, labels in candidates:
        value = gauge(scrape, name, **labels)
        if value is not None:
            shown = ",".join(f'{key}="{item}"' for key, item in labels.items())
            sources.append(f"{name}{{{shown}}}" if shown else name)
            return value
    return None
