"""The plot of the application-rollback notebook: 5xx rate and p95 over time.

Two panels share a UTC clock time axis, as in the other procedures' plots. The 5xx
panel has the runbook's 1 % (warning) and 5 % (critical) alert lines, and the p95
panel its 1500 ms (information) and 2000 ms (warning) alert lines. The baseline and
the watch after a rollback share the time axis, with the rollback marked on both
panels between them.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from veerunbook.errorrate_plots import clock_axis
from veerunbook.errorrate_text import ERROR_RATE_WARNING
from veerunbook.figures import new_figure
from veerunbook.triage import ERROR_RATE_FAIL, P95_FAIL_S, P95_WARN_S

if TYPE_CHECKING:
    import pandas as pd

# (value, label, colour, line style) of each alert line.
RATE_LINES = (
    (ERROR_RATE_FAIL * 100, "critical alert line: 5 % for 2 min", "black", "--"),
    (ERROR_RATE_WARNING * 100, "warning alert line: 1 % for 5 min", "tab:orange", ":"),
)
P95_LINES = (
    (P95_FAIL_S * 1000, "warning alert line: 2000 ms for 5 min", "black", "--"),
    (P95_WARN_S * 1000, "information alert line: 1500 ms for 15 min", "tab:blue", ":"),
)


def plot_watch(
    baseline: pd.DataFrame,
    title: str,
    rollback_at: datetime | None = None,
    watch: pd.DataFrame | None = None,
) -> Any:
    """Draw the 5xx rate and p95 of each interval with the alert lines.

    ``baseline`` and ``watch`` come from ``veerunbook.approllback_watch.timeline``,
    and are drawn as two labelled lines on one time axis, with the rollback between
    them as a labelled vertical line. Returns the matplotlib figure, or None when no
    interval has user requests.
    """
    before = _with_requests(baseline)
    after = _with_requests(watch)
    if before.empty and after.empty:
        print("no interval with user requests: nothing to plot")
        return None
    import matplotlib.dates as mdates

    figure = new_figure(10, 5.5)
    rates, latency = figure.subplots(2, 1, sharex=True)
    if watch is None:
        labelled = [(before, "before any change", "o")]
    else:
        labelled = [
            (before, "before the rollback", "o"),
            (after, "after the rollback", "s"),
        ]
    drawn = [(points, label, m) for points, label, m in labelled if not points.empty]
    for points, label, marker in drawn:
        rates.plot(
            points["end"],
            points["5xx (%)"],
            marker=marker,
            label=f"5xx {label}",
            clip_on=False,
        )
        latency.plot(
            points["end"],
            points["p95 (ms)"],
            marker=marker,
            label=f"p95 {label}",
            clip_on=False,
        )
    for value, label, colour, style in RATE_LINES:
        rates.axhline(value, color=colour, linestyle=style, linewidth=1, label=label)
    rates.set_ylabel("5xx responses\n(% of user requests)")
    highest = max(float(points["5xx (%)"].max()) for points, _, _ in drawn)
    rates.set_ylim(bottom=0, top=max(6.0, highest * 1.1))
    rates.set_title(title)

    for value, label, colour, style in P95_LINES:
        latency.axhline(value, color=colour, linestyle=style, linewidth=1, label=label)
    latency.set_ylabel("p95 latency (ms)")
    slowest = max(float(points["p95 (ms)"].fillna(0).max()) for points, _, _ in drawn)
    latency.set_ylim(bottom=0, top=max(2200.0, slowest * 1.1))
    latency.set_xlabel("time (UTC)")

    if rollback_at is not None:
        at = mdates.date2num(rollback_at)  # type: ignore[no-untyped-call]
        label = f"rollback at {rollback_at:%H:%M:%S} UTC"
        for axes in (rates, latency):
            axes.axvline(at, color="tab:green", linewidth=1.5, label=label)
    ends = [points["end"] for points, _, _ in drawn if not points.empty]
    span = max(end.max() for end in ends) - min(end.min() for end in ends)
    clock_axis(latency, span.to_pytimedelta())
    for axes in (rates, latency):
        # Outside the axes, so that the legend never hides a point.
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def _with_requests(table: pd.DataFrame | None) -> pd.DataFrame:
    """Return the intervals of ``table`` that have user requests."""
    import pandas as pd

    if table is None or table.empty:
        return pd.DataFrame(columns=["end", "requests", "5xx (%)", "p95 (ms)"])
    return table[table["requests"] > 0]
