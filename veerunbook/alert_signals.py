"""The alert signals: measured from two scrapes, or as PromQL for Prometheus.

An unattended alert check scrapes the target's metrics once per interval, and
``signal_values`` measures the signals of one scrape against the scrape before it.
The ratio and quantile signals cover the window between the two scrapes, so a
counter reset or process restart in between is handled by ``error_rate`` and
``latency_quantiles``. A counter signal is the counter's increase between the two
scrapes, and alert evaluation sums those increases over the rule's window.

``signal_promql`` returns each signal's expression over the embedded target's metric
names for a Prometheus server. That is the expression of the signal's alert rules
without the comparison, but for a counter signal its increase over one step of the
range query, so that both sources store the same quantity.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from veerunbook.alert_promql import (
    BLOCKED_IPS_COUNTER,
    HEAP_LIMIT,
    HEAP_USED,
    counter_step_increase,
    error_ratio,
    memory_ratio,
    p95_seconds,
    pool_ratio,
    target_up,
)
from veerunbook.alert_rules import COUNTER_SIGNALS, Signal
from veerunbook.metrics_error_rate import error_rate
from veerunbook.metrics_gauges import database_pool, gauge
from veerunbook.metrics_latency import latency_quantiles
from veerunbook.metrics_scrape import Scrape, finite_or_none
from veerunbook.metrics_window import detect_restart, increase, series_key

__all__ = [
    "BLOCKED_IPS_COUNTER",
    "HEAP_LIMIT",
    "HEAP_USED",
    "counter_increase",
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
    the window, like Prometheus's 0/0. The blocked-IP signal is the counter's
    increase since ``before`` (see ``counter_increase``). The database
    connection-failure counter is always None: the target exports no such metric.
    ``Signal.UP`` is left out, because a parsed scrape cannot tell whether it
    failed: the caller that took the scrape sets it
    (``veerunbook.alert_check_scrape.measure_signals``).
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
        Signal.BLOCKED_IPS_PER_MIN: counter_increase(
            before, after, BLOCKED_IPS_COUNTER
        ),
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


def counter_increase(before: Scrape | None, after: Scrape, name: str) -> float | None:
    """Return the increase of counter ``name`` from ``before`` to ``after``.

    Each series, identified by its labels, gets the increase of
    ``veerunbook.metrics_window.increase``, and the increases are summed, as
    Prometheus sums per-series ``increase()`` results. A series that decreased was
    reset and counts its new value. A series absent from ``before`` counts from its
    first sample and contributes 0, as Prometheus's ``increase()`` gives nothing
    for a series' first sample. Otherwise a relabelled series, or one that returns
    after it was missing from a scrape, would count its whole value as new. After a
    process restart (``veerunbook.metrics_window.detect_restart``) every series
    counts from 0, a new one too. A series absent from ``after`` contributes
    nothing. In each scrape a duplicate series keeps its first sample, and a series
    whose sample is NaN or infinite is left out. Returns None without ``before``,
    when ``after`` has no finite series of ``name``, or when the sum is not finite.
    """
    if before is None:
        return None
    earlier = _first_series(before, name)
    later = _first_series(after, name)
    if not later:
        return None
    restarted = detect_restart(before, after) is not None
    total = 0.0
    for key, value in later.items():
        previous = earlier.get(key)
        if previous is None and not restarted:
            continue
        count, _ = increase(previous, value, restarted)
        total += count
    return finite_or_none(total)


def _first_series(
    scrape: Scrape, name: str
) -> dict[tuple[tuple[str, str], ...], float]:
    """Return each series' first value of ``name`` by label set, if it is finite."""
    values: dict[tuple[tuple[str, str], ...], float | None] = {}
    for sample in scrape.find(name):
        values.setdefault(series_key(sample.labels), finite_or_none(sample.value))
    return {key: value for key, value in values.items() if value is not None}


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


def _promql_blocked_ips(step: str, selector: str) -> str:
    return counter_step_increase(BLOCKED_IPS_COUNTER, step, selector)


def _promql_up(window: str, selector: str) -> str:
    return target_up(selector)


# Each builder takes the rate window, or a counter signal's step, and the selector.
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
    signal: Signal, *, rate_window: str = "1m", selector: str = "", step: str = "1m"
) -> str | None:
    """Return the PromQL expression of ``signal``, or None if it has no metric.

    ``rate_window`` is the range of every ``rate()``, a Prometheus duration.
    ``selector`` contains extra label matchers for every vector selector, such as
    ``job="veefore"`` from ``job_matcher``. ``step`` is the span of a counter
    signal's increase, the step of the range query that reads it, so that each
    value covers the span since the step before it. Raises ValueError for an
    invalid ``rate_window`` or ``step``.
    """
    for name, duration in (("rate window", rate_window), ("step", step)):
        if not _DURATION.fullmatch(duration):
            raise ValueError(
                f"invalid {name} {duration!r}: use a Prometheus duration such"
                " as 5s, 1m or 1h30m"
            )
    build = _EXPRESSIONS.get(Signal(signal))
    if build is None:
        return None
    return build(step if signal in COUNTER_SIGNALS else rate_window, selector)
