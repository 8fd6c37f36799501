"""A series of metrics scrapes over a window, and the 5xx rate per interval.

``sample_series`` scrapes ``samples + 1`` times, evenly spread over the window, and
keeps failed scrapes in the series so that gaps stay visible. ``intervals`` pairs the
consecutive successful scrapes, and ``error_rate_series`` computes each pair's error
rate with :func:`veerunbook.metrics.error_rate`, which handles counter resets and
process restarts.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from veerunbook import metrics
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

    from veerunbook.session import Session

Fetch = Callable[[], tuple[metrics.Scrape | None, str | None]]

# Progress is printed about once per this many seconds of the window.
PROGRESS_EVERY_SECONDS = 5.0
_PROBLEM_CHARS = 300

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


@dataclass(frozen=True)
class Sample:
    """One scrape of a series: when it finished, and the scrape or why it failed."""

    at: datetime  # aware UTC, when the scrape finished
    scrape: metrics.Scrape | None  # None when the scrape failed
    problem: str | None  # why it failed (masked, one line), else None


def sample_series(
    fetch: Fetch,
    *,
    window_seconds: float,
    samples: int,
    progress: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[Sample]:
    """Scrape ``samples + 1`` times, evenly spread over ``window_seconds``.

    The first scrape is at t=0 and the last at about ``window_seconds``. ``fetch``
    returns a scrape, or None and why it failed, and must never raise for a failing
    target. It must mask secrets in that reason itself. A failed scrape is kept as a
    ``Sample`` whose ``scrape`` is None. ``sleep`` and ``clock`` (seconds, monotonic)
    are replaceable for tests. Raises ValueError when ``samples`` < 1 or the window
    is negative.
    """
    if samples < 1:
        raise ValueError(f"samples must be at least 1, not {samples}.")
    if window_seconds < 0:
        raise ValueError(f"window_seconds must not be negative, not {window_seconds}.")
    step = window_seconds / samples
    start = clock()
    report = _Reporter(progress, samples + 1)
    series = [_take(fetch)]
    for index in range(1, samples + 1):
        # Scrape i is due at start + i * step. The wait is planned once per scrape
        # and slept in pieces, so progress shows and an injected sleep terminates.
        delay = start + index * step - clock()
        while delay > 0:
            report(index + 1, window_seconds - index * step + delay)
            piece = min(PROGRESS_EVERY_SECONDS, delay)
            sleep(piece)
            delay -= piece
        series.append(_take(fetch))
    if progress is not None:
        failed = sum(sample.scrape is None for sample in series)
        progress(f"{len(series)} scrapes done, {failed} failed")
    return series


class _Reporter:
    """Report the window time left, at most once per ``PROGRESS_EVERY_SECONDS``."""

    def __init__(self, progress: Callable[[str], None] | None, total: int) -> None:
        self._progress = progress
        self._total = total
        self._last: float | None = None

    def __call__(self, scrape: int, left: float) -> None:
        if self._progress is None:
            return
        if self._last is not None and self._last - left < PROGRESS_EVERY_SECONDS:
            return
        self._last = left
        self._progress(
            f"sampling metrics: scrape {scrape} of {self._total} next,"
            f" {left:.0f} s of the window left"
        )


def _take(fetch: Fetch) -> Sample:
    scrape, problem = fetch()
    at = datetime.now(UTC)
    if scrape is None:
        return Sample(at, None, _one_line(problem or "the scrape failed"))
    if scrape.scraped_at is None:
        scrape = dataclasses.replace(scrape, scraped_at=at.timestamp())
    return Sample(at, scrape, None)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    if len(line) > _PROBLEM_CHARS:
        line = line[: _PROBLEM_CHARS - 3] + "..."
    return line


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
        "notes": " ".join(rate.notes),
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


def session_fetch(
    session: Session, endpoint: str = "metrics", *, record: bool = True
) -> Fetch:
    """Return a ``fetch`` for ``sample_series`` that scrapes the session's target.

    With ``record``, each scrape is journalled as a probe check. A scrape that fails
    (no response, not HTTP 200) returns the probe's one-line summary, which the
    probe has masked.
    """

    def fetch() -> tuple[metrics.Scrape | None, str | None]:
        result = session.probe(
            endpoint, name="metrics scrape", expect="metrics", record=record
        )
        if result.status == "error" or result.http_status != 200:
            return None, result.summary()
        return metrics.parse_exposition(result.text, scraped_at=time.time()), None

    return fetch
