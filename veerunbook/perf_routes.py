"""API response times per route: p50, p95 and p99 from histogram deltas.

The quantiles come from :func:`veerunbook.metrics.latency_quantiles`, which
interpolates linearly within a bucket as Prometheus's ``histogram_quantile`` does and
handles histograms without a ``+Inf`` bucket. Health probes and scrapes
(``metrics.DEFAULT_EXCLUDE``) are kept apart from user traffic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from veerunbook import metrics
from veerunbook.triage import P95_FAIL_S, P95_WARN_S

if TYPE_CHECKING:
    import pandas as pd

    from veerunbook.metrics_series import Sample

QUANTILES = (0.5, 0.95, 0.99)

# The alert lines a p95 can be above, from the runbook's alerting section.
WARNING_ALERT = "warning alert line (p95 2000 ms for 5 min)"
INFORMATION_ALERT = "information alert line (p95 1500 ms for 15 min)"

TIMELINE_COLUMNS = ("end", "seconds", "requests", "p50 (ms)", "p95 (ms)", "p99 (ms)")


@dataclass(frozen=True)
class RouteLatency:
    """Latency quantiles of one route over the window, in milliseconds.

    A quantile flagged in ``at_least`` fell above the largest finite bucket, so
    the true value is at least the one shown. ``time_share`` is the route's share
    of the time spent on all user requests, from the histograms' ``_sum``.
    """

    route: str
    probe: bool
    requests: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    at_least: tuple[str, ...]
    alert: str
    time_share: float | None = None

    @property
    def is_read(self) -> bool:
        """Whether the route is a GET, which a cache can serve."""
        return self.route.startswith("GET ")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def alert_level(quantile: metrics.Quantile | None) -> str:
    """Return the alert line that ``quantile`` is above, or "" when it is above none.

    Returns "unknown" without an estimate, and for a lower bound under 1500 ms,
    which cannot rule the alerts out.
    """
    if quantile is None or quantile.value is None:
        return "unknown"
    if quantile.exceeds(P95_FAIL_S):
        return WARNING_ALERT
    if quantile.exceeds(P95_WARN_S):
        return INFORMATION_ALERT
    if quantile.exceeds(P95_WARN_S) is None:
        return "unknown"
    return ""


def route_latencies(report: metrics.LatencyReport) -> list[RouteLatency]:
    """Return one entry per route with requests: user routes slowest p95 first.

    Probe and scrape routes follow the user routes, in the same order.
    """
    user_time = sum(
        stats.sum or 0.0 for stats in report.series if not stats.probe and stats.count
    )
    rows = [
        _route_latency(stats, user_time) for stats in report.series if stats.count > 0
    ]
    rows.sort(key=lambda row: (row.probe, -(row.p95_ms or 0.0), row.route))
    return rows


def _route_latency(stats: metrics.HistogramStats, user_time: float) -> RouteLatency:
    quantiles = [stats.quantile(q) for q in QUANTILES]
    at_least = tuple(
        f"p{round(q * 100)}"
        for q, found in zip(QUANTILES, quantiles, strict=True)
        if found is not None and found.lower_bound
    )
    share = None
    if not stats.probe and stats.sum is not None and user_time > 0:
        share = stats.sum / user_time
    return RouteLatency(
        route=f"{stats.method or ''} {stats.route or '(no route label)'}".strip(),
        probe=stats.probe,
        requests=stats.count,
        p50_ms=to_ms(quantiles[0]),
        p95_ms=to_ms(quantiles[1]),
        p99_ms=to_ms(quantiles[2]),
        mean_ms=None if stats.mean is None else round(stats.mean * 1000, 1),
        at_least=at_least,
        alert=alert_level(quantiles[1]),
        time_share=share,
    )


def to_ms(quantile: metrics.Quantile | None) -> float | None:
    """Return a quantile estimate in milliseconds, rounded to 0.1 ms."""
    if quantile is None or quantile.value is None:
        return None
    return round(quantile.value * 1000, 1)


def latency_rows(routes: list[RouteLatency]) -> list[dict[str, Any]]:
    """Return the table rows of ``routes``, in their order."""
    return [
        {
            "route": route.route,
            "traffic": "probe" if route.probe else "user",
            "requests": route.requests,
            "p50 (ms)": route.p50_ms,
            "p95 (ms)": route.p95_ms,
            "p99 (ms)": route.p99_ms,
            "mean (ms)": route.mean_ms,
            "above largest bucket": ", ".join(route.at_least),
            "share of user time (%)": (
                None if route.time_share is None else round(route.time_share * 100, 1)
            ),
            "p95 above": route.alert,
        }
        for route in routes
    ]


def latency_timeline(
    series: list[Sample], *, exclude: str | None = metrics.DEFAULT_EXCLUDE
) -> pd.DataFrame:
    """Tabulate p50, p95 and p99 of user traffic for each interval of ``series``.

    One row per pair of consecutive successful scrapes: ``end`` (when the later
    scrape finished), ``seconds``, user ``requests`` and the quantiles in ms (None
    without requests). The frame has these columns even without rows.
    """
    import pandas as pd

    from veerunbook.metrics_series import intervals

    rows = []
    for before, after in intervals(series):
        assert before.scrape is not None and after.scrape is not None
        report = metrics.latency_quantiles(
            before.scrape, after.scrape, quantiles=QUANTILES, exclude=exclude
        )
        rows.append(_timeline_row(after.at, report))
    return pd.DataFrame(rows, columns=list(TIMELINE_COLUMNS))


def _timeline_row(end: datetime, report: metrics.LatencyReport) -> dict[str, Any]:
    aggregate = report.aggregate
    counted = aggregate is not None and aggregate.count > 0
    values = {
        f"p{round(q * 100)} (ms)": (
            to_ms(aggregate.quantile(q)) if counted and aggregate else None
        )
        for q in QUANTILES
    }
    return {
        "end": end,
        "seconds": report.window_seconds,
        "requests": aggregate.count if aggregate is not None else 0.0,
        **values,
    }
