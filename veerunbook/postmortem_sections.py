"""The post-mortem sections read from the timeline's events.

Impact, key events, detection, evidence for the root cause and the action items all
come from what the procedures journaled. The timeline keeps every failing or warning
check and every change of a check's status, so the worst measured values are among
them. A measure that stayed within its lines may be absent, and the section states
that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from veerunbook.compliance import elapsed_between, time_text
from veerunbook.text import clipped
from veerunbook.timeline import Timeline, TimelineEvent

Lines = list[str]

# Kinds shown in the key-event table; checks and plain notes are left to the evidence.
KEY_KINDS = frozenset(
    {"incident", "severity", "alert", "acknowledged", "escalated", "resolved"}
    | {"reopened", "run"}
)
# Rows of the key-event table; the full list is in ``veerunbook timeline``.
MAX_KEY_EVENTS = 40
MAX_EVIDENCE = 12
CELL_CHARS = 200


@dataclass(frozen=True)
class Measure:
    """One impact measure: how to read it from an event and whether worse is more."""

    label: str
    unit: str
    worst_is_max: bool
    read: Callable[[TimelineEvent], float | None]


@dataclass(frozen=True)
class Worst:
    """The worst value of a measure, when and where it was observed."""

    measure: Measure
    value: float
    event: TimelineEvent


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _check_or_alert(
    check_names: Sequence[str], alert_prefix: str, unit: str
) -> Callable[[TimelineEvent], float | None]:
    """Build a reader of a check's observed value or an alert's compared value."""

    def read(event: TimelineEvent) -> float | None:
        fields = event.fields
        if event.kind == "check" and fields.get("unit") == unit:
            name = str(fields.get("name", ""))
            if name in check_names or name.startswith(f"alert {alert_prefix}"):
                return _number(fields.get("observed"))
        alert = str(fields.get("alert", ""))
        if event.kind == "alert" and alert.startswith(alert_prefix):
            return _number(fields.get("value"))
        return None

    return read


def _blocked_ips(event: TimelineEvent) -> float | None:
    """Read blocked IPs per minute from a security check or a blocked-IP alert."""
    fields = event.fields
    if event.kind == "check" and fields.get("name") == "blocked IPs in the last minute":
        return _number(fields.get("observed"))
    evidence = fields.get("evidence")
    if event.kind == "check" and isinstance(evidence, dict):
        return _number(evidence.get("blocked_last_minute"))
    if event.kind == "alert" and str(fields.get("alert", "")).startswith("BlockedIps"):
        return _number(fields.get("value"))
    return None


MEASURES = (
    Measure(
        "5xx error rate",
        "%",
        True,
        _check_or_alert(("5xx error rate",), "ErrorRate", "%"),
    ),
    Measure(
        "p95 response time",
        "ms",
        True,
        _check_or_alert(
            ("p95 latency", "user API p95", "slowest route p95"),
            "ResponseTimeP95",
            "ms",
        ),
    ),
    Measure("availability", "%", False, _check_or_alert((), "Availability", "%")),
    Measure("blocked IPs in one minute", "IPs", True, _blocked_ips),
)


def worst_values(timeline: Timeline) -> list[Worst]:
    """Return the worst observed value of each measure that has one."""
    found = []
    for measure in MEASURES:
        best: Worst | None = None
        for event in timeline.events:
            value = measure.read(event)
            if value is not None and _is_worse(measure, value, best):
                best = Worst(measure, value, event)
        if best is not None:
            found.append(best)
    return found


def _is_worse(measure: Measure, value: float, best: Worst | None) -> bool:
    if best is None:
        return True
    return value > best.value if measure.worst_is_max else value < best.value


def impact(timeline: Timeline) -> Lines:
    """List the worst measured error rate, p95, availability and blocked IPs."""
    lines = ["## Impact", ""]
    worst = worst_values(timeline)
    if not worst:
        lines.append(
            "No error rate, response time, availability or blocked-IP measurement "
            "crossed a line or changed status during the incident."
        )
    for item in worst:
        event = item.event
        source = event.procedure or event.fields.get("alert") or event.kind
        lines.append(
            f"- Worst {item.measure.label}: {item.value:g} {item.measure.unit}"
            f" at {time_text(event.time)} ({source})"
        )
    lines += ["", "_Add who was affected and for how long: users, requests, revenue._"]
    return lines


def key_events(timeline: Timeline) -> Lines:
    """Tabulate the class changes, alerts, runs, executed actions, acknowledgement,
    escalations and resolution, with the time since opening."""
    opened = timeline.incident.opened_at
    rows = [
        event
        for event in timeline.events
        if event.kind in KEY_KINDS
        or (event.kind == "action" and event.status == "executed")
    ]
    lines = [
        "## Timeline",
        "",
        "| time (UTC) | after opening | event |",
        "|---|---|---|",
    ]
    for event in rows[:MAX_KEY_EVENTS]:
        after = elapsed_between(opened, event.time)
        lines.append(f"| {time_text(event.time)} | {after} | {_key_text(event)} |")
    if len(rows) > MAX_KEY_EVENTS:
        more = len(rows) - MAX_KEY_EVENTS
        lines.append(f"| | | {more} more; see `veerunbook timeline` |")
    return lines


def _key_text(event: TimelineEvent) -> str:
    labels = {"run": "run", "alert": "alert", "action": "action executed"}
    label = labels.get(event.kind)
    text = f"{label}: {event.summary}" if label else event.summary
    return cell(text)


def detection(timeline: Timeline) -> Lines:
    """Name the first firing alert or run with findings, and how long it took."""
    opened = timeline.incident.opened_at
    first = next((event for event in timeline.events if _detects(event)), None)
    lines = ["## Detection", ""]
    if first is None:
        lines.append("No alert fired and no run recorded findings.")
        return lines
    after = elapsed_between(opened, first.time)
    what = _detector(first)
    lines.append(f"First detected by {what} at {time_text(first.time)}, {after} after")
    lines[-1] += " the incident was opened."
    since = first.fields.get("since")
    if first.kind == "alert" and isinstance(since, str) and since:
        lag = elapsed_between(since, first.time)
        lines.append("")
        lines.append(
            f"The alert's condition began at {time_text(since)}, {lag} before the "
            "alert was recorded."
        )
    return lines


def _detects(event: TimelineEvent) -> bool:
    if event.kind == "alert":
        return event.status == "firing"
    return event.kind == "run" and event.status == "findings"


def _detector(event: TimelineEvent) -> str:
    if event.kind == "alert":
        return f"alert {event.fields.get('alert')}"
    return f"the {event.procedure} run"


def cause_evidence(timeline: Timeline) -> Lines:
    """List the procedures' diagnoses and the failing checks, for people to judge."""
    diagnoses = [
        f"- {event.procedure or 'note'}: {clipped(str(diagnosis), 400)}"
        for event in timeline.events
        if event.kind == "note"
        and isinstance(diagnosis := event.fields.get("diagnosis"), str)
    ]
    failing: dict[str, TimelineEvent] = {}
    for event in timeline.events:
        if event.kind == "check" and event.status in ("fail", "error"):
            failing[str(event.fields.get("name"))] = event
    checks = [
        f"- {event.procedure or 'check'}: {clipped(event.summary, 300)}"
        for event in list(failing.values())[:MAX_EVIDENCE]
    ]
    lines = ["### Diagnoses the procedures recorded", ""]
    lines += diagnoses or ["- none recorded"]
    lines += ["", "### Failing checks (latest of each name)", ""]
    lines += checks or ["- none"]
    return lines


