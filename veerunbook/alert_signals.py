"""The alert signals of one scrape, measured against the scrape before it.

An unattended alert check scrapes the target's metrics once per interval. The ratio
and quantile signals cover the window between the previous scrape and this one, so
a counter reset or process restart in between is handled by ``error_rate`` and
``latency_quantiles``. Counter signals are stored as the cumulative counter, and alert
evaluation takes their increase over the rule's window.
"""

from __future__ import annotations

from veerunbook.alert_rules import Signal
from veerunbook.metrics_error_rate import error_rate
from veerunbook.metrics_gauges import database_pool, gauge
from veerunbook.metrics_latency import latency_quantiles
from veerunbook.metrics_scrape import Scrape, finite_or_none

__all__ = ["BLOCKED_IPS_COUNTER", "HEAP_LIMIT", "HEAP_USED", "signal_values"]

# Metric names of the embedded target, the same ones the exported PromQL reads.
BLOCKED_IPS_COUNTER = "security_blocked_ips_total"
HEAP_USED = "nodejs_heap_size_used_bytes"
HEAP_LIMIT = "nodejs_heap_size_limit_bytes"


def signal_values(before: Scrape | None, after: Scrape) -> dict[Signal, float | None]:
    """Return every signal's value at ``after``, None where it cannot be measured.

    Without ``before`` the window signals (error rate, availability and p95) are
    None, because a single scrape only gives totals since the process started.
    Error rate and availability are also None when no user request was served in
    the window, like Prometheus's 0/0. The database connection-failure counter is
    always None: the target exports no such metric.
    """
    ratio = None
    p95_ms = None
    if before is not None:
        ratio = error_rate(before, after).rate
        p95_ms = _p95_ms(before, after)
    return {
        Signal.ERROR_RATE: ratio,
        Signal.AVAILABILITY: None if ratio is None else 1.0 - ratio,
        Signal.P95_MS: p95_ms,
        Signal.MEMORY_RATIO: _heap_ratio(after),
        Signal.BLOCKED_IPS_PER_MIN: _counter_sum(after, BLOCKED_IPS_COUNTER),
        Signal.DB_CONNECTION_FAILURES_PER_MIN: None,
        Signal.POOL_UTILISATION: database_pool(after).utilisation,
    }


def _p95_ms(before: Scrape, after: Scrape) -> float | None:
    report = latency_quantiles(before, after, quantiles=(0.95,))
    if report.aggregate is None or not report.aggregate.quantiles:
        return None
    value = report.aggregate.quantiles[0].value
    return None if value is None else value * 1000.0


def _heap_ratio(scrape: Scrape) -> float | None:
    used = gauge(scrape, HEAP_USED)
    limit = gauge(scrape, HEAP_LIMIT)
    if used is None or not limit:
        return None
    return used / limit


def _counter_sum(scrape: Scrape, name: str) -> float | None:
    values = [finite_or_none(sample.value) for sample in scrape.find(name)]
    finite = [value for value in values if value is not None]
    return sum(finite) if finite else None
