"""Plots for the triage notebook."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from veerunbook.figures import new_figure

if TYPE_CHECKING:
    import pandas as pd

P95_FAIL_MS = 2000.0  # warning alert: p95 above 2000 ms
ERROR_RATE_FAIL_PCT = 5.0  # critical alert: 5xx above 5 %


def plot_routes(routes: pd.DataFrame, limit: int = 12) -> Any:
    """Draw the 5xx share and p95 of the busiest user routes side by side.

    Returns the matplotlib figure, or None when there is nothing to draw.
    """
    if routes.empty:
        print("no user traffic in the window: nothing to plot")
        return None
    top = routes.nlargest(limit, "requests").iloc[::-1]
    figure = new_figure(11, 0.45 * len(top) + 1.5)
    errors, latency = figure.subplots(1, 2, sharey=True)
    errors.barh(top["route"], top["5xx %"].fillna(0.0), color="tab:red")
    errors.axvline(ERROR_RATE_FAIL_PCT, color="black", linestyle="--", linewidth=1)
    errors.set_xlabel("5xx responses (%)")
    errors.set_title("errors per route (dashed: 5 % alert)")
    latency.barh(top["route"], top["p95 ms"].fillna(0.0), color="tab:blue")
    latency.axvline(P95_FAIL_MS, color="black", linestyle="--", linewidth=1)
    latency.set_xlabel("p95 latency (ms)")
    latency.set_title("p95 per route (dashed: 2000 ms alert)")
    figure.tight_layout()
    return figure
