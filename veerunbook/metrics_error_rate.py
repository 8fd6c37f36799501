"""The 5xx error rate of an HTTP request counter over the window between two scrapes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from veerunbook.metrics_scrape import Scrape, finite_or_none
from veerunbook.metrics_window import (
    DEFAULT_EXCLUDE,
    ROUTE_LABELS,
    STATUS_LABELS,
    compile_exclude,
    increase,
    is_excluded,
    json_safe,
    label_value,
    open_window,
    series_key,
)
from veerunbook.text import counted


@dataclass
class RouteRate:
    """Requests and 5xx responses of one method and route within the window."""

    method: str | None
    route: str | None
    requests: float
    errors: float
    probe: bool

    @property
    def rate(self) -> float | None:
        """Errors per request as a fraction, or None without requests."""
        return self.errors / self.requests if self.requests else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": self.rate}


@dataclass
class ErrorRate:
    """The 5xx error rate over a window, without probe traffic.

    Requests to excluded routes (scrapers, health probes) are left out of ``requests``
    and ``errors`` and counted in ``probe_requests`` and ``probe_errors``. ``routes``
    lists every route, with ``probe`` set on the excluded ones. ``partial`` means that
    the counts miss requests, and ``notes`` gives the reasons.
    """

    metric: str
    requests: float
    errors: float
    probe_requests: float
    probe_errors: float
    routes: list[RouteRate]
    window_seconds: float | None
    restart_detected: bool
    reset_detected: bool
    partial: bool
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        """Errors per request as a fraction, or None without requests."""
        return self.errors / self.requests if self.requests else None

    def route(self, route: str, method: str | None = None) -> RouteRate | None:
        """Return the counts of ``route``, summed over methods unless one is given."""
        matches = [
            item
            for item in self.routes
            if item.route == route and method in (None, item.method)
        ]
        if not matches:
            return None
        return RouteRate(
            method=method,
            route=route,
            requests=sum(item.requests for item in matches),
            errors=sum(item.errors for item in matches),
            probe=matches[0].probe,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rate"] = self.rate
        data["routes"] = [item.to_dict() for item in self.routes]
        return dict(json_safe(data))


# The end of the note on series that had no requests before the window. The
# series sampler replaces these per-interval notes with one for its whole window.
NEW_SERIES_NOTE = "no requests before the window; all their requests count."


def error_rate(
    before: Scrape | None,
    after: Scrape,
    *,
    exclude: str | None = DEFAULT_EXCLUDE,
    metric: str = "http_requests_total",
) -> ErrorRate:
    """Compute the 5xx error rate of ``metric`` between two scrapes.

    The counter needs a route label (``endpoint``, ``route``, ``path`` or ``handler``)
    for ``exclude`` to work, and a status label (``status``, ``status_code`` or
    ``code``, else ``status_class``). Routes matching the regular expression
    ``exclude`` count as probe traffic. With ``before=None`` the counts are cumulative
    since the process started.
    """
    pattern = compile_exclude(exclude)
    window = open_window(before, after)
    restarted = window.restart is not None
    earlier = {}
    if before is not None:
        earlier = {series_key(s.labels): s.value for s in before.find(metric)}

    # Add up each series' increase per method and route.
    routes: dict[tuple[str | None, str | None], RouteRate] = {}
    resets: list[str] = []
    skipped = 0
    for sample in after.find(metric):
        if finite_or_none(sample.value) is None:
            skipped += 1
            continue
        previous = earlier.get(series_key(sample.labels))
        count, was_reset = increase(previous, sample.value, restarted)
        method = sample.labels.get("method")
        route = label_value(sample.labels, ROUTE_LABELS)
        if was_reset:
            resets.append(f"{method} {route} {_status(sample.labels)}")
        entry = routes.setdefault(
            (method, route),
            RouteRate(method, route, 0.0, 0.0, is_excluded(route, pattern)),
        )
        entry.requests += count
        if _is_server_error(sample.labels):
            entry.errors += count

    # Totals, with probe traffic apart.
    users = [item for item in routes.values() if not item.probe]
    probes = [item for item in routes.values() if item.probe]
    notes = list(window.notes)
    notes.extend(_series_notes(before, after, metric, earlier, resets, skipped))
    ordered = sorted(routes.values(), key=lambda item: (-item.errors, -item.requests))
    return ErrorRate(
        metric=metric,
        requests=sum(item.requests for item in users),
        errors=sum(item.errors for item in users),
        probe_requests=sum(item.requests for item in probes),
        probe_errors=sum(item.errors for item in probes),
        routes=ordered,
        window_seconds=window.seconds,
        restart_detected=restarted,
        reset_detected=restarted or bool(resets),
        partial=window.partial or bool(resets),
        notes=notes,
    )


def _status(labels: dict[str, str]) -> str | None:
    return label_value(labels, STATUS_LABELS) or labels.get("status_class")


def _is_server_error(labels: dict[str, str]) -> bool:
    status = _status(labels)
    return status is not None and status.startswith("5")


def _series_notes(
    before: Scrape | None,
    after: Scrape,
    metric: str,
    earlier: dict[tuple[tuple[str, str], ...], float],
    resets: list[str],
    skipped: int,
) -> list[str]:
    notes = []
    if not after.find(metric):
        notes.append(f"the later scrape has no {metric} samples.")
    if resets:
        notes.append(
            f"{len(resets)} series decreased without a process restart"
            f" ({', '.join(resets[:5])}), so each counter was reset and its later value"
            " counts as its increase. Requests before each reset are missing."
        )
    if skipped:
        notes.append(f"{skipped} series with a NaN or infinite value were left out.")
    if before is not None:
        later = {series_key(sample.labels) for sample in after.find(metric)}
        vanished = len(earlier.keys() - later)
        created = len(later - earlier.keys())
        if vanished:
            verbs = ("is", "counts") if vanished == 1 else ("are", "count")
            notes.append(
                f"{vanished} series of the earlier scrape {verbs[0]} absent from the"
                f" later one and {verbs[1]} as 0."
            )
        if created:
            verb = "has" if created == 1 else "have"
            notes.append(
                f"{counted(created, 'route and status combination')} {verb}"
                f" {NEW_SERIES_NOTE}"
            )
    if any(_status(sample.labels) is None for sample in after.find(metric)):
        notes.append(f"some {metric} series have no status label and count as non-5xx.")
    return notes
