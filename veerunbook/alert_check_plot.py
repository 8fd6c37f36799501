"""The alert-check notebook's plot of the stored error rate and p95.

Each axis shows one signal over UTC clock time, a dashed line per rule on that signal
labelled with its tier and condition, and shades the periods in which the rule's
evaluation over the same samples fires.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from veerunbook.alert_eval import AlertState, SignalSample, evaluate
from veerunbook.alert_rules import ALERT_RULES, AlertRule, Signal, Tier
from veerunbook.alert_units import hold_text, rule_quantity
from veerunbook.figures import new_figure

# One colour per tier, for threshold lines and firing periods alike.
TIER_COLORS = {Tier.P0: "tab:red", Tier.P1: "tab:orange", Tier.P2: "goldenrod"}


def firing_spans(
    rule: AlertRule,
    samples: Sequence[SignalSample],
    *,
    interval_seconds: float,
    end: float,
) -> list[tuple[float, float]]:
    """Return the (start, stop) Unix times in which ``rule`` fires over ``samples``.

    A span starts at the evaluation that fires and stops at the first one that does
    not, or at ``end`` while the alert still fires.
    """
    if not samples:
        return []
    result = evaluate(rule, samples, interval_seconds=interval_seconds)
    spans: list[tuple[float, float]] = []
    started: float | None = None
    for time, state in zip(result.times, result.states, strict=True):
        if state is AlertState.FIRING and started is None:
            started = time
        elif state is not AlertState.FIRING and started is not None:
            spans.append((started, time))
            started = None
    if started is not None:
        spans.append((started, end))
    return spans


def plot_history(
    errors: Sequence[SignalSample],
    p95: Sequence[SignalSample],
    *,
    start: float,
    now: float,
    interval_seconds: float,
) -> Any:
    """Draw error rate (%) and p95 (ms) from ``start`` to ``now`` with thresholds.

    The samples may begin before ``start``, so that a rule's hold time is already
    under way at the plot's left edge. Returns the matplotlib figure, or None when
    no sample has a value.
    """
    if not any(sample.value is not None for sample in [*errors, *p95]):
        print("no stored error rate or p95 values yet: nothing to plot")
        return None
    import matplotlib.dates as mdates

    figure = new_figure(9, 6.5)
    rate_axis, p95_axis = figure.subplots(2, 1, sharex=True)
    axes = ((rate_axis, Signal.ERROR_RATE, errors), (p95_axis, Signal.P95_MS, p95))
    for axis, signal, samples in axes:
        scale = 100.0 if signal is Signal.ERROR_RATE else 1.0
        _series(axis, samples, start, scale)
        for rule in ALERT_RULES:
            if rule.signal is signal:
                _rule_marks(axis, rule, samples, interval_seconds, start, now, scale)
        axis.legend(loc="upper left", fontsize="small")
    rate_axis.set_ylabel("5xx error rate (%)")
    p95_axis.set_ylabel("p95 response time (ms)")
    p95_axis.set_xlabel("time (UTC)")
    p95_axis.set_xlim(_moment(start), _moment(now + interval_seconds / 2))
    formatter = mdates.DateFormatter("%H:%M", tz=UTC)  # type: ignore[no-untyped-call]
    p95_axis.xaxis.set_major_formatter(formatter)
    rate_axis.set_title(
        f"stored alert signals up to {_moment(now):%H:%M} UTC"
        " (dashed: alert thresholds, shaded: alert firing)"
    )
    figure.tight_layout()
    return figure


def _rule_marks(
    axis: Any,
    rule: AlertRule,
    samples: Sequence[SignalSample],
    interval: float,
    start: float,
    now: float,
    scale: float,
) -> None:
    """Draw the rule's threshold line and shade the periods it fires."""
    color = TIER_COLORS.get(rule.tier, "grey")
    label = f"{rule.tier.value}: {rule_quantity(rule, rule.threshold)}"
    if rule.for_seconds > 0:
        label += f" for {hold_text(rule.for_seconds)}"
    axis.axhline(
        rule.threshold * scale,
        linestyle="--",
        linewidth=1,
        color=color,
        label=label,
    )
    spans = firing_spans(rule, samples, interval_seconds=interval, end=now)
    shown = [(begin, stop) for begin, stop in spans if stop > start]
    for index, (begin, stop) in enumerate(shown):
        # At least half an interval wide, so an alert that fires at this very
        # check shows as a band and not as a line of no width.
        axis.axvspan(
            _moment(max(begin, start)),
            _moment(max(stop, begin + interval / 2)),
            color=color,
            alpha=0.15,
            label=f"{rule.name} firing" if index == 0 else None,
        )


def _series(
    axis: Any, samples: Sequence[SignalSample], start: float, scale: float
) -> None:
    """Plot the samples from ``start`` on as a line; a None breaks the line."""
    shown = [sample for sample in samples if sample.time >= start]
    times = [_moment(sample.time) for sample in shown]
    values = [float("nan") if s.value is None else s.value * scale for s in shown]
    axis.plot(times, values, marker="o", color="black", linewidth=1, label="stored")


def _moment(unix_seconds: float) -> datetime:
    return datetime.fromtimestamp(unix_seconds, UTC)
