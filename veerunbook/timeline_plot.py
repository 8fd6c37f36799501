"""The timeline's figure: error rate, p95 latency and pool use across the incident.

The samples are the observed values of the checks that carry these figures:

- error rate (%): checks named "5xx error rate", also with a suffix such as "before
  the rollback" (triage, high-error-rate, application-rollback), unit ``%``;
- p95 (ms): "p95 latency" (triage) and "user API p95" (application-rollback), unit
  ``ms``;
- pool use (%): "connection pool" (triage, database-connection, high-error-rate,
  performance-degradation), unit ``%``.

Runs are drawn as markers at their finish, and executed or failed actions as vertical
lines. The figure has an Agg canvas of its own, so pyplot and its backend stay
untouched.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from veerunbook.figures import new_figure

if TYPE_CHECKING:
    from veerunbook.timeline import Timeline

# series: (check name prefixes, unit, axis label)
SERIES: Mapping[str, tuple[tuple[str, ...], str, str]] = {
    "error rate": (("5xx error rate",), "%", "error rate (%)"),
    "p95": (("p95 latency", "user API p95"), "ms", "p95 (ms)"),
    "pool": (("connection pool",), "%", "pool use (%)"),
}
LINE_MODES = frozenset({"executed", "failed"})
# Action lines labelled at most; more labels would overlap into an unreadable band.
MAX_LABELS = 12


@dataclass(frozen=True)
class Sample:
    """One observed value of a plotted series: journal time (ISO UTC) and value."""

    series: str
    time: str
    value: float
    check: str
    run: str | None


def sample_of(record: Mapping[str, Any]) -> Sample | None:
    """Return the sample a check record carries, or None when it carries none."""
    name, value = record.get("name"), record.get("observed")
    if not isinstance(name, str) or isinstance(value, bool):
        return None
    if not isinstance(value, int | float):
        return None
    for series, (prefixes, unit, _) in SERIES.items():
        if record.get("unit") == unit and name.startswith(prefixes):
            run = record.get("run")
            run_id = run if isinstance(run, str) else None
            return Sample(series, str(record.get("time")), float(value), name, run_id)
    return None


def plot_png(timeline: Timeline, *, dpi: int = 100) -> bytes:
    """Draw the figure of three axes sharing UTC time and return it as PNG."""
    figure = new_figure(10, 7)
    axes = figure.subplots(3, 1, sharex=True)
    for axis, series in zip(axes, SERIES, strict=True):
        _draw_series(axis, timeline, series)
        _draw_runs(axis, timeline)
        _draw_actions(axis, timeline, label=axis is axes[0])
    axes[-1].set_xlabel("time (UTC)")
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _draw_series(axis: Any, timeline: Timeline, series: str) -> None:
    samples = [sample for sample in timeline.samples if sample.series == series]
    axis.set_ylabel(SERIES[series][2])
    if not samples:
        axis.text(0.5, 0.5, "no samples", ha="center", va="center",
                  transform=axis.transAxes)  # fmt: skip
        return
    times = [parse_time(sample.time) for sample in samples]
    values = [sample.value for sample in samples]
    axis.plot(times, values, marker="o")
    # A flat zero series still gets a visible axis of 0 to 1.
    axis.set_ylim(0, max(max(values) * 1.1, 1.0))


def _draw_runs(axis: Any, timeline: Timeline) -> None:
    times = _times(run.finished or run.started for run in timeline.runs)
    if times:
        axis.plot(times, [0.02] * len(times), "v", color="grey",
                  transform=axis.get_xaxis_transform(), label="run")  # fmt: skip


def _draw_actions(axis: Any, timeline: Timeline, *, label: bool) -> None:
    actions = [
        event
        for event in timeline.events
        if event.kind == "action" and event.status in LINE_MODES
    ]
    if not actions:
        return
    times = [parse_time(event.time) for event in actions]
    colors = [
        "tab:red" if event.status == "failed" else "tab:green" for event in actions
    ]
    axis.vlines(times, 0, 1, colors=colors, transform=axis.get_xaxis_transform())
    if not label:
        return
    for event, when in list(zip(actions, times, strict=True))[:MAX_LABELS]:
        name = str(event.fields.get("name", "action"))
        axis.text(when, 0.98, f"{name} {event.status}", rotation=90, va="top",
                  fontsize=7, transform=axis.get_xaxis_transform())  # fmt: skip


def _times(values: Sequence[str | None] | Any) -> list[datetime]:
    return [parse_time(value) for value in values if value]


def parse_time(value: str) -> datetime:
    """Parse a journal time (ISO 8601 with ``Z``) as an aware UTC datetime."""
    return datetime.fromisoformat(value)
