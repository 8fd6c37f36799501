"""Checks that the performance-degradation steps journal: scrapes, latency, vitals.

Each function journals one check through a run. Latencies are graded against the
runbook's p95 alert lines: above 2000 ms for 5 min (warning alert) fails, above
1500 ms for 15 min (information alert) warns.
"""

from __future__ import annotations

import math
from typing import Any

from veerunbook import metrics
from veerunbook.perf_routes import (
    INFORMATION_ALERT,
    WARNING_ALERT,
    RouteLatency,
    alert_level,
    to_ms,
)
from veerunbook.record import RunContext
from veerunbook.text import counted
from veerunbook.webvitals import Vital

# The runbook's p95 alerts fire after 5 min (warning) and 15 min (information).
ALERT_SECONDS = 300.0
ALERT_STATUS = {WARNING_ALERT: "fail", INFORMATION_ALERT: "warn", "": "pass"}
# Bucket samples journaled per scrape: 40 routes of 25 buckets each.
_BUCKETS_KEPT = 1000
P95_EXPECTED = (
    "<= 2000 ms (warning alert line, 5 min), <= 1500 ms (information alert line,"
    " 15 min)"
)


def check_user_p95(
    run: RunContext,
    report: metrics.LatencyReport,
    first: metrics.Scrape,
    last: metrics.Scrape,
) -> None:
    """Journal the p95 of all user requests in the window against the alert lines.

    The evidence keeps the histogram buckets of the window's first and last scrape,
    from which the quantiles can be recomputed.
    """
    aggregate = report.aggregate
    p95 = aggregate.quantile(0.95) if aggregate and aggregate.count else None
    level = alert_level(p95)
    run.check(
        "user API p95",
        ALERT_STATUS.get(level, "skip"),
        observed=to_ms(p95),
        unit="ms",
        expected=P95_EXPECTED,
        evidence={
            "requests": aggregate.count if aggregate else 0,
            "window_seconds": report.window_seconds,
            "notes": report.notes,
            "buckets_first": _buckets(first, report.metric),
            "buckets_last": _buckets(last, report.metric),
        },
        summary=_p95_summary("all user routes", p95, level, report),
    )


def check_slowest_route(run: RunContext, routes: list[RouteLatency]) -> None:
    """Journal the p95 of the slowest user route and how many routes are slow."""
    users = [route for route in routes if not route.probe]
    if not users:
        run.check("slowest route p95", "skip", summary="no user request in the window")
        return
    slowest = users[0]
    above = [route.route for route in users if route.alert not in ("", "unknown")]
    run.check(
        "slowest route p95",
        ALERT_STATUS.get(slowest.alert, "skip"),
        observed=slowest.p95_ms,
        unit="ms",
        expected=P95_EXPECTED,
        evidence={"route": slowest.to_dict(), "routes_above_1500_ms": above},
        summary=f"{slowest.route}: p95 {_shown(slowest.p95_ms, slowest.at_least)};"
        f" {len(above)} of {counted(len(users), 'user route')} above 1500 ms",
    )


def check_vital(run: RunContext, vital: Vital, measured: float | None) -> None:
    """Journal one web vital graded against web.dev's limits.

    A figure that the audit reports as resting on no measurement (``measured`` 0)
    is skipped, not graded.
    """
    limit = vital.limit
    unit = f" {limit.unit}" if limit.unit else ""
    status = vital.check_status
    if vital.value is None:
        summary = (
            f"{limit.name} is not in the response"
            if vital.problem is None
            else f"{limit.name} in {vital.key!r} is invalid: {vital.problem}"
        )
    else:
        summary = f"{limit.name} {vital.value:g}{unit}: {vital.rating}"
    if measured == 0 and vital.value is not None:
        status = "skip"
        summary += ", but the audit's sample size is 0, so it is not graded"
    run.check(
        f"web vital {limit.name}",
        status,
        observed=vital.value,
        unit=limit.unit or None,
        expected=f"<= {limit.good:g}{unit} good, > {limit.poor:g}{unit} poor",
        evidence={"field": vital.key, "rating": vital.rating, "sample_size": measured},
        summary=summary,
    )


def _buckets(scrape: metrics.Scrape, metric: str) -> list[dict[str, Any]]:
    return [
        {"labels": sample.labels, "value": _json_number(sample.value)}
        for sample in scrape.find(f"{metric}_bucket")
    ][:_BUCKETS_KEPT]


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def _p95_summary(
    scope: str,
    p95: metrics.Quantile | None,
    level: str,
    report: metrics.LatencyReport,
) -> str:
    if p95 is None or p95.value is None:
        return f"{scope}: no p95 (no timed request in the window)"
    prefix = "at least " if p95.lower_bound else ""
    text = f"{scope}: p95 {prefix}{p95.value * 1000:.0f} ms"
    if level in (WARNING_ALERT, INFORMATION_ALERT):
        text += f", above the {level}"
    seconds = report.window_seconds
    if seconds is not None and seconds < ALERT_SECONDS:
        text += (
            f". The window is {seconds:.0f} s, shorter than the alert lines' 5 min"
            " and 15 min, so their duration condition is not confirmed"
        )
    return text


def _shown(value: float | None, at_least: tuple[str, ...]) -> str:
    if value is None:
        return "unknown"
    prefix = "at least " if "p95" in at_least else ""
    return f"{prefix}{value:.0f} ms"
