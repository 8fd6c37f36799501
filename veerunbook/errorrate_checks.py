"""Checks that the high-error-rate steps journal for the metrics they read.

The alert lines come from the runbook's alerting section, shared with triage:

- 5xx rate: above 5 % for 2 min is the critical alert, above 1 % for 5 min the
  warning alert, above 0.5 % for 15 min the information alert.
- Heap above 85 % of its limit for 10 min is the warning alert.
- Pool use above 80 % for 15 min is the information alert.

A value above the critical alert line fails its check and one above another alert
line warns (see ``veerunbook.errorrate_text``). The security checks are in
``veerunbook.errorrate_security``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from veerunbook import metrics
from veerunbook.errorrate_recovery import CPU_BUSY_CORES, EVENT_LOOP_LAG_S
from veerunbook.errorrate_resources import Resources
from veerunbook.errorrate_text import rate_level
from veerunbook.metrics_sampling import check_scrape_count
from veerunbook.metrics_series import Sample
from veerunbook.text import counted, percent
from veerunbook.triage import MEMORY_FAIL, POOL_WARN

if TYPE_CHECKING:
    from veerunbook.record import RunContext

# The critical alert's duration: a shorter window cannot confirm it.
CRITICAL_ALERT_SECONDS = 120.0
RATE_EXPECTED = (
    "at most 0.5 %; alert lines: 0.5 % for 15 min (information),"
    " 1 % for 5 min (warning), 5 % for 2 min (critical)"
)


def check_scrapes(run: RunContext, series: list[Sample]) -> None:
    """Journal how many scrapes succeeded, as one check, and any format defects."""
    check_scrape_count(run, series)
    defective = [s.scrape for s in series if s.scrape is not None and s.scrape.warnings]
    if defective:
        warnings = defective[0].warnings
        run.check(
            "metrics exposition format",
            "warn",
            observed=len(defective),
            unit="scrapes with defects",
            expected=0,
            evidence=[warning.to_dict() for warning in warnings[:20]],
            summary=warnings[0].message,
        )


def check_error_rate(run: RunContext, window: metrics.ErrorRate) -> None:
    """Journal the user 5xx rate over the window, probe traffic kept apart."""
    rate = window.rate
    seconds = window.window_seconds or 0.0
    if rate is None:
        status, finding = "skip", "no user requests"
    else:
        status, level = rate_level(rate)
        finding = f"{percent(rate, 2)} of {window.requests:.0f} user requests, {level}"
    summary = (
        f"{finding}; probe traffic: {window.probe_errors:.0f} 5xx of"
        f" {window.probe_requests:.0f} requests, counted apart"
    )
    if seconds < CRITICAL_ALERT_SECONDS:
        summary += (
            f"; the {seconds:.0f} s window is shorter than the shortest alert"
            " duration (2 min), so it cannot confirm an alert"
        )
    run.check(
        "5xx error rate",
        status,
        observed=None if rate is None else round(rate * 100, 3),
        unit="%",
        expected=RATE_EXPECTED,
        evidence={
            "requests": window.requests,
            "errors": window.errors,
            "probe_requests": window.probe_requests,
            "probe_errors": window.probe_errors,
            "window_seconds": window.window_seconds,
            "notes": window.notes,
            "routes": [item.to_dict() for item in window.routes if not item.probe][:10],
        },
        summary=" ".join([summary, *(window.notes if window.partial else [])]),
    )


def check_resources(run: RunContext, resources: Resources) -> None:
    """Journal heap, pool, CPU and event loop lag against their limits."""
    heap = resources.heap_fraction
    if heap is None:
        run.check("heap memory", "skip", summary="no heap limit gauge in the metrics")
    else:
        above = heap > MEMORY_FAIL
        run.check(
            "heap memory",
            "warn" if above else "pass",
            observed=round(heap * 100, 1),
            unit="%",
            expected="at most 85 % of the heap limit (warning alert line, 10 min)",
            summary=f"heap {percent(heap, 0)} of its limit"
            + (", above the warning alert line (85 % for 10 min)" if above else ""),
        )
    _check_pool(run, resources.pool)
    _check_optional(run, "CPU", resources.cpu_cores, CPU_BUSY_CORES, "cores")
    lag = resources.event_loop_lag_seconds
    lag_ms = None if lag is None else lag * 1000
    _check_optional(run, "event loop lag", lag_ms, EVENT_LOOP_LAG_S * 1000, "ms")


def _check_pool(run: RunContext, pool: metrics.PoolUsage | None) -> None:
    if pool is None or pool.utilisation is None:
        run.check("connection pool", "skip", summary="no pool gauges in the metrics")
        return
    waiting = pool.waiting or 0
    status = "warn" if pool.utilisation > POOL_WARN else "pass"
    if pool.utilisation >= 1.0 and waiting > 0:
        status = "fail"
    summary = (
        f"{pool.active:g} of {counted(pool.max or 0, 'connection')} in use,"
        f" {counted(waiting, 'request')} waiting"
    )
    if pool.utilisation > POOL_WARN:
        summary += ", above the information alert line (80 % for 15 min)"
    run.check(
        "connection pool",
        status,
        observed=round(pool.utilisation * 100, 1),
        unit="%",
        expected="at most 80 % (information alert line, 15 min)",
        evidence=pool.to_dict(),
        summary=summary,
    )


def _check_optional(
    run: RunContext, name: str, value: float | None, limit: float, unit: str
) -> None:
    if value is None:
        run.check(name, "skip", summary=f"the metrics export no {name} figure")
        return
    run.check(
        name,
        "warn" if value >= limit else "pass",
        observed=round(value, 3),
        unit=unit,
        expected=f"under {limit:g} {unit} (an estimate; the runbook gives none)",
        summary=f"{name} {value:.2f} {unit}",
    )
