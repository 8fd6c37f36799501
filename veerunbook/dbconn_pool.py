"""The application's connection pool over a window: gauges per scrape and the check.

The pool gauges (``database_connections{state}`` and ``database_connections_max``,
read by ``veerunbook.metrics.database_pool``) of every scrape of the window are kept
with the scrape's UTC time and graded against the runbook's information alert line:
pool utilisation above 80 % for 15 minutes. ``veerunbook.dbconn_plot`` draws them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from veerunbook import metrics
from veerunbook.metrics_series import Sample
from veerunbook.record import RunContext
from veerunbook.text import counted, percent, whole
from veerunbook.triage import POOL_WARN

POOL_WARN_PCT = POOL_WARN * 100  # information alert line: above 80 % for 15 min
POOL_EXPECTED = "at most 80 % (information alert line: 80 % for 15 min)"


@dataclass
class PoolWindow:
    """The pool gauges of every scrape in the window, with the UTC time of each."""

    times: list[datetime] = field(default_factory=list)
    usage: list[metrics.PoolUsage] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    scrapes: int = 0

    @property
    def max_utilisation(self) -> float | None:
        """The highest active / max of the window, or None without gauges."""
        values = [u.utilisation for u in self.usage if u.utilisation is not None]
        return max(values) if values else None

    @property
    def max_waiting(self) -> float:
        """The maximum number of requests waiting for a connection in one scrape."""
        return max((u.waiting or 0.0 for u in self.usage), default=0.0)

    @property
    def exhausted_samples(self) -> int:
        """Scrapes in which every connection was in use and requests waited."""
        return sum(1 for usage in self.usage if _exhausted(usage))

    @property
    def high_samples(self) -> int:
        """Scrapes with the utilisation above the 80 % information alert line."""
        return sum(
            1
            for usage in self.usage
            if usage.utilisation is not None and usage.utilisation > POOL_WARN
        )

    def failure_reason(self) -> str:
        """Return the most frequent reason a scrape failed, with the others counted."""
        if not self.failed:
            return ""
        reasons = Counter(self.failed).most_common()
        text = reasons[0][0]
        if len(reasons) > 1:
            text += f" (and {counted(len(reasons) - 1, 'other reason')})"
        return text

    def rows(self) -> list[dict[str, Any]]:
        """Return one table row per scrape with gauges."""
        return [
            {
                "time (UTC)": moment.strftime("%H:%M:%S"),
                "active": whole(usage.active),
                "idle": whole(usage.idle),
                "waiting": whole(usage.waiting),
                "max": whole(usage.max),
                "in use (%)": _percent(usage.utilisation),
            }
            for moment, usage in zip(self.times, self.usage, strict=True)
        ]


def _exhausted(usage: metrics.PoolUsage) -> bool:
    full = usage.utilisation is not None and usage.utilisation >= 1.0
    return full and bool(usage.waiting)


def _percent(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def pool_window(series: list[Sample]) -> PoolWindow:
    """Read the pool gauges of each scrape; a failed scrape keeps its reason."""
    pool = PoolWindow(scrapes=len(series))
    for sample in series:
        if sample.scrape is None:
            pool.failed.append(sample.problem or "the scrape failed")
            continue
        usage = metrics.database_pool(sample.scrape)
        if usage.utilisation is None:
            continue
        pool.times.append(sample.at)
        pool.usage.append(usage)
    return pool


def check_pool(run: RunContext, pool: PoolWindow) -> None:
    """Journal the pool check: fail when exhausted in every scrape, warn above 80 %."""
    if not pool.usage:
        _check_no_gauges(run, pool)
        return
    scrapes = len(pool.usage)
    highest = pool.max_utilisation or 0.0
    # A full pool with requests queueing in every scrape is an outage in the making.
    status = "pass"
    if pool.high_samples:
        status = "warn"
    if pool.exhausted_samples == scrapes:
        status = "fail"

    # One line for the window, then the figures behind it as evidence.
    last = pool.usage[-1]
    summary = (
        f"up to {percent(highest)} in use ({last.active:g} of {last.max:g} at the "
        f"end), up to {counted(pool.max_waiting, 'request')} waiting; above 80 % in "
        f"{pool.high_samples} and exhausted in {pool.exhausted_samples} of "
        f"{counted(scrapes, 'scrape')}"
    )
    if pool.failed:
        summary += f"; {counted(len(pool.failed), 'scrape')} failed"
    run.check(
        "connection pool",
        status,
        observed=_percent(highest),
        unit="%",
        expected=POOL_EXPECTED,
        evidence={
            "samples": scrapes,
            "failed_scrapes": len(pool.failed),
            "above_80_percent": pool.high_samples,
            "exhausted": pool.exhausted_samples,
            "max_waiting": pool.max_waiting,
            "last": last.to_dict(),
        },
        summary=summary,
    )


def _check_no_gauges(run: RunContext, pool: PoolWindow) -> None:
    if len(pool.failed) == pool.scrapes and pool.failed:
        # Every scrape failed: one check for all of them, with the reason.
        run.check(
            "connection pool",
            "error",
            observed=0,
            unit="scrapes succeeded",
            evidence={"scrapes": pool.scrapes, "reasons": sorted(set(pool.failed))},
            summary=f"metrics scrapes: 0 of {pool.scrapes} succeeded: "
            f"{pool.failure_reason()}",
        )
        return
    run.check("connection pool", "skip", summary="no pool gauges in the metrics")
