"""The alert signals: measured from two scrapes, or as PromQL for Prometheus.

An unattended alert check scrapes the target's metrics once per interval, and
``signal_values`` measures the signals of one scrape against the scrape before it.
The ratio and quantile signals cover the window between the two scrapes, so a
counter reset or process restart in between is handled by ``error_rate`` and
``latency_quantiles``. Counter signals are stored as the cumulative counter, and
alert evaluation takes their increase over the rule's window.

``signal_promql`` returns each signal's expression over the embedded target's metric
names for a Prometheus server: the expression of the signal's alert rules without
the comparison, and for a counter signal the cumulative counter, because alert
evaluation takes the increase itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from veerunbook.alert_promql import (
    BLOCKED_IPS_COUNTER,
    HEAP_LIMIT,
    HEAP_USED,
    blocked_ips_total,
    error_ratio,
    memory_ratio,
    p95_seconds,
    pool_ratio,
    target_up,
)
from veerunbook.alert_rules import Signal
from veerunbook.metrics_error_rate import error_rate
from veerunbook.metrics_gauges import database_pool, gauge
from veerunbook.metrics_latency import latency_quantiles
from veerunbook.metrics_scrape import Scrape, finite_or_none

__all__ = [
    "BLOCKED_IPS_COUNTER",
    "HEAP_LIMIT",
    "HEAP_USED",
    "signal_promql",
    "signal_values",
]

# A Prometheus duration such as 5s, 1m or 1h30m.
_DURATION = re.compile(r"(?:[0-9]+(?:ms|[smhdwy]))+")


def signal_values(before: Scrape | None, after: Scrape) -> dict[Signal, float | None]:
    """Return each signal's value at ``after`` but UP's, None where not measured.

    Without ``before`` the window signals (error rate, availability and p95) are
    None, because a single scrape only gives totals since the process started.
    Error rate and availability are also None when no user request was served in
    the window, like Prometheus's 0/0. The database connection-failure counter is
    always None: the target exports no such metric. ``Signal.UP`` is left out,
    because a parsed scrape cannot tell whether it failed: the caller that took the
    scrape sets it (``veerunbook.alert_check_scrape.measure_signals``).
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


def _promql_error_ratio(window: str, selector: str) -> str:
    return error_ratio(window, selector)


def _promql_availability(window: str, selector: str) -> str:
    return f"1 - ({error_ratio(window, selector)})"


def _promql_p95_ms(window: str, selector: str) -> str:
    # The histogram is in seconds and the signal in milliseconds.
    return f"{p95_seconds(window, selector)} * 1000"


def _promql_memory_ratio(window: str, selector: str) -> str:
    return memory_ratio(selector)


def _promql_pool_utilisation(window: str, selector: str) -> str:
    return pool_ratio(selector)


def _promql_blocked_ips(window: str, selector: str) -> str:
    return blocked_ips_total(selector)


def _promql_up(window: str, selector: str) -> str:
    return target_up(selector)


# Unlike the exported rules, the sums keep no job label, so that an expression
# returns one series when the selector matches one target.
# Signals without an entry have no metric on the target: the database connection
# failures, which the caller supplies.
_EXPRESSIONS: dict[Signal, Callable[[str, str], str]] = {
    Signal.ERROR_RATE: _promql_error_ratio,
    Signal.AVAILABILITY: _promql_availability,
    Signal.P95_MS: _promql_p95_ms,
    Signal.MEMORY_RATIO: _promql_memory_ratio,
    Signal.BLOCKED_IPS_PER_MIN: _promql_blocked_ips,
    Signal.POOL_UTILISATION: _promql_pool_utilisation,
    Signal.UP: _promql_up,
}


def signal_promql(
    signal: Signal, *, rate_window: str = "1m", selector: str = ""
) -> str | None:
    """Return the PromQL expression of ``signal``, or None if it has no metric.

    ``rate_window`` is the range of every ``rate()``, a Prometheus duration.
    ``selector`` contains extra label matchers for every vector selector, such as
    ``job="veefore"`` from ``job_matcher``. Raises ValueError for an invalid
    ``rate_window``.
    """
    if not _DURATION.fullmatch(rate_window):
        raise ValueError(
            f"invalid rate window {rate_window!r}: use a Prometheus duration such"
            " as 5s, 1m or 1h30m"
        )
    build = _EXPRESSIONS.get(Signal(signal))
    return None if build is None else build(rate_window, selector)
