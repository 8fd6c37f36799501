"""The alert-check notebook's plot of the stored error rate and p95."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from veerunbook.alert_eval import SignalSample

# Thresholds drawn, from the runbook's alerting section.
ERROR_RATE_LINES = ((5.0, "P0: 5 % for 2 min"), (1.0, "P1: 1 % for 5 min"))
P95_LINES = ((2000.0, "P1: 2000 ms for 5 min"), (1500.0, "P2: 1500 ms for 15 min"))


def plot_history(
    errors: Sequence[SignalSample], p95: Sequence[SignalSample], now: float
) -> Any:
    """Draw error rate (%) and p95 (ms) over minutes before ``now``, with thresholds.

    Returns the matplotlib figure, or None when no sample has a value.
    """
    if not any(sample.value is not None for sample in [*errors, *p95]):
        print("no stored error rate or p95 values yet: nothing to plot")
        return None
    import matplotlib.pyplot as plt

    figure, (rate_axis, p95_axis) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    _series(rate_axis, errors, now, 100.0, "tab:red")
    for level, label in ERROR_RATE_LINES:
        rate_axis.axhline(level, linestyle="--", linewidth=1, color="black")
        rate_axis.annotate(label, (0.01, level), xycoords=("axes fraction", "data"))
    rate_axis.set_ylabel("5xx error rate (%)")
    rate_axis.set_title("stored alert signals (dashed: alert thresholds)")
    _series(p95_axis, p95, now, 1.0, "tab:blue")
    for level, label in P95_LINES:
        p95_axis.axhline(level, linestyle="--", linewidth=1, color="grey")
        p95_axis.annotate(label, (0.01, level), xycoords=("axes fraction", "data"))
    p95_axis.set_ylabel("p95 response time (ms)")
    p95_axis.set_xlabel("minutes before this check")
    figure.tight_layout()
    plt.close(figure)
    return figure


def _series(
    axis: Any, samples: Sequence[SignalSample], now: float, scale: float, color: str
) -> None:
    """Plot the samples with values as a line; a None breaks the line."""
    minutes = [(sample.time - now) / 60.0 for sample in samples]
    values = [float("nan") if s.value is None else s.value * scale for s in samples]
    axis.plot(minutes, values, marker="o", color=color)
