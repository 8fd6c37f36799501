"""Plots for the performance-degradation notebook."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from veerunbook.triage import P95_FAIL_S, P95_WARN_S

if TYPE_CHECKING:
    import pandas as pd

_LINES = (
    ("p50 ms", "p50", "tab:green"),
    ("p95 ms", "p95", "tab:orange"),
    ("p99 ms", "p99", "tab:red"),
)


def plot_latency_timeline(timeline: pd.DataFrame) -> Any:
    """Draw user p50, p95 and p99 per interval against the runbook's p95 alerts.

    Returns the matplotlib figure, or None when no interval had user requests.
    """
    counted = timeline.dropna(subset=["p95 ms"]) if not timeline.empty else timeline
    if counted.empty:
        print("no interval with user requests: nothing to plot")
        return None
    import matplotlib.pyplot as plt

    first_seconds = float(timeline["seconds"].iloc[0] or 0.0)
    if not math.isfinite(first_seconds):  # pandas stores an unknown span as NaN
        first_seconds = 0.0
    start = timeline["end"].iloc[0] - timedelta(seconds=first_seconds)
    elapsed = [(end - start).total_seconds() for end in counted["end"]]
    figure, axes = plt.subplots(figsize=(10, 4))
    for column, label, colour in _LINES:
        axes.plot(elapsed, counted[column], marker="o", label=label, color=colour)
    axes.axhline(
        P95_FAIL_S * 1000,
        color="black",
        linestyle="--",
        linewidth=1,
        label="2000 ms: P1 warning alert on p95",
    )
    axes.axhline(
        P95_WARN_S * 1000,
        color="grey",
        linestyle=":",
        linewidth=1,
        label="1500 ms: P2 information alert on p95",
    )
    axes.set_xlabel("end of interval since the first successful scrape (s)")
    axes.set_ylabel("request latency (ms)")
    axes.set_title("User API latency per interval (health probes excluded)")
    axes.set_ylim(bottom=0)
    # Outside the axes, so that the legend never hides a point.
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    figure.tight_layout()
    plt.close(figure)
    return figure
