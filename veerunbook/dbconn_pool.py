"""The application's connection pool over a window: gauges, check and plot.

The pool gauges (``database_connections{state}`` and ``database_connections_max``,
read by ``veerunbook.metrics.database_pool``) of every scrape of the window are kept,
graded against the runbook's information alert (pool utilisation above 80 % for 15
minutes), and drawn over time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from veerunbook import metrics
from veerunbook.metrics_series import Sample
from veerunbook.record import RunContext
from veerunbook.triage import POOL_WARN

POOL_WARN_PCT = POOL_WARN * 100  # information alert: pool utilisation above 80 %


@dataclass
class PoolWindow:
    """The pool gauges of every scrape in the window; seconds from the first one."""

    seconds: list[float] = field(default_factory=list)
    usage: list[metrics.PoolUsage] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

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
        """Scrapes with the utilisation above the 80 % alert threshold."""
        return sum(
            1
            for usage in self.usage
            if usage.utilisation is not None and usage.utilisation > POOL_WARN
        )

    def rows(self) -> list[dict[str, Any]]:
        """Return one table row per scrape with gauges."""
        return [
            {
                "second": second,
                "active": usage.active,
                "idle": usage.idle,
                "waiting": usage.waiting,
                "max": usage.max,
                "utilisation %": _percent(usage.utilisation),
            }
            for second, usage in zip(self.seconds, self.usage, strict=True)
        ]


def _exhausted(usage: metrics.PoolUsage) -> bool:
    full = usage.utilisation is not None and usage.utilisation >= 1.0
    return full and bool(usage.waiting)


def _percent(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def pool_window(series: list[Sample]) -> PoolWindow:
    """Read the pool gauges of each scrape; a failed scrape keeps its reason."""
    pool = PoolWindow()
    start = series[0].at if series else None
    for sample in series:
        if sample.scrape is None or start is None:
            pool.failed.append(sample.problem or "the scrape failed")
            continue
        usage = metrics.database_pool(sample.scrape)
        if usage.utilisation is None:
            continue
        pool.seconds.append(round((sample.at - start).total_seconds(), 1))
        pool.usage.append(usage)
    return pool


def check_pool(run: RunContext, pool: PoolWindow) -> None:
    """Journal the pool check: fail when exhausted in every scrape, warn above 80 %."""
    if not pool.usage:
        if pool.failed:
            run.check(
                "connection pool",
                "error",
                summary=f"every metrics scrape failed: {pool.failed[0]}",
            )
        else:
            run.check(
                "connection pool", "skip", summary="no pool gauges in the metrics"
            )
        return
    scrapes = len(pool.usage)
    highest = pool.max_utilisation or 0.0
    # A full pool with requests queueing in every scrape is an outage in the making.
    status = "pass"
    if pool.high_samples:
        status = "warn"
    if pool.exhausted_samples == scrapes:
        status = "fail"
    last = pool.usage[-1]
    run.check(
        "connection pool",
        status,
        observed=_percent(highest),
        unit="%",
        expected="<= 80 % (information alert)",
        evidence={
            "samples": scrapes,
            "failed_scrapes": len(pool.failed),
            "above_80_percent": pool.high_samples,
            "exhausted": pool.exhausted_samples,
            "max_waiting": pool.max_waiting,
            "last": last.to_dict(),
        },
        summary=(
            f"up to {highest:.0%} in use ({last.active:g} of {last.max:g} at the "
            f"end), up to {pool.max_waiting:g} requests waiting; above 80 % in "
            f"{pool.high_samples} and exhausted in {pool.exhausted_samples} of "
            f"{scrapes} scrapes"
        ),
    )


def draw_pool(pool: PoolWindow) -> Any:
    """Draw the pool utilisation and the waiting requests over the window.

    Returns the matplotlib figure, or None when there is nothing to draw.
    """
    if not pool.usage:
        print("no pool gauges in the window: nothing to plot")
        return None
    import matplotlib.pyplot as plt

    figure, utilisation = plt.subplots(figsize=(9, 3.5))
    values = [_percent(usage.utilisation) or 0.0 for usage in pool.usage]
    utilisation.plot(pool.seconds, values, marker="o", color="tab:blue", label="in use")
    utilisation.axhline(
        POOL_WARN_PCT,
        color="black",
        linestyle="--",
        linewidth=1,
        label="80 % (information alert)",
    )
    utilisation.set_ylim(0, max(105.0, max(values) + 5))
    utilisation.set_xlabel("time since the first scrape (s)")
    utilisation.set_ylabel("pool utilisation (%)")
    waiting = utilisation.twinx()
    waiting.bar(
        pool.seconds,
        [usage.waiting or 0.0 for usage in pool.usage],
        width=0.6,
        alpha=0.35,
        color="tab:red",
        label="waiting",
    )
    waiting.set_ylabel("requests waiting for a connection")
    handles = utilisation.get_legend_handles_labels()
    extra = waiting.get_legend_handles_labels()
    utilisation.legend(handles[0] + extra[0], handles[1] + extra[1], loc="lower right")
    utilisation.set_title("connection pool over the window")
    figure.tight_layout()
    plt.close(figure)
    return figure
