"""The plot of the application-rollback notebook: 5xx rate and p95 over time.

Two panels share a UTC clock time axis, as in the other procedures' plots. The 5xx
panel has the runbook's 1 % (warning) and 5 % (critical) alert lines, and the p95
panel its 1500 ms (information) and 2000 ms (warning) alert lines. A rollback inside
the plotted span is marked on both.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from veerunbook.errorrate_plots import clock_axis
from veerunbook.errorrate_text import ERROR_RATE_WARNING
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
    table: pd.DataFrame, title: str, rollback_at: datetime | None = None
) -> Any:
    """Draw the 5xx rate and p95 of each interval of ``table`` with the alert lines.

    ``table`` comes from ``veerunbook.approllback_watch.timeline``. Returns the
    matplotlib figure, or None when no interval has user requests.
    """
    points = table[table["requests"] > 0] if not table.empty else table
    if points.empty:
        print("no interval with user requests: nothing to plot")
        return None
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    figure, (rates, latency) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    rates.plot(points["end"], points["5xx (%)"], marker="o", color="tab:red")
    for value, label, colour, style in RATE_LINES:
        rates.axhline(value, color=colour, linestyle=style, linewidth=1, label=label)
    rates.set_ylabel("5xx responses\n(% of user requests)")
    rates.set_ylim(bottom=0, top=max(6.0, float(points["5xx (%)"].max()) * 1.1))
    rates.set_title(title)

    latency.plot(points["end"], points["p95 (ms)"], marker="o", color="tab:purple")
    for value, label, colour, style in P95_LINES:
        latency.axhline(value, color=colour, linestyle=style, linewidth=1, label=label)
    latency.set_ylabel("p95 latency (ms)")
    top = max(2200.0, float(points["p95 (ms)"].fillna(0).max()) * 1.1)
    latency.set_ylim(bottom=0, top=top)
    latency.set_xlabel("time (UTC)")

    if rollback_at is not None:
        at = mdates.date2num(rollback_at)  # type: ignore[no-untyped-call]
        for axes in (rates, latency):
            axes.axvline(at, color="tab:green", linewidth=1.5, label="rollback")
    span = points["end"].max() - points["end"].min()
    clock_axis(latency, span.to_pytimedelta())
    for axes in (rates, latency):
        # Outside the axes, so that the legend never hides a point.
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    figure.autofmt_xdate()
    figure.tight_layout()
    plt.close(figure)
    return figure
