"""Tables that the high-error-rate notebook shows: error groups, routes, resources.

A step with nothing to show returns ``Nothing`` (from ``veerunbook.triage_tables``),
which a notebook renders as one line instead of an empty table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from veerunbook import metrics
from veerunbook.changes import Change
from veerunbook.errorrate_evidence import (
    DeployAlignment,
    application_frame,
    error_kind,
)
from veerunbook.errorrate_resources import Resources
from veerunbook.logs import ErrorGroup
from veerunbook.logs_model import format_time
from veerunbook.text import whole
from veerunbook.triage_tables import Nothing, frame

if TYPE_CHECKING:
    import pandas as pd

    from veerunbook.errorrate_security import BreachEvent
    from veerunbook.security import SecuritySummary


def group_rows(groups: list[ErrorGroup]) -> pd.DataFrame | Nothing:
    """Tabulate error groups: count, kind, signature, where, first and last seen."""
    rows = [
        {
            "count": group.count,
            "kind": error_kind(group),
            "signature": group.signature,
            "where": application_frame(group),
            "first seen": format_time(group.first_seen),
            "last seen": format_time(group.last_seen),
            "routes": ", ".join(group.routes),
            "correlation ids": ", ".join(group.correlation_ids[:3]),
        }
        for group in groups
    ]
    return frame(rows, "no error entries in the log window")


def route_rows(rate: metrics.ErrorRate) -> pd.DataFrame | Nothing:
    """Tabulate the user and probe totals, then each route, worst 5xx rate first.

    Probe traffic (health checks, scrapes) is listed apart and never counts in the
    user rate.
    """
    rows = [
        _row("user", "(all user routes)", rate.requests, rate.errors),
        _row("probe", "(all probe routes)", rate.probe_requests, rate.probe_errors),
    ]
    routes = sorted(
        rate.routes,
        key=lambda item: (item.probe, -(item.rate or 0.0), -item.requests),
    )
    for item in routes:
        if not item.requests:
            continue
        name = f"{item.method or ''} {item.route or '(no route label)'}".strip()
        traffic = "probe" if item.probe else "user"
        rows.append(_row(traffic, name, item.requests, item.errors))
    return frame(rows)


def _row(traffic: str, route: str, requests: float, errors: float) -> dict[str, Any]:
    share = round(errors / requests * 100, 2) if requests else None
    return {
        "traffic": traffic,
        "route": route,
        "requests": whole(requests),
        "5xx": whole(errors),
        "5xx (%)": share,
    }


def resource_rows(resources: Resources) -> pd.DataFrame | Nothing:
    """Tabulate the resource figures that the target exports."""
    rows: list[dict[str, Any]] = []
    if resources.heap_fraction is not None:
        rows.append(
            _resource(
                "heap used / heap limit",
                resources.heap_fraction * 100,
                "%",
                "85 % (warning alert line)",
            )
        )
    if resources.resident_bytes is not None:
        rows.append(
            _resource("resident memory", resources.resident_bytes / 2**20, "MiB", "-")
        )
    pool = resources.pool
    if pool is not None and pool.utilisation is not None:
        rows.append(
            _resource(
                "connection pool in use",
                pool.utilisation * 100,
                "%",
                "80 % (information alert line)",
            )
        )
    if pool is not None and pool.waiting is not None:
        rows.append(
            _resource(
                "requests waiting for a connection", pool.waiting, "requests", "0"
            )
        )
    if resources.cpu_cores is not None:
        rows.append(_resource("CPU", resources.cpu_cores, "cores", "0.9 cores"))
    if resources.event_loop_lag_seconds is not None:
        rows.append(
            _resource(
                "event loop lag",
                resources.event_loop_lag_seconds * 1000,
                "ms",
                "100 ms",
            )
        )
    return frame(rows, "the metrics export no memory, pool, CPU or event loop figures")


def _resource(name: str, value: float, unit: str, limit: str) -> dict[str, Any]:
    return {"resource": name, "value": round(value, 2), "unit": unit, "limit": limit}


def security_rows(
    summary: SecuritySummary,
    breaches: list[BreachEvent],
    failed_logins: int,
    sources: int,
) -> pd.DataFrame:
    """Tabulate breach signs, the rate limiter, blocked addresses and logins."""
    import pandas as pd

    limits = summary.rate_limiting
    enabled = limits.get("enabled")
    state = "unknown"
    if enabled is not None:
        state = "on" if enabled else "off"
    signs = [
        event.describe() + (f": {event.detail}" if event.detail else "")
        for event in breaches[:3]
    ]
    rows = [
        ("breach signs", "; ".join(signs) or "none"),
        ("rate limiter", state),
        ("limit", _limit(limits)),
        ("limiter hits", limits.get("hits", "unknown")),
        ("blocked IPs", len(summary.blocked_ips)),
        ("blocked in the last minute", summary.blocked_last_minute),
        ("failed logins in the last minute", failed_logins),
        ("their source addresses", sources),
        ("high-severity events", summary.high_events),
    ]
    return pd.DataFrame(
        [(name, str(value)) for name, value in rows], columns=["item", "value"]
    )


def _limit(limits: dict[str, Any]) -> str:
    limit, window = limits.get("limit"), limits.get("windowSeconds")
    if limit is None:
        return "unknown"
    return f"{limit} per {window} s" if window is not None else str(limit)


def change_rows(
    changes: list[Change], alignment: DeployAlignment, empty: str
) -> pd.DataFrame | Nothing:
    """Tabulate the changes with their minutes before the start of the errors.

    ``empty`` is the reason shown when there is no change.
    """
    rows = []
    for change in changes:
        row = change.to_row()
        start = alignment.start
        minutes = None
        if start is not None and change.time is not None:
            minutes = round((start - change.time).total_seconds() / 60, 1)
        row["before the errors (min)"] = minutes
        row["last before the errors"] = change is alignment.deployment
        rows.append(row)
    return frame(rows, empty)
