"""A series of metrics scrapes over a window, and the 5xx rate per interval.

``intervals`` pairs the consecutive successful scrapes of a series that
:func:`veerunbook.metrics_sampling.sample_series` took, and ``error_rate_series``
computes each pair's error rate with :func:`veerunbook.metrics.error_rate`, which
handles counter resets and process restarts. ``window_rate`` adds the intervals up.
The sampling names are re-exported here for the procedures that import them.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

from veerunbook import metrics
from veerunbook.metrics_error_rate import NEW_SERIES_NOTE
from veerunbook.metrics_sampling import (
    Fetch,
    Sample,
    ScrapeResult,
    sample_series,
    session_fetch,
    unreachable_line,
    unreachable_reason,
)
from veerunbook.metrics_window import (
    ROUTE_LABELS,
    STATUS_LABELS,
    compile_exclude,
    increase,
    is_excluded,
    label_value,
    open_window,
    series_key,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SERIES_COLUMNS",
    "Fetch",
    "Sample",
    "ScrapeResult",
    "error_rate_series",
    "interval_rate",
    "intervals",
    "sample_series",
    "session_fetch",
    "status_counts",
    "unreachable_line",
    "unreachable_reason",
    "window_rate",
]


SERIES_COLUMNS = (
    "end",
    "seconds",
    "requests",
    "5xx",
    "rate",
    "probe requests",
    "probe 5xx",
    "partial",
    "notes",
)


def intervals(series: list[Sample]) -> list[tuple[Sample, Sample]]:
    """Pair each successful scrape with the next successful one, skipping failures."""
    done = [sample for sample in series if sample.scrape is not None]
    return list(itertools.pairwise(done))


def error_rate_series(
    series: list[Sample],
    *,
    exclude: str | None = metrics.DEFAULT_EXCLUDE,
    metric: str = "http_requests_total",
) -> pd.DataFrame:
    """Tabulate the 5xx rate of each interval between successful scrapes.

    The frame has one row per interval, in time order, and these columns even
    without rows:

    - ``end``: when the later scrape finished; ``seconds``: the interval's length.
    - ``requests``, ``5xx`` and ``rate`` (a fraction, None without requests) of
      user traffic.
    - ``probe requests`` and ``probe 5xx``: the routes that ``exclude`` matches.
    - ``partial``: the counts miss requests, and ``notes`` gives the reasons.
    """
    import pandas as pd

    rows = [
        _interval_row(before, after, exclude, metric)
        for before, after in intervals(series)
    ]
    return pd.DataFrame(rows, columns=list(SERIES_COLUMNS))


def interval_rate(
    before: Sample,
    after: Sample,
    *,
    exclude: str | None = metrics.DEFAULT_EXCLUDE,
    metric: str = "http_requests_total",
) -> metrics.ErrorRate:
    """Compute the error rate between two successful samples of a series."""
    if before.scrape is None or after.scrape is None:
        raise ValueError(
            "both samples must hold a scrape. Pass the pairs that intervals() returns."
        )
    return metrics.error_rate(
        before.scrape, after.scrape, exclude=exclude, metric=metric
    )


def _interval_row(
    before: Sample, after: Sample, exclude: str | None, metric: str
) -> dict[str, Any]:
    rate = interval_rate(before, after, exclude=exclude, metric=metric)
    return {
        "end": after.at,
        "seconds": rate.window_seconds,
        "requests": rate.requests,
        "5xx": rate.errors,
        "rate": rate.rate,
        "probe requests": rate.probe_requests,
        "probe 5xx": rate.probe_errors,
        "partial": rate.partial,
        "notes": " ".join(
            _plain_notes(rate.notes, [before, after], metric, "interval")
        ),
    }


def window_rate(
    series: list[Sample],
    *,
    exclude: str | None = metrics.DEFAULT_EXCLUDE,
    metric: str = "http_requests_total",
) -> metrics.ErrorRate | None:
    """Add up the interval error rates of a series into one over the whole window.

    Summing intervals keeps a counter reset or a restart in the middle from hiding
    the requests before it. Returns None when the series has no interval.
    """
    rates = [
        interval_rate(before, after, exclude=exclude, metric=metric)
        for before, after in intervals(series)
    ]
    if not rates:
        return None
    routes: dict[tuple[str | None, str | None], metrics.RouteRate] = {}
    for rate in rates:
        for item in rate.routes:
            entry = routes.setdefault(
                (item.method, item.route),
                metrics.RouteRate(item.method, item.route, 0.0, 0.0, item.probe),
            )
            entry.requests += item.requests
            entry.errors += item.errors
    seconds = [rate.window_seconds for rate in rates]
    notes = list(dict.fromkeys(note for rate in rates for note in rate.notes))
    notes = _plain_notes(notes, series, metric, "window")
    return metrics.ErrorRate(
        metric=metric,
        requests=sum(rate.requests for rate in rates),
        errors=sum(rate.errors for rate in rates),
        probe_requests=sum(rate.probe_requests for rate in rates),
        probe_errors=sum(rate.probe_errors for rate in rates),
        routes=sorted(routes.values(), key=lambda item: (-item.errors, -item.requests)),
        window_seconds=None if None in seconds else sum(s or 0.0 for s in seconds),
        restart_detected=any(rate.restart_detected for rate in rates),
        reset_detected=any(rate.reset_detected for rate in rates),
        partial=any(rate.partial for rate in rates),
        notes=notes,
    )


def status_counts(
    series: list[Sample],
    *,
    exclude: str | None = metrics.DEFAULT_EXCLUDE,
    metric: str = "http_requests_total",
) -> dict[str, float]:
    """Count the user requests of the series' intervals per HTTP status code.

    Routes that ``exclude`` matches and NaN or infinite values are left out. A series
    without a status label counts under its ``status_class`` label (``5xx``), or
    else under ``"unknown"``. Resets and restarts are handled as in
    :func:`veerunbook.metrics.error_rate`.
    """
    pattern = compile_exclude(exclude)
    counts: dict[str, float] = {}
    for before, after in intervals(series):
        assert before.scrape is not None and after.scrape is not None
        restarted = open_window(before.scrape, after.scrape).restart is not None
        earlier = {
            series_key(item.labels): item.value for item in before.scrape.find(metric)
        }
        for item in after.scrape.find(metric):
            route = label_value(item.labels, ROUTE_LABELS)
            if not math.isfinite(item.value) or is_excluded(route, pattern):
                continue
            previous = earlier.get(series_key(item.labels))
            count, _ = increase(previous, item.value, restarted)
            status = (
                label_value(item.labels, STATUS_LABELS)
                or item.labels.get("status_class")
                or "unknown"
            )
            counts[status] = counts.get(status, 0.0) + count
    return dict(sorted(counts.items()))


def _plain_notes(
    notes: list[str], series: list[Sample], metric: str, scope: str
) -> list[str]:
    """Replace the notes on new series with one count of new route and status pairs.

    A series of ``metric`` that is missing from the first successful scrape of
    ``series`` but present in a later one had no requests before the ``scope``, and
    all its requests count.
    """
    plain = [note for note in notes if not note.endswith(NEW_SERIES_NOTE)]
    scrapes = [sample.scrape for sample in series if sample.scrape is not None]
    if len(scrapes) < 2:
        return plain
    first = {series_key(item.labels) for item in scrapes[0].find(metric)}
    later = {
        series_key(item.labels)
        for scrape in scrapes[1:]
        for item in scrape.find(metric)
    }
    created = len(later - first)
    if created == 1:
        plain.append(
            f"1 route and status combination had no requests before the {scope};"
            " all its requests count."
        )
    elif created:
        plain.append(
            f"{created} route and status combinations had no requests before the"
            f" {scope}; all their requests count."
        )
    return plain
