"""Plots for the performance-degradation notebook."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any

from veerunbook.figures import new_figure
from veerunbook.triage import P95_FAIL_S, P95_WARN_S

if TYPE_CHECKING:
    import pandas as pd

_LINES = (
    ("p50 (ms)", "p50", "tab:green"),
    ("p95 (ms)", "p95", "tab:orange"),
    ("p99 (ms)", "p99", "tab:red"),
)
# Below this span of interval ends, in seconds, ticks go on whole seconds.
SHORT_SPAN_SECONDS = 10.0
# The runbook's alert lines on p95, drawn on every plot so that their distance shows.
_ALERT_LINES = (
    (P95_FAIL_S * 1000, "2000 ms: warning alert line (p95 for 5 min)", "black", "--"),
    (
        P95_WARN_S * 1000,
        "1500 ms: information alert line (p95 for 15 min)",
        "grey",
        ":",
    ),
)


def plot_latency_timeline(timeline: pd.DataFrame) -> Any:
    """Draw user p50, p95 and p99 per interval against the runbook's p95 alert lines.

    The time axis shows the end of each interval as UTC clock time. Returns the
    matplotlib figure, or None when no interval had user requests.
    """
    counted = timeline.dropna(subset=["p95 (ms)"]) if not timeline.empty else timeline
    if counted.empty:
        print("no interval with user requests: nothing to plot")
        return None
    import matplotlib.dates as mdates

    figure = new_figure(10, 4)
    axes = figure.subplots()
    for column, label, colour in _LINES:
        axes.plot(
            counted["end"], counted[column], marker="o", label=label, color=colour
        )
    for value, label, colour, style in _ALERT_LINES:
        axes.axhline(value, color=colour, linestyle=style, linewidth=1, label=label)
    axes.set_xlabel("time (UTC)")
    axes.set_ylabel("request latency (ms)")
    axes.set_title("User API latency per interval (health probes excluded)")
    highest = float(counted[[column for column, _, _ in _LINES]].max().max())
    axes.set_ylim(bottom=0, top=max(P95_FAIL_S * 1000, highest) * 1.1)
    formatter = mdates.DateFormatter("%H:%M:%S", tz=UTC)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_formatter(formatter)
    first, last = counted["end"].min(), counted["end"].max()
    if (last - first).total_seconds() < SHORT_SPAN_SECONDS:
        # Left alone, matplotlib ticks a short span at fractions of a second, which
        # HH:MM:SS shows as repeated labels, and widens a single point to days.
        margin = timedelta(seconds=1)
        axes.set_xlim(first - margin, last + margin)
        axes.xaxis.set_major_locator(mdates.SecondLocator(tz=UTC))  # type: ignore[no-untyped-call]
    # Outside the axes, so that the legend never hides a point.
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure
