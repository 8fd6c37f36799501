"""The post-mortem sections read from the timeline's events.

Impact, key events, detection, evidence for the root cause and the action items all
come from what the procedures journaled. The error rate and p95 come from the
timeline's samples, which contain every check that ``timeline_plot.SERIES`` classifies,
in every run. The other measures come from the timeline's events, which keep every
failing or warning check, every change of a check's status and the alerts, so a
measure that stayed within its lines may be absent, and the section states that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from veerunbook.compliance import elapsed_between, time_text
from veerunbook.text import clipped
from veerunbook.timeline import Timeline, TimelineEvent
from veerunbook.timeline_plot import sample_of

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
# Evidence of an action item longer than this keeps its whole sentences only.
EVIDENCE_CHARS = 300


@dataclass(frozen=True)
class Measure:
    """One impact measure: how to read it and whether worse is more.

    ``series`` names the ``timeline_plot.SERIES`` entry whose samples count, so a
    check with a suffixed name ("5xx error rate before the rollback") counts too.
    ``read`` takes the measure from other events, such as alerts.
    """

    label: str
    unit: str
    worst_is_max: bool
    read: Callable[[TimelineEvent], float | None]
    series: str | None = None


@dataclass(frozen=True)
class Worst:
    """The worst value of a measure, its time (ISO UTC) and where it was observed."""

    measure: Measure
    value: float
    time: str
    source: str


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _alert(alert_prefix: str, unit: str) -> Callable[[TimelineEvent], float | None]:
    """Build a reader of an alert's compared value or an alert check's observed one."""

    def read(event: TimelineEvent) -> float | None:
        fields = event.fields
        name = str(fields.get("name", ""))
        is_check = event.kind == "check" and fields.get("unit") == unit
        if is_check and name.startswith(f"alert {alert_prefix}"):
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
    Measure("5xx error rate", "%", True, _alert("ErrorRate", "%"), "error rate"),
    Measure("p95 response time", "ms", True, _alert("ResponseTimeP95", "ms"), "p95"),
    Measure("availability", "%", False, _alert("Availability", "%")),
    Measure("blocked IPs in one minute", "IPs", True, _blocked_ips),
)


def worst_values(timeline: Timeline) -> list[Worst]:
    """Return the worst value of each measure that has one, across all runs."""
    found = []
    for measure in MEASURES:
        best: Worst | None = None
        for candidate in _candidates(timeline, measure):
            if _is_worse(measure, candidate.value, best):
                best = candidate
        if best is not None:
            found.append(best)
    return found


def _candidates(timeline: Timeline, measure: Measure) -> list[Worst]:
    """List every value of ``measure``: the samples, then the events.

    A check event is read as a sample too, for a timeline built without samples.
    """
    procedures = {run.run: run.procedure for run in timeline.runs}
    found = []
    for sample in timeline.samples:
        if measure.series is not None and sample.series == measure.series:
            source = f'check "{sample.check}"'
            if sample.run:
                procedure = procedures.get(sample.run)
                source += f", run {sample.run}" + (
                    f", {procedure}" if procedure else ""
                )
            found.append(Worst(measure, sample.value, sample.time, source))
    for event in timeline.events:
        value = measure.read(event)
        read = sample_of(event.fields) if event.kind == "check" else None
        if read is not None and read.series == measure.series:
            value = read.value
        if value is not None:
            source = event.procedure or event.fields.get("alert") or event.kind
            if event.run:
                source = f"{source}, run {event.run}"
            found.append(Worst(measure, value, event.time, str(source)))
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
            "was recorded during the incident."
        )
    for item in worst:
        lines.append(
            f"- Worst {item.measure.label}: {item.value:g} {item.measure.unit}"
            f" at {time_text(item.time)} ({item.source})"
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


# Recovery option keys and the names of the guarded actions that carry them out.
ACTION_OPTIONS = {
    "rollback": ("deploy-rollback",),
    "block": ("block-ip",),
    "rotate-keys": ("rotate-keys",),
}


def action_items(timeline: Timeline) -> Lines:
    """List the ranked recovery options of every procedure as unassigned items.

    An option whose action was executed in the incident is checked and names the
    run. Other options stay open, also when a run refused or failed their action.
    """
    executed = [
        event
        for event in timeline.events
        if event.kind == "action" and event.status == "executed"
    ]
    items: dict[str, str] = {}
    for event in timeline.events:
        options = event.fields.get("recovery_options")
        if event.kind != "note" or not isinstance(options, list):
            continue
        for option in sorted(_ranked(options), key=lambda item: item["rank"]):
            action = str(option.get("action"))
            source = f"{event.procedure}, rank {option['rank']}"
            evidence = option.get("evidence")
            if isinstance(evidence, list):
                evidence = "; ".join(str(item) for item in evidence)
            if evidence:
                source += f", because {whole_sentences(str(evidence), EVIDENCE_CHARS)}"
            done = _executed_by(option, executed)
            if done is None:
                item = f"- [ ] {action} ({source}) - owner: _to assign_"
            else:
                item = f"- [x] {action} ({source}) ({_done_text(done)})"
            items.setdefault(action, item)
    lines = ["## Action items", ""]
    lines += list(items.values()) or ["- [ ] none proposed by the procedures"]
    return lines


def _executed_by(
    option: dict[str, Any], executed: Sequence[TimelineEvent]
) -> TimelineEvent | None:
    """Return the first executed action that carries out ``option``, if any."""
    # NOTE: the match is by option key and action name only, so a rollback executed
    # to another version than the option names still checks the option.
    names = ACTION_OPTIONS.get(str(option.get("key")), ())
    for event in executed:
        name = str(event.fields.get("name", ""))
        if any(name == action or name.startswith(f"{action} ") for action in names):
            return event
    return None


def _done_text(event: TimelineEvent) -> str:
    verified = "verified" if event.fields.get("verified") is True else "not verified"
    return f"done: run {event.run or 'unknown'}, {verified}"


def whole_sentences(text: str, limit: int) -> str:
    """Cut ``text`` after its last sentence or "; " item that ends within ``limit``.

    Returns ``text`` in full when it fits, or when its first sentence does not, so
    evidence is never cut inside a sentence.
    """
    if len(text) <= limit:
        return text
    end = max(text.rfind(". ", 0, limit), text.rfind("; ", 0, limit))
    return text[: end + 1].rstrip(";") if end > 0 else text


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
