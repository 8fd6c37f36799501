"""The plot of the high-error-rate notebook: the user 5xx rate over the window.

The time axis is UTC clock time, as in the other procedures' plots. The three alert
lines for the error rate are drawn, and a deployment inside the plotted span gets a
vertical marker.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from veerunbook.errorrate_text import ERROR_RATE_WARNING
from veerunbook.figures import new_figure
from veerunbook.triage import ERROR_RATE_FAIL, ERROR_RATE_WARN

if TYPE_CHECKING:
    import pandas as pd

    from veerunbook.changes import Change

# (percent, label, colour, line style) of each alert line for the 5xx rate.
ALERT_LINES = (
    (ERROR_RATE_FAIL * 100, "critical alert line: 5 % for 2 min", "black", "--"),
    (ERROR_RATE_WARNING * 100, "warning alert line: 1 % for 5 min", "tab:orange", ":"),
    (
        ERROR_RATE_WARN * 100,
        "information alert line: 0.5 % for 15 min",
        "tab:blue",
        ":",
    ),
)


Y_TICKS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)


def plot_error_rate(
    rates: pd.DataFrame,
    start: datetime | None = None,
    deployments: list[Change] | None = None,
) -> Any:
    """Draw the user 5xx rate of each interval with the alert lines and deploys.

    ``rates`` is a frame from ``veerunbook.metrics_series.error_rate_series`` and
    ``start`` is when the window's first scrape finished. A deployment within the
    window, or within as long again before it, is marked and widens the time axis
    to show it. Returns the matplotlib figure, or None when no interval has user
    requests.
    """
    points = rates.dropna(subset=["rate"]) if not rates.empty else rates
    if points.empty:
        print("no interval with user requests: nothing to plot")
        return None
    import matplotlib.dates as mdates

    end = points["end"].max().to_pydatetime()
    first = start or points["end"].min().to_pydatetime()
    window = max(end - first, timedelta(seconds=1))
    deploys = _deploys_between(deployments or [], first - window, end)
    left = min([first, *(change.time for change in deploys if change.time)])
    pad = (end - left) * 0.05

    figure = new_figure(10, 3.5)
    axes = figure.subplots()
    axes.plot(
        points["end"],
        points["rate"] * 100,
        marker="o",
        color="tab:red",
        label="5xx of user requests",
    )
    for value, label, colour, style in ALERT_LINES:
        axes.axhline(value, color=colour, linestyle=style, linewidth=1, label=label)
    for change in deploys:
        at = mdates.date2num(change.time)  # type: ignore[no-untyped-call]
        axes.axvline(
            at,
            color="tab:purple",
            linewidth=1.5,
            label=f"deployment {change.version} at {change.time:%H:%M:%S}",
        )
    axes.set_title("5xx error rate of user requests per interval")
    axes.set_xlabel("time (UTC)")
    axes.set_xlim(left - pad, end + pad)
    # Linear up to 1 % and logarithmic above, so that the 0.5 % and 1 % lines stay
    # apart from the axis when the rate is tens of percent.
    axes.set_yscale("symlog", linthresh=1.0, linscale=0.5)
    axes.set_ylim(bottom=0, top=100)
    axes.set_yticks(Y_TICKS, [f"{tick:g}" for tick in Y_TICKS])
    axes.set_ylabel("5xx responses (% of requests)\nlog scale above 1 %")
    clock_axis(axes, end - left)
    # Outside the axes, so that the legend never hides a point.
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def _deploys_between(
    changes: list[Change], since: datetime, until: datetime
) -> list[Change]:
    return [
        change
        for change in changes
        if change.kind == "deployment"
        and change.time is not None
        and since <= change.time <= until
    ]


def clock_axis(axes: Any, span: timedelta) -> None:
    """Label the time axis in UTC as HH:MM:SS, with no two ticks in one second."""
    import matplotlib.dates as mdates

    locator: mdates.DateLocator
    if span < timedelta(seconds=10):
        # The automatic locator goes below a second here, and ticks would repeat.
        locator = mdates.SecondLocator(tz=UTC)  # type: ignore[no-untyped-call]
    else:
        locator = mdates.AutoDateLocator(  # type: ignore[no-untyped-call]
            minticks=3, maxticks=9, tz=UTC
        )
    axes.xaxis.set_major_locator(locator)
    formatter = mdates.DateFormatter("%H:%M:%S", tz=UTC)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_formatter(formatter)
