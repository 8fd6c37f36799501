"""Scraping a target's metrics repeatedly over a window.

``sample_series`` scrapes ``samples + 1`` times, evenly spread over the window, and
keeps failed scrapes in the series so that gaps stay visible. A first scrape that
gets no response at all gets one retry and no more, and ``unreachable_reason``
then gives the reason sampling stopped. ``session_fetch`` scrapes a
session's target for it.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from veerunbook import metrics
from veerunbook.figures import preload
from veerunbook.text import counted

if TYPE_CHECKING:
    from veerunbook.probe import ProbeResult
    from veerunbook.record import RunContext
    from veerunbook.session import Session

# How long to wait before the one retry of a first scrape that got no response.
# A refused connection fails in about a millisecond, so retrying at once gains
# nothing. A few seconds cover a process that is restarting.
UNREACHABLE_RETRY_SECONDS = 3.0
# Progress is printed about once per this many seconds of the window.
PROGRESS_EVERY_SECONDS = 5.0
_PROBLEM_CHARS = 300
# Probe error kinds that mean no HTTP response came back at all.
_NO_RESPONSE = {
    "connection refused": "connection refused",
    "timeout": "no response before the timeout",
    "dns": "host name not found",
    "network": "network error",
}


@dataclass(frozen=True)
class ScrapeResult:
    """The result of one call of a ``Fetch``: a scrape, or why there is none.

    ``unreachable`` names why no HTTP response came back at all (for example
    ``connection refused``), and is None when the target responded.
    """

    scrape: metrics.Scrape | None
    problem: str | None = None
    unreachable: str | None = None


Fetch = Callable[[], ScrapeResult]


@dataclass(frozen=True)
class Sample:
    """One scrape of a series: when it finished, and the scrape or why it failed."""

    at: datetime  # aware UTC, when the scrape finished
    scrape: metrics.Scrape | None  # None when the scrape failed
    problem: str | None  # why it failed (masked, one line), else None
    unreachable: str | None = None  # why no response came back at all, else None


def sample_series(
    fetch: Fetch,
    *,
    window_seconds: float,
    samples: int,
    progress: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    while_waiting: Callable[[], object] | None = preload,
) -> list[Sample]:
    """Scrape ``samples + 1`` times, evenly spread over ``window_seconds``.

    The first scrape is at t=0 and the last at about ``window_seconds``. ``fetch``
    must never raise for a failing target, and must mask secrets in the reason
    itself. A failed scrape is kept as a ``Sample`` whose ``scrape`` is None.

    When the first scrape gets no response at all, it is retried once after
    ``UNREACHABLE_RETRY_SECONDS``. If the retry gets no response either, sampling
    stops there and the series has two failed samples. Otherwise the rest of the
    window is sampled, and scrapes whose time passed during the retry are skipped.

    ``while_waiting`` runs once, at the start of the first wait between scrapes,
    and its time counts toward that wait. The default imports matplotlib there, so
    the plot that follows a window does not pay for it. ``sleep`` and ``clock``
    (seconds, monotonic) are replaceable for tests. Raises ValueError when
    ``samples`` < 1 or the window is negative.
    """
    if samples < 1:
        raise ValueError(f"samples must be at least 1, not {samples}.")
    if window_seconds < 0:
        raise ValueError(f"window_seconds must not be negative, not {window_seconds}.")
    step = window_seconds / samples
    start = clock()
    report = _Reporter(progress, samples + 1)
    series = [_take(fetch)]
    retried_until = start
    if series[0].unreachable is not None:
        series.append(_retry(fetch, series[0].unreachable, progress, sleep))
        if series[-1].unreachable is not None:
            _report_done(progress, series)
            return series
        retried_until = clock()
    for index in range(1, samples + 1):
        due = start + index * step
        if due < retried_until and index < samples:
            continue  # this scrape's time passed during the retry
        # Scrape i is due at start + i * step. The wait is planned once per scrape
        # and slept in pieces, so progress shows and an injected sleep terminates.
        delay = due - clock()
        if delay > 0 and while_waiting is not None:
            while_waiting()
            while_waiting = None
            delay = due - clock()
        while delay > 0:
            report(index + 1, window_seconds - index * step + delay)
            piece = min(PROGRESS_EVERY_SECONDS, delay)
            sleep(piece)
            delay -= piece
        series.append(_take(fetch))
    _report_done(progress, series)
    return series


def _retry(
    fetch: Fetch,
    reason: str,
    progress: Callable[[str], None] | None,
    sleep: Callable[[float], None],
) -> Sample:
    if progress is not None:
        progress(
            f"the first scrape got no response ({reason});"
            f" retrying once in {UNREACHABLE_RETRY_SECONDS:g} s"
        )
    sleep(UNREACHABLE_RETRY_SECONDS)
    return _take(fetch)


def _report_done(progress: Callable[[str], None] | None, series: list[Sample]) -> None:
    if progress is None:
        return
    failed = sum(sample.scrape is None for sample in series)
    text = f"{len(series)} scrapes done, {failed} failed"
    reason = unreachable_reason(series)
    if reason is not None:
        text += f"; sampling stopped because the target did not answer: {reason}"
    progress(text)


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
    result = fetch()
    at = datetime.now(UTC)
    scrape = result.scrape
    if scrape is None:
        problem = _one_line(result.problem or "the scrape failed")
        return Sample(at, None, problem, result.unreachable)
    if scrape.scraped_at is None:
        scrape = dataclasses.replace(scrape, scraped_at=at.timestamp())
    return Sample(at, scrape, None)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    if len(line) > _PROBLEM_CHARS:
        line = line[: _PROBLEM_CHARS - 3] + "..."
    return line


def unreachable_reason(series: list[Sample]) -> str | None:
    """Return why no scrape got a response, or None if any scrape got one.

    The reason is the first sample's, such as ``connection refused``.
    """
    if not series or any(sample.unreachable is None for sample in series):
        return None
    return series[0].unreachable


def unreachable_line(reason: str, url: str) -> str:
    """Return the diagnosis line for a target that responded to no request.

    ``url`` must already be masked. Use it in every diagnostic procedure, so that
    the line reads the same in all of them.
    """
    return (
        f"target unreachable: {reason} at {url} (every request failed);"
        " check that the service is running, then run triage"
    )


def session_fetch(
    session: Session, endpoint: str = "metrics", *, record: bool = True
) -> Fetch:
    """Return a ``fetch`` for ``sample_series`` that scrapes the session's target.

    With ``record``, each scrape is journalled as a probe check. A scrape that fails
    (no response, not HTTP 200) returns the probe's masked reason, led by the HTTP
    status when there was one, and without the latency, so that repeated failures
    read the same.
    """

    def fetch() -> ScrapeResult:
        result = session.probe(
            endpoint, name="metrics scrape", expect="metrics", record=record
        )
        if result.status == "error" or result.http_status != 200:
            return _failure(result)
        scrape = metrics.parse_exposition(result.text, scraped_at=time.time())
        return ScrapeResult(scrape)

    return fetch


def _failure(result: ProbeResult) -> ScrapeResult:
    reason = result.error or (result.reasons[0] if result.reasons else result.status)
    if result.http_status is not None:
        return ScrapeResult(None, f"HTTP {result.http_status}: {reason}")
    unreachable = _NO_RESPONSE.get(result.error_kind or "")
    return ScrapeResult(None, reason, unreachable)


def check_scrape_count(run: RunContext, series: list[Sample]) -> None:
    """Journal how many metrics scrapes succeeded as one check, failures by reason.

    The check passes when all succeeded, warns when at least two did (a window can
    still be measured) and is an error otherwise.
    """
    failed = Counter(
        sample.problem or "unknown" for sample in series if not sample.scrape
    )
    done = len(series) - sum(failed.values())
    status = "pass"
    if failed:
        status = "warn" if done >= 2 else "error"
    summary = f"{done} of {counted(len(series), 'metrics scrape')} succeeded"
    for problem, count in failed.most_common(3):
        summary += f"; {count} failed: {problem}"
    run.check(
        "metrics scrapes",
        status,
        observed=done,
        unit="scrapes",
        expected=len(series),
        evidence=[
            {"at": sample.at.isoformat(), "problem": sample.problem}
            for sample in series
            if not sample.scrape
        ][:20],
        summary=summary,
    )
