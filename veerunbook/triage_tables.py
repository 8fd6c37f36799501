"""Tables that the triage notebook shows: routes, probes, error groups.

A step with nothing to show returns ``Nothing``, which a notebook renders as one
line instead of an empty table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from veerunbook import metrics
from veerunbook.probe import ProbeResult

if TYPE_CHECKING:
    import pandas as pd

    from veerunbook.logs import ErrorGroup


def slowest_route(
    latency: metrics.LatencyReport,
) -> tuple[str, metrics.Quantile] | None:
    """Return the user route with the highest p95 and that estimate."""
    best: tuple[str, metrics.Quantile] | None = None
    for stats in latency.series:
        quantile = stats.quantile(0.95)
        if stats.probe or quantile is None or quantile.value is None or not stats.count:
            continue
        if best is None or quantile.value > (best[1].value or 0.0):
            best = (f"{stats.method or ''} {stats.route or ''}".strip(), quantile)
    return best


def route_table(
    errors: metrics.ErrorRate, latency: metrics.LatencyReport
) -> pd.DataFrame | Nothing:
    """Tabulate requests, 5xx and p95 per user route, worst error rate first."""
    rows: list[dict[str, Any]] = []
    for route in errors.routes:
        if route.probe or route.route is None:
            continue
        stats = latency.route(route.route, route.method)
        p95 = stats.quantile(0.95) if stats else None
        rows.append(
            {
                "route": f"{route.method or ''} {route.route}".strip(),
                "requests": route.requests,
                "5xx": route.errors,
                "5xx %": None if route.rate is None else round(route.rate * 100, 2),
                "p95 ms": _quantile_ms(p95),
                "p95 lower bound": bool(p95 and p95.lower_bound),
            }
        )
    rows.sort(key=lambda row: -float(row["5xx %"] or 0.0))
    return frame(rows)


def _quantile_ms(quantile: metrics.Quantile | None) -> float | None:
    if quantile is None or quantile.value is None:
        return None
    return round(quantile.value * 1000, 1)


def probe_row(result: ProbeResult) -> dict[str, Any]:
    """Return a table row for a probe: status, HTTP status, latency and reason."""
    verdict = result.health.overall if result.health else None
    return {
        "check": result.name,
        "status": result.status,
        "HTTP": result.http_status,
        "latency ms": result.latency_ms,
        "reported": verdict,
        "reason": result.error or "; ".join(result.reasons[:2]),
    }


def group_row(group: ErrorGroup) -> dict[str, Any]:
    """Return a table row for an error group."""
    return {
        "count": group.count,
        "signature": group.signature,
        "first frame": group.first_frame,
        "first seen": group.first_seen,
        "last seen": group.last_seen,
        "correlation ids": ", ".join(group.correlation_ids[:3]),
    }


def frame(
    rows: Sequence[Mapping[str, Any]], empty: str = "none found"
) -> pd.DataFrame | Nothing:
    """Return the rows as a DataFrame, or a one-line message when there are none."""
    import pandas as pd

    if not rows:
        return Nothing(empty)
    return pd.DataFrame(list(rows))


@dataclass(frozen=True)
class Nothing:
    """An empty result that a notebook shows as one line instead of an empty table."""

    message: str
    empty: bool = True

    def __repr__(self) -> str:
        return self.message

    def _repr_markdown_(self) -> str:
        return f"*{self.message}*"