def action_items(timeline: Timeline) -> Lines:
    """List the ranked recovery options of every procedure as unassigned items."""
    items: dict[str, str] = {}
    for event in timeline.events:
        options = event.fields.get("recovery_options")
        if event.kind != "note" or not isinstance(options, list):
            continue
        for option in sorted(_ranked(options), key=lambda item: item["rank"]):
            action = str(option.get("action"))
            evidence = option.get("evidence")
            if isinstance(evidence, list):
                evidence = "; ".join(str(item) for item in evidence)
            because = f", because {clipped(str(evidence), 300)}" if evidence else ""
            items.setdefault(
                action,
                f"- [ ] {action} ({event.procedure}, rank {option['rank']}{because})"
                " - owner: _to assign_",
            )
    lines = ["## Action items", ""]
    lines += list(items.values()) or ["- [ ] none proposed by the procedures"]
    return lines


def _ranked(options: list[Any]) -> list[dict[str, Any]]:
    return [
        option
        for option in options
        if isinstance(option, dict)
        and isinstance(option.get("rank"), int)
        and not isinstance(option.get("rank"), bool)
        and option["rank"] >= 1
    ]


def cell(text: str) -> str:
    """Return ``text`` as one Markdown table cell: one line, pipes escaped."""
    return clipped(" ".join(text.split()), CELL_CHARS).replace("|", "\\|")
