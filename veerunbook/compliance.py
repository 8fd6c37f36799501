"""Response-time compliance: acknowledgement and escalation against the runbook.

The runbook gives each class a response time (``severity.RESPONSE_MINUTES``) and an
escalation matrix (``severity.ESCALATION``). ``assess`` measures an incident's timeline
against both, counting from ``opened_at``:

- The class assessed is the most severe one the incident reached, because a class that
  triage finds minutes after opening applies from the start, and the runbook's advice
  is to escalate when in doubt. The latest class and every change are reported too.
- Acknowledgement: measured by the first acknowledgement by a person (an event with
  ``acknowledged_by``). It is ``met`` within the response time, and exactly on the
  target counts as met. It is ``missed`` when later or never, so a resolution
  without an acknowledgement is a miss. It is ``pending`` while the incident is open
  and still within the target, and ``not applicable`` for P3 or no class. An
  acknowledgement without a name (a triage run's) is kept as ``automatic_at`` and
  meets no target.
- Each escalation step is due at ``opened_at`` plus its start minute. Its deadline is
  the end of its window, or the due time for the open-ended last row. A step with a
  contact role is reached by the first escalation to that role, and the on-call
  engineer's step also by a person's acknowledgement. A step without a role is
  reached by a person's acknowledgement or escalation, else by the first note a run
  recorded, which ``reached_by`` marks as automatic. The status is ``met`` when
  reached by the deadline (also before the due time, if before the resolution),
  ``not due`` when the incident was resolved by the due time (or is open and before
  it) without reaching the step, ``late`` when reached after the deadline,
  ``pending`` while open within the window, and ``missed`` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from veerunbook.incident import SeverityChange
from veerunbook.journal import utc_timestamp
from veerunbook.severity import ESCALATION, RESPONSE_MINUTES, SEVERITIES
from veerunbook.timeline import Timeline, TimelineEvent

MET, MISSED, LATE = "met", "missed", "late"
AUTOMATIC = "automatic (by a triage run)"
PENDING, NOT_DUE, NOT_APPLICABLE = "pending", "not due", "not applicable"
ONCALL_ROLE = "primary_oncall"


@dataclass(frozen=True)
class Acknowledgement:
    """The acknowledgement measured against the response time of the class."""

    status: str
    target_minutes: int | None
    due_at: str | None
    acknowledged_at: str | None
    acknowledged_by: str | None
    delay_s: float | None
    automatic_at: str | None = None


@dataclass(frozen=True)
class EscalationCheck:
    """One row of the escalation matrix with its due time and when it was reached."""

    start_minute: int
    end_minute: int | None
    who: str
    role: str | None
    due_at: str
    deadline_at: str
    reached_at: str | None
    reached_by: str | None
    status: str


@dataclass(frozen=True)
class Compliance:
    """The response-time assessment of one incident at ``assessed_at``."""

    severity: str | None
    assessed_class: str | None
    changes: tuple[SeverityChange, ...]
    opened_at: str
    resolved_at: str | None
    assessed_at: str
    acknowledgement: Acknowledgement
    escalation: tuple[EscalationCheck, ...]

    def class_notes(self) -> list[str]:
        """Describe the class changes and which class the targets follow."""
        notes = [
            f"class {change.severity} from {time_text(change.time)}"
            + (f" (was {change.previous})" if change.previous else "")
            for change in self.changes
        ]
        if self.assessed_class and self.assessed_class != self.severity:
            notes.append(
                f"the targets follow {self.assessed_class}, the most severe class "
                f"reached, not the latest class {self.severity or 'none'}"
            )
        return notes


def assess(timeline: Timeline, now: datetime | None = None) -> Compliance:
    """Assess acknowledgement and escalation of ``timeline``'s incident.

    ``now`` (default: the current time) decides what is pending while it is open.
    """
    incident = timeline.incident
    moment = now or datetime.now(UTC)
    end = parse_time(incident.resolved_at) if incident.resolved_at else moment
    classes = [change.severity for change in incident.severity_history]
    assessed = most_severe([*classes, incident.severity])
    return Compliance(
        severity=incident.severity,
        assessed_class=assessed,
        changes=tuple(incident.severity_history),
        opened_at=incident.opened_at,
        resolved_at=incident.resolved_at,
        assessed_at=utc_timestamp(moment),
        acknowledgement=_acknowledgement(timeline, assessed, end),
        escalation=tuple(_escalation(timeline, assessed, end)),
    )


def most_severe(classes: Sequence[str | None]) -> str | None:
    """Return the most severe of ``classes`` (P0 first), or None when there is none."""
    known = [value for value in classes if value in SEVERITIES]
    return min(known, key=SEVERITIES.index) if known else None


def _acknowledgement(
    timeline: Timeline, severity: str | None, end: datetime
) -> Acknowledgement:
    incident = timeline.incident
    target = RESPONSE_MINUTES.get(severity or "")
    opened = parse_time(incident.opened_at)
    acked, by = person_acknowledgement(timeline.events)
    automatic = incident.acknowledged_at if automatic_first(timeline.events) else None
    delay = (parse_time(acked) - opened).total_seconds() if acked else None
    if target is None:
        status = NOT_APPLICABLE
        return Acknowledgement(status, None, None, acked, by, delay, automatic)
    due = opened + timedelta(minutes=target)
    if delay is not None:
        status = MET if delay <= target * 60 else MISSED
    elif incident.resolved_at is None and end <= due:
        status = PENDING
    else:
        status = MISSED
    return Acknowledgement(
        status, target, utc_timestamp(due), acked, by, delay, automatic
    )


def person_acknowledgement(
    events: Sequence[TimelineEvent],
) -> tuple[str | None, str | None]:
    """Return the time and name of the first acknowledgement that names a person."""
    for event in events:
        by = event.fields.get("acknowledged_by")
        if event.kind == "acknowledged" and isinstance(by, str) and by:
            return event.time, by
    return None, None


def automatic_first(events: Sequence[TimelineEvent]) -> bool:
    """Return whether the first acknowledgement journaled names no person."""
    for event in events:
        if event.kind == "acknowledged":
            return not event.fields.get("acknowledged_by")
    return False


def _escalation(
    timeline: Timeline, severity: str | None, end: datetime
) -> list[EscalationCheck]:
    opened = parse_time(timeline.incident.opened_at)
    open_now = timeline.incident.resolved_at is None
    checks = []
    for start, stop, who, role in ESCALATION.get(severity or "", ()):
        due = opened + timedelta(minutes=start)
        deadline = opened + timedelta(minutes=stop if stop is not None else start)
        reached_at, reached_by = _reached(timeline, role)
        if reached_at is not None and parse_time(reached_at) <= end:
            status = MET if parse_time(reached_at) <= deadline else LATE
        elif end <= due:
            status = NOT_DUE
        elif reached_at is not None:
            status = MET if parse_time(reached_at) <= deadline else LATE
        elif open_now and end <= deadline:
            status = PENDING
        else:
            status = MISSED
        checks.append(
            EscalationCheck(
                start,
                stop,
                who,
                role,
                utc_timestamp(due),
                utc_timestamp(deadline),
                reached_at,
                reached_by,
                status,
            )
        )
    return checks


def _reached(timeline: Timeline, role: str | None) -> tuple[str | None, str | None]:
    """Return when and by what the step of ``role`` was first reached.

    A person's escalation or acknowledgement counts first. A step without a role
    falls back to the first note, which runs record by themselves, so the returned
    text marks it as reached only automatically.
    """
    for event in timeline.events:
        if role is not None and event.fields.get("escalated_to") == role:
            by = event.fields.get("escalated_by")
            return event.time, f"escalated to {role}" + (f" by {by}" if by else "")
        by = event.fields.get("acknowledged_by")
        named = event.kind == "acknowledged" and isinstance(by, str) and bool(by)
        if named and role in (None, ONCALL_ROLE):
            return event.time, f"acknowledged by {by}"
        if role is None and event.kind == "escalated":
            return event.time, f"{event.summary}"
    if role is not None:
        return None, None
    for event in timeline.events:
        if event.kind == "note":
            source = f"the {event.procedure} run" if event.procedure else "a run"
            return event.time, f"only automatically: a note by {source}"
    return None, None


def parse_time(stamp: str) -> datetime:
    """Parse a journal time such as ``2026-12-04T16:15:30.123456Z`` as UTC."""
    moment = datetime.fromisoformat(stamp)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def time_text(stamp: str | None) -> str:
    """Format a journal time to the second: ``2026-12-04 16:15:30 UTC``."""
    if not stamp:
        return "not recorded"
    return f"{parse_time(stamp).astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def elapsed_text(seconds: float) -> str:
    """Format a duration rounded to the second: ``12 min 30 s``, ``1 h 5 min``."""
    total = round(seconds)
    sign = "-" if total < 0 else ""
    hours, rest = divmod(abs(total), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "min"), (secs, "s")]
    shown = [f"{value} {unit}" for value, unit in parts if value]
    return sign + (" ".join(shown) or "0 s")


def elapsed_between(start: str, end: str) -> str:
    """Format the time from one journal time to another as ``elapsed_text`` does."""
    return elapsed_text((parse_time(end) - parse_time(start)).total_seconds())
