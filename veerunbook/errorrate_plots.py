"""The plot of the high-error-rate notebook: the user 5xx rate over the window."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from veerunbook.triage import ERROR_RATE_FAIL

if TYPE_CHECKING:
    import pandas as pd

# The runbook's warning alert: error rate above 1 % for 5 minutes.
ERROR_RATE_P1 = 0.01


def plot_error_rate(rates: pd.DataFrame) -> Any:
    """Draw the user 5xx rate of each interval with the 5 % and 1 % alert lines.

    ``rates`` is a frame from ``veerunbook.metrics_series.error_rate_series``.
    Returns the matplotlib figure, or None when no interval has user requests.
    """
    points = rates.dropna(subset=["rate"]) if not rates.empty else rates
    if points.empty:
        print("no interval with user requests: nothing to plot")
        return None
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 3.5))
    axes.plot(
        points["end"],
        points["rate"] * 100,
        marker="o",
        color="tab:red",
        label="user traffic 5xx",
    )
    axes.axhline(
        ERROR_RATE_FAIL * 100,
        color="black",
        linestyle="--",
        linewidth=1,
        label="5 % for 2 min: P0 critical alert",
    )
    axes.axhline(
        ERROR_RATE_P1 * 100,
        color="tab:orange",
        linestyle=":",
        linewidth=1,
        label="1 % for 5 min: P1 warning alert",
    )
    axes.set_title("5xx error rate of user traffic per interval")
    axes.set_xlabel("interval end (UTC)")
    axes.set_ylabel("5xx responses (% of requests)")
    axes.set_ylim(bottom=0, top=max(10.0, float(points["rate"].max()) * 110))
    formatter = mdates.DateFormatter("%H:%M:%S")  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_formatter(formatter)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    figure.autofmt_xdate()
    figure.tight_layout()
    plt.close(figure)
    return figure
