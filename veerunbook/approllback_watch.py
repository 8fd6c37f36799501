"""The 5xx rate and p95 of user traffic over a series of scrapes, and the verdict.

The procedure samples twice: a short baseline before any change, and the watch
after an executed rollback, one scrape per interval with a progress line for each.
``figures`` adds up a span of a series: the 5xx rate from the intervals' counts and
the p95 from the latency histogram's increase between the span's first and last
scrape. ``verdict`` reads the watch's last 5 minutes, or all of a shorter watch. It is
"held" when the 5xx rate is below 1 % and the p95 below 2000 ms, and "not held" when
either is at or above its line. It is "unknown" without user requests or a p95.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from veerunbook import metrics
from veerunbook.errorrate_text import ERROR_RATE_WARNING
from veerunbook.metrics_series import (
    Fetch,
    Sample,
    ScrapeResult,
    error_rate_series,
    window_rate,
)
from veerunbook.perf_routes import latency_timeline, to_ms
from veerunbook.text import counted, percent
from veerunbook.triage import P95_FAIL_S

if TYPE_CHECKING:
    import pandas as pd

# The runbook's warning alerts fire after 5 minutes above 1 % 5xx or 2000 ms p95,
# so the verdict reads the last 5 minutes of the watch.
HOLD_SECONDS = 300.0
HELD_RATE = ERROR_RATE_WARNING
HELD_P95_S = P95_FAIL_S
HELD = "held"
NOT_HELD = "not held"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Figures:
    """The user 5xx rate and p95 over a span of a series.

    ``rate`` is None without user requests and ``p95_ms`` without a timed request.
    When ``p95_lower_bound`` is true the p95 fell above the largest finite bucket,
    so the true value is at least ``p95_ms``.
    """

    seconds: float | None
    requests: float
    errors: float
    rate: float | None
    p95_ms: float | None
    p95_lower_bound: bool = False

    def text(self) -> str:
        """Describe the figures in one line, such as "5xx 0.4 % of 250 user
        requests, p95 85 ms over 6 s"."""
        if self.rate is None:
            rate = "no user requests"
        else:
            requests = counted(self.requests, "user request")
            rate = f"5xx {percent(self.rate, 1)} of {requests}"
        p95 = "no p95" if self.p95_ms is None else f"p95 {self._p95()} ms"
        span = "" if self.seconds is None else f" over {self.seconds:.0f} s"
        return f"{rate}, {p95}{span}"

    def _p95(self) -> str:
        prefix = "at least " if self.p95_lower_bound else ""
        return f"{prefix}{self.p95_ms:.0f}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def figures(series: list[Sample], last_seconds: float | None = None) -> Figures | None:
    """Add up the user 5xx rate and p95 of ``series``, or of its last seconds.

    With ``last_seconds``, the span starts at the newest successful scrape that is
    at least that long before the last one, or at the first when none is. Returns
    None with fewer than two successful scrapes.
    """
    done = [sample for sample in series if sample.scrape is not None]
    if len(done) < 2:
        return None
    first = 0
    if last_seconds is not None:
        since = done[-1].at - timedelta(seconds=last_seconds)
        older = [index for index, sample in enumerate(done) if sample.at <= since]
        first = older[-1] if older else 0
    span = done[first:]
    rate = window_rate(span)
    first_scrape, last_scrape = span[0].scrape, span[-1].scrape
    # The span holds two or more successful scrapes, so both are set and the
    # window has an interval.
    assert rate is not None
    assert first_scrape is not None
    assert last_scrape is not None
    report = metrics.latency_quantiles(first_scrape, last_scrape, quantiles=(0.95,))
    aggregate = report.aggregate
    p95 = aggregate.quantile(0.95) if aggregate and aggregate.count else None
    return Figures(
        seconds=rate.window_seconds,
        requests=rate.requests,
        errors=rate.errors,
        rate=rate.rate,
        p95_ms=to_ms(p95),
        p95_lower_bound=bool(p95 and p95.lower_bound),
    )


def verdict(found: Figures | None) -> tuple[str, str]:
    """Return "held", "not held" or "unknown", and the reason in one line."""
    if found is None:
        return UNKNOWN, "fewer than two metrics scrapes succeeded"
    if found.rate is None:
        return UNKNOWN, f"{found.text()}: nothing to judge"
    p95_s = None if found.p95_ms is None else found.p95_ms / 1000
    rate_high = found.rate >= HELD_RATE
    p95_high = p95_s is not None and p95_s >= HELD_P95_S
    if rate_high or p95_high:
        lines = []
        if rate_high:
            lines.append("the 5xx rate is at or above 1 %")
        if p95_high:
            lines.append("the p95 is at or above 2000 ms")
        return NOT_HELD, f"{found.text()}: {' and '.join(lines)}"
    if p95_s is None or found.p95_lower_bound:
        return UNKNOWN, f"{found.text()}: the p95 is unknown"
    return HELD, f"{found.text()}: below 1 % 5xx and 2000 ms p95"


def timeline(series: list[Sample]) -> pd.DataFrame:
    """Tabulate each interval: end, seconds, user requests, 5xx, 5xx (%), p95 (ms)."""
    rates = error_rate_series(series)
    latency = latency_timeline(series)
    table = rates[["end", "seconds", "requests", "5xx"]].copy()
    table["5xx (%)"] = (rates["rate"].astype(float) * 100).round(2)
    table["p95 (ms)"] = latency["p95 (ms)"].to_numpy()
    return table


class SampleReporter:
    """A ``Fetch`` that reports each scrape in one line as the watch proceeds."""

    def __init__(
        self, fetch: Fetch, total: int, progress: Callable[[str], None] | None
    ) -> None:
        self._fetch = fetch
        self._total = total
        self._progress = progress
        self._count = 0
        self._previous: metrics.Scrape | None = None

    def __call__(self) -> ScrapeResult:
        result = self._fetch()
        self._count += 1
        if self._progress is not None:
            self._progress(
                f"sample {self._count} of {self._total}: {self.line(result)}"
            )
        if result.scrape is not None:
            self._previous = result.scrape
        return result

    def line(self, result: ScrapeResult) -> str:
        """Describe one scrape against the previous successful one."""
        if result.scrape is None:
            return f"failed: {result.problem or result.unreachable or 'no scrape'}"
        if self._previous is None:
            return "first scrape"
        rate = metrics.error_rate(self._previous, result.scrape)
        report = metrics.latency_quantiles(
            self._previous, result.scrape, quantiles=(0.95,)
        )
        aggregate = report.aggregate
        p95 = aggregate.quantile(0.95) if aggregate and aggregate.count else None
        found = Figures(
            rate.window_seconds,
            rate.requests,
            rate.errors,
            rate.rate,
            to_ms(p95),
            bool(p95 and p95.lower_bound),
        )
        return found.text()
