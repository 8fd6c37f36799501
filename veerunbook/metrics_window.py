"""The window between two scrapes: process restarts and reset-aware counter increases.

A counter counts from 0 again when its process restarts, and an exporter that creates
series lazily shows a series only after its first increment. So the increase of a
series over a window is its later value minus its earlier value, except:

- after a process restart every series counts from 0, so its increase is its later
  value, and the requests between the earlier scrape and the restart are lost;
- a series whose value decreased was reset on its own, so its increase is its later
  value (as in Prometheus's ``increase()``);
- a series absent from the earlier scrape counts fully, because it was created within
  the window (Prometheus's ``rate()`` misses it);
- a series absent from the later scrape contributes 0.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from veerunbook.metrics_gauges import gauge
from veerunbook.metrics_scrape import Scrape, format_line_ranges

# Requests to these routes come from scrapers and health probes, not from users.
DEFAULT_EXCLUDE = r"^/metrics$|^/health.*|^/readyz$|^/healthz$"

ROUTE_LABELS = ("endpoint", "route", "path", "handler")
STATUS_LABELS = ("status", "status_code", "code")

_UPTIME_GAUGES = ("process_uptime_seconds", "nodejs_process_uptime_seconds")


@dataclass(frozen=True)
class Restart:
    """A process restart between two scrapes and the evidence for it.

    ``uptime_seconds`` is how long the process had been up at the later scrape. When
    ``uptime_is_lower_bound`` is true, it comes from an uptime gauge that the exporter
    may refresh only now and then, so the restart may be older.
    """

    evidence: str
    uptime_seconds: float | None
    uptime_is_lower_bound: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Window:
    """The span two scrapes cover, what happened within it and what is missing."""

    seconds: float | None
    restart: Restart | None
    partial: bool = False
    notes: list[str] = field(default_factory=list)


def label_value(labels: dict[str, str], names: tuple[str, ...]) -> str | None:
    """Return the value of the first label in ``names`` that ``labels`` has."""
    for name in names:
        if name in labels:
            return labels[name]
    return None


def compile_exclude(pattern: str | None) -> re.Pattern[str] | None:
    """Compile a route exclusion pattern, raising ValueError when it is invalid."""
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ValueError(
            f"invalid exclude pattern {pattern!r}: {error}. Pass a Python regular"
            " expression that matches the routes to leave out, or None."
        ) from error


def is_excluded(route: str | None, exclude: re.Pattern[str] | None) -> bool:
    return route is not None and exclude is not None and bool(exclude.search(route))


def detect_restart(before: Scrape, after: Scrape) -> Restart | None:
    """Detect a process restart between two scrapes of the same process.

    The signals, strongest first: ``process_start_time_seconds`` changed, an uptime
    gauge decreased, or every counter series present in both scrapes decreased.
    """
    start_before = gauge(before, "process_start_time_seconds")
    start_after = gauge(after, "process_start_time_seconds")
    if (
        start_before is not None
        and start_after is not None
        and start_after > start_before
    ):
        uptime = None
        if after.scraped_at is not None:
            uptime = max(after.scraped_at - start_after, 0.0)
        evidence = (
            f"process_start_time_seconds changed from {start_before:.0f}"
            f" to {start_after:.0f}"
        )
        return Restart(evidence, uptime, uptime_is_lower_bound=False)

    for name in _UPTIME_GAUGES:
        uptime_before = gauge(before, name)
        uptime_after = gauge(after, name)
        if (
            uptime_before is not None
            and uptime_after is not None
            and uptime_after < uptime_before
        ):
            evidence = f"{name} fell from {uptime_before:.1f} s to {uptime_after:.1f} s"
            return Restart(evidence, uptime_after, uptime_is_lower_bound=True)

    decreased, common = counter_decreases(before, after)
    if common >= 2 and decreased == common:
        evidence = f"all {common} counter series present in both scrapes decreased"
        return Restart(evidence, None, uptime_is_lower_bound=False)
    return None


def counter_decreases(before: Scrape, after: Scrape) -> tuple[int, int]:
    """Count counter series that decreased, and the counter series in both scrapes."""
    earlier = {
        (sample.name, series_key(sample.labels)): sample.value
        for sample in before.samples
        if _is_counter(before, sample.name)
    }
    decreased = common = 0
    for sample in after.samples:
        previous = earlier.get((sample.name, series_key(sample.labels)))
        if previous is not None and _is_counter(after, sample.name):
            common += 1
            decreased += sample.value < previous
    return decreased, common


def open_window(before: Scrape | None, after: Scrape) -> Window:
    """Describe the window from ``before`` to ``after``, or since the process start."""
    window = _since_start(after) if before is None else _between(before, after)
    for which, scrape in (("earlier", before), ("later", after)):
        if scrape is not None and not scrape.valid:
            window.partial = True
            window.notes.append(
                f"the {which} scrape had {len(scrape.rejected_lines)} rejected lines"
                f" ({format_line_ranges(scrape.rejected_lines)}), so their series are"
                " missing here. A Prometheus server would have rejected that scrape."
            )
    return window


def _since_start(after: Scrape) -> Window:
    start = gauge(after, "process_start_time_seconds")
    seconds = None
    if start is not None and after.scraped_at is not None:
        seconds = max(after.scraped_at - start, 0.0)
    else:
        seconds = next(
            (
                value
                for name in _UPTIME_GAUGES
                if (value := gauge(after, name)) is not None
            ),
            None,
        )
    shown = "an unknown time" if seconds is None else f"{seconds:.0f} s"
    note = (
        "no earlier scrape, so the counts are cumulative since the process started"
        f" ({shown} before the scrape)."
    )
    return Window(seconds, None, notes=[note])


def _between(before: Scrape, after: Scrape) -> Window:
    seconds = None
    if before.scraped_at is not None and after.scraped_at is not None:
        seconds = after.scraped_at - before.scraped_at
        if seconds < 0:
            raise ValueError(
                f"the earlier scrape ({before.scraped_at}) is later than the later"
                f" scrape ({after.scraped_at}). Pass the scrapes in time order."
            )
    restart = detect_restart(before, after)
    window = Window(seconds, restart)
    if restart is not None:
        window.partial = True
        window.notes.append(_restart_note(restart, seconds))
    return window


def _restart_note(restart: Restart, seconds: float | None) -> str:
    if restart.uptime_seconds is None:
        since = "between the scrapes"
    elif restart.uptime_is_lower_bound:
        since = (
            f"at least {restart.uptime_seconds:.0f} s before the later scrape"
            " (the uptime gauge may be stale)"
        )
    else:
        since = f"{restart.uptime_seconds:.0f} s before the later scrape"
    span = "the window" if seconds is None else f"the {seconds:.0f} s window"
    return (
        f"{restart.evidence}, so the process restarted {since}. Its counters started"
        " again from 0, so the counts cover only the time since the restart, and"
        " requests between the earlier scrape and the restart are lost. A condition"
        f" that must hold for {span} can be neither confirmed nor ruled out from these"
        " scrapes."
    )


def increase(
    previous: float | None, current: float, restarted: bool
) -> tuple[float, bool]:
    """Return a counter series' increase, never negative, and whether it was reset."""
    current = max(current, 0.0)
    if restarted or previous is None or not math.isfinite(previous):
        return current, False
    previous = max(previous, 0.0)
    if current < previous:
        return current, True
    return current - previous, False


def json_safe(value: Any) -> Any:
    """Replace NaN and infinities with None, recursively, so that JSON can carry it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def _is_counter(scrape: Scrape, name: str) -> bool:
    kind = scrape.type_of(name)
    return kind == "counter" or (kind in (None, "unknown") and name.endswith("_total"))


def series_key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """Return a hashable identity of a label set."""
    return tuple(sorted(labels.items()))
