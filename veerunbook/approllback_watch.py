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
from typing import TYPE_CHECKING, Any, cast

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
from veerunbook.text import counted, percent, whole
from veerunbook.triage import P95_FAIL_S

if TYPE_CHECKING:
    import pandas as pd

    from veerunbook.record import CheckRecord, RunContext

# The runbook's warning alerts fire after 5 minutes above 1 % 5xx or 2000 ms p95,
# so the verdict reads the last 5 minutes of the watch.
HOLD_SECONDS = 300.0
HELD_RATE = ERROR_RATE_WARNING
HELD_P95_S = P95_FAIL_S
HELD = "held"
NOT_HELD = "not held"
UNKNOWN = "unknown"
RATE_CHECK = "5xx error rate after the rollback"
P95_CHECK = "user API p95 after the rollback"
SPAN = "over the last 5 min of the watch, or all of a shorter one"


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

    def brief(self) -> str:
        """Describe the figures without counts, such as "5xx 0.0 %, p95 120 ms over
        1 min"."""
        rate = (
            "no user requests" if self.rate is None else f"5xx {percent(self.rate, 1)}"
        )
        p95 = "no p95" if self.p95_ms is None else f"p95 {self._p95()} ms"
        span = "" if self.seconds is None else f" over {duration(self.seconds)}"
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
    # The span contains two or more successful scrapes, so both are set and the
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


class _SuffixedChecks:
    """A run record that appends a suffix to the name of each check.

    ``check_error_rate`` and ``check_user_p95`` name their checks "5xx error rate"
    and "user API p95". This procedure measures both figures before and after the
    rollback, so it journals the baseline as "5xx error rate before the rollback".
    Only ``check`` is provided, because it is the one method those functions call.
    """

    def __init__(self, run: RunContext, suffix: str) -> None:
        self._run = run
        self._suffix = suffix

    def check(self, name: str, status: str, **fields: Any) -> CheckRecord:
        return self._run.check(f"{name} {self._suffix}", status, **fields)


def suffixed(run: RunContext, suffix: str) -> RunContext:
    """Return ``run`` as the shared checks see it, each check name with ``suffix``."""
    return cast("RunContext", _SuffixedChecks(run, suffix))


def duration(seconds: float) -> str:
    """Return a span as "45 s" below a minute, else in minutes: "1 min", "4.5 min"."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{round(seconds / 60, 1):g} min"


def check_watch(run: RunContext, found: Figures | None) -> None:
    """Journal the watch's 5xx rate and p95 as two checks against the held lines."""
    evidence = found.to_dict() if found else None
    if found is None:
        reason = "fewer than two metrics scrapes succeeded"
        run.check(RATE_CHECK, "warn", expected=f"below 1 % {SPAN}", summary=reason)
        run.check(P95_CHECK, "warn", expected=f"below 2000 ms {SPAN}", summary=reason)
        return
    if found.rate is None:
        status, summary = "warn", "no user requests during the watch"
        observed = None
    else:
        status = "fail" if found.rate >= HELD_RATE else "pass"
        requests = counted(whole(found.requests) or 0, "user request")
        summary = f"{percent(found.rate, 2)} of {requests}"
        observed = round(found.rate * 100, 2)
    span = f" over {duration(found.seconds or 0)}"
    run.check(
        RATE_CHECK,
        status,
        observed=observed,
        unit="%",
        expected=f"below 1 % {SPAN}",
        evidence=evidence,
        summary=summary + span,
    )
    if found.p95_ms is None:
        p95 = "no p95: no timed user request"
    else:
        prefix = "at least " if found.p95_lower_bound else ""
        p95 = f"p95 {prefix}{found.p95_ms:.0f} ms"
    run.check(
        P95_CHECK,
        _p95_status(found),
        observed=found.p95_ms,
        unit="ms",
        expected=f"below 2000 ms {SPAN}",
        evidence=evidence,
        summary=p95 + span,
    )


def skip_watch(run: RunContext, reason: str) -> None:
    """Journal both checks of the watch as skipped, with the reason."""
    for name in (RATE_CHECK, P95_CHECK):
        run.check(name, "skip", summary=reason)


def _p95_status(found: Figures) -> str:
    if found.p95_ms is None:
        return "warn"
    if found.p95_ms / 1000 >= HELD_P95_S:
        return "fail"
    # A p95 "at least N ms" below the line could still be above it.
    return "warn" if found.p95_lower_bound else "pass"


def timeline(series: list[Sample]) -> pd.DataFrame:
    """Tabulate each interval: end, seconds, user requests, 5xx, 5xx (%), p95 (ms).

    Seconds are rounded to 0.01 s and counts shown as whole numbers.
    """
    rates = error_rate_series(series)
    latency = latency_timeline(series)
    table = rates[["end", "seconds", "requests", "5xx"]].copy()
    table["seconds"] = table["seconds"].astype(float).round(2)
    table["requests"] = table["requests"].map(whole)
    table["5xx"] = table["5xx"].map(whole)
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
