"""The metrics window of triage: two scrapes of ``/metrics`` and the checks on them.

``open_window()`` takes the first scrape and ``close_window()`` the second, once
``window_seconds`` have passed since the first, so other steps can run in between.
Only steps whose requests go to routes that the window counts apart from user
traffic (``metrics.DEFAULT_EXCLUDE``: ``/metrics`` and the health routes, which
include the logs endpoint ``/health/logs``) belong in between. A request to a user
route, such as the security audit, the deployment history or a user flow, would
count in the window's 5xx rate and latency.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from veerunbook import metrics
from veerunbook.text import percent
from veerunbook.triage_tables import Nothing, frame, route_table, slowest_route

if TYPE_CHECKING:
    import pandas as pd

    from veerunbook.record import RunContext
    from veerunbook.session import Session

# Thresholds for the checks, from the runbook's alerting section.
ERROR_RATE_FAIL = 0.05  # critical alert: 5xx above 5 %
ERROR_RATE_WARN = 0.005  # information alert: 5xx above 0.5 %
P95_FAIL_S = 2.0  # warning alert: p95 above 2000 ms
P95_WARN_S = 1.5  # information alert: p95 above 1500 ms
POOL_WARN = 0.80  # information alert: pool utilisation above 80 %
MEMORY_FAIL = 0.85  # warning alert: memory above 85 %


@dataclass
class MetricsWindow:
    """The two scrapes of the metrics endpoint and what was computed from them."""

    before: metrics.Scrape | None = None
    after: metrics.Scrape | None = None
    errors: metrics.ErrorRate | None = None
    latency: metrics.LatencyReport | None = None
    pool: metrics.PoolUsage | None = None
    memory: metrics.ProcessMemory | None = None
    problem: str | None = None
    # time.monotonic() when the first scrape finished, or None until the window opens.
    opened: float | None = None


def open_window(session: Session, window: MetricsWindow) -> str:
    """Take the first scrape, which opens ``window``; return a line describing it."""
    window.before = _scrape(session, "metrics (first scrape)")
    window.opened = time.monotonic()
    if window.before is None:
        window.problem = "the metrics endpoint gave no usable exposition"
        return "the first scrape failed: no error rate or latency in this run"
    return f"window opened by the first scrape at {datetime.now(UTC):%H:%M:%S} UTC"


def close_window(
    session: Session,
    window: MetricsWindow,
    window_seconds: float,
    progress: Callable[[str], None] | None,
    while_waiting: Callable[[], object] | None = None,
) -> pd.DataFrame | Nothing:
    """Take the second scrape ``window_seconds`` after the first, then check the rates.

    Only the rest of the window is waited for. ``while_waiting`` runs once at the
    start of that rest, and only when some of it is left, so it can lengthen the
    window but never shorten it. Raises ValueError when the window was never opened.
    """
    if window.opened is None:
        raise ValueError("the metrics window is not open: call open_window() first.")
    if window.before is None:
        return frame([], "no metrics: the endpoint gave no usable exposition")
    if while_waiting is not None and _left(window, window_seconds) > 0:
        while_waiting()
    _wait(_left(window, window_seconds), progress)
    window.after = _scrape(session, "metrics (second scrape)")
    if window.after is None:
        window.problem = "the second scrape failed; rates are cumulative"
        window.after, window.before = window.before, None

    window.errors = metrics.error_rate(window.before, window.after)
    window.latency = metrics.latency_quantiles(window.before, window.after)
    window.pool = metrics.database_pool(window.after)
    window.memory = metrics.process_memory(window.after)
    run = session.run
    _check_error_rate(run, window.errors)
    _check_latency(run, window.latency)
    _check_pool(run, window.pool)
    _check_memory(run, window.after)
    return route_table(window.errors, window.latency)


def _scrape(session: Session, name: str) -> metrics.Scrape | None:
    result = session.probe("metrics", name=name, expect="metrics")
    if result.status == "error" or result.http_status != 200:
        return None
    scrape = metrics.parse_exposition(result.text, scraped_at=time.time())
    if scrape.warnings:
        session.run.check(
            f"{name}: exposition format",
            "warn",
            observed=len(scrape.warnings),
            unit="defects",
            expected=0,
            evidence=[warning.to_dict() for warning in scrape.warnings[:20]],
            summary=scrape.warnings[0].message,
        )
    return scrape


def _check_error_rate(run: RunContext, errors: metrics.ErrorRate) -> None:
    rate = errors.rate
    status = "skip" if rate is None else _grade(rate, ERROR_RATE_FAIL, ERROR_RATE_WARN)
    shown = "no user requests" if rate is None else percent(rate, 2)
    run.check(
        "5xx error rate",
        status,
        observed=None if rate is None else round(rate * 100, 3),
        unit="%",
        expected="<= 5 % (critical alert), <= 0.5 % (information alert)",
        evidence={"requests": errors.requests, "errors": errors.errors},
        summary=f"{shown} of {errors.requests:.0f} requests; "
        + "; ".join(errors.notes),
    )


def _check_latency(run: RunContext, latency: metrics.LatencyReport) -> None:
    worst = slowest_route(latency)
    if worst is None:
        run.check("p95 latency", "skip", summary="no requests timed")
        return
    route, quantile = worst
    assert quantile.value is not None
    status = _grade(quantile.value, P95_FAIL_S, P95_WARN_S)
    prefix = ">= " if quantile.lower_bound else ""
    run.check(
        "p95 latency",
        status,
        observed=round(quantile.value * 1000, 1),
        unit="ms",
        expected="<= 2000 ms (warning alert), <= 1500 ms (information alert)",
        summary=f"slowest route {route}: p95 {prefix}{quantile.value * 1000:.0f} ms",
    )


def _check_pool(run: RunContext, pool: metrics.PoolUsage) -> None:
    if pool.utilisation is None:
        run.check("connection pool", "skip", summary="no pool gauges in the metrics")
        return
    # A full pool with requests queueing is an outage in the making, not a hint.
    waiting = pool.waiting or 0
    status = "warn" if pool.utilisation > POOL_WARN else "pass"
    if pool.utilisation >= 1.0 and waiting > 0:
        status = "fail"
    run.check(
        "connection pool",
        status,
        observed=round(pool.utilisation * 100, 1),
        unit="%",
        expected="<= 80 % (information alert)",
        evidence=pool.to_dict(),
        summary=f"{pool.active:g} of {pool.max:g} connections in use, "
        f"{waiting:g} requests waiting",
    )


def _check_memory(run: RunContext, scrape: metrics.Scrape) -> None:
    from veerunbook.triage_signals import heap_fraction

    fraction = heap_fraction(scrape)
    if fraction is None:
        run.check("heap memory", "skip", summary="no heap limit gauge in the metrics")
        return
    run.check(
        "heap memory",
        "fail" if fraction > MEMORY_FAIL else "pass",
        observed=round(fraction * 100, 1),
        unit="%",
        expected="<= 85 % of the heap limit (warning alert)",
        summary=f"heap {percent(fraction)} of its limit",
    )


def _grade(value: float, fail_above: float, warn_above: float) -> str:
    if value > fail_above:
        return "fail"
    return "warn" if value > warn_above else "pass"


def _left(window: MetricsWindow, window_seconds: float) -> float:
    """Return the seconds left until ``window_seconds`` after the first scrape."""
    assert window.opened is not None
    return window.opened + window_seconds - time.monotonic()


def _wait(seconds: float, progress: Callable[[str], None] | None) -> None:
    """Sleep ``seconds`` in steps, reporting the time left about every 5 seconds."""
    deadline = time.monotonic() + max(0.0, seconds)
    while (left := deadline - time.monotonic()) > 0:
        if progress is not None:
            progress(f"waiting for the second scrape: {left:.0f} s left")
        time.sleep(min(5.0, left))
