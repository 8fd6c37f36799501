"""Tests for acknowledgement and escalation compliance on hand-built timelines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from veerunbook.compliance import (
    LATE,
    MET,
    MISSED,
    NOT_APPLICABLE,
    NOT_DUE,
    PENDING,
    Compliance,
    EscalationCheck,
    assess,
    elapsed_text,
    most_severe,
)
from veerunbook.incident import Incident, SeverityChange
from veerunbook.journal import utc_timestamp
from veerunbook.timeline import Timeline, TimelineEvent

OPENED = datetime(2026, 12, 4, 16, 0, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return utc_timestamp(OPENED + timedelta(seconds=seconds))


def event(seconds: float, kind: str, **fields: Any) -> TimelineEvent:
    return TimelineEvent(0, at(seconds), kind, kind, None, None, None, None, fields)


def timeline(
    classes: list[tuple[float, str]],
    *,
    acked: float | None = None,
    resolved: float | None = None,
    events: list[TimelineEvent] | None = None,
) -> Timeline:
    history, previous = [], None
    for seconds, severity in classes:
        history.append(SeverityChange(at(seconds), severity, previous))
        previous = severity
    incident = Incident(
        id="INC-1",
        title="checkout failing",
        severity=previous,
        opened_at=at(0),
        acknowledged_at=at(acked) if acked is not None else None,
        resolved_at=at(resolved) if resolved is not None else None,
        updated_at=at(0),
        severity_history=history,
    )
    found = list(events or [])
    if acked is not None:
        found.append(event(acked, "acknowledged", acknowledged_by="ana"))
    return Timeline(incident, sorted(found, key=lambda item: item.time))


def assessed(line: Timeline, now_s: float = 86400.0) -> Compliance:
    return assess(line, now=OPENED + timedelta(seconds=now_s))


def step(result: Compliance, role: str | None, who: str = "") -> EscalationCheck:
    return next(s for s in result.escalation if s.role == role and who in s.who)


def test_ack_exactly_on_target_is_met() -> None:
    result = assessed(timeline([(0, "P0")], acked=15 * 60, resolved=3600))
    assert result.acknowledgement.status == MET


def test_ack_one_second_late_is_missed() -> None:
    result = assessed(timeline([(0, "P0")], acked=15 * 60 + 1, resolved=3600))
    assert result.acknowledgement.status == MISSED


def test_ack_delay_and_responder() -> None:
    ack = assessed(timeline([(0, "P1")], acked=750, resolved=3600)).acknowledgement
    assert ack.delay_s == 750.0
    assert ack.acknowledged_by == "ana"
    assert ack.target_minutes == 60
    assert ack.due_at == at(3600)


def test_ack_pending_while_open_within_target() -> None:
    result = assessed(timeline([(0, "P1")]), now_s=59 * 60)
    assert result.acknowledgement.status == PENDING


def test_ack_missed_once_target_passes_while_open() -> None:
    result = assessed(timeline([(0, "P1")]), now_s=61 * 60)
    assert result.acknowledgement.status == MISSED


def test_resolved_without_ack_is_missed() -> None:
    result = assessed(timeline([(0, "P2")], resolved=600))
    assert result.acknowledgement.status == MISSED


def test_p3_is_not_applicable() -> None:
    result = assessed(timeline([(0, "P3")], acked=10))
    assert result.acknowledgement.status == NOT_APPLICABLE
    assert result.escalation[0].who == "standard ticket queue"


def test_no_class_is_not_applicable() -> None:
    result = assessed(timeline([], acked=10))
    assert result.acknowledgement.status == NOT_APPLICABLE
    assert result.escalation == ()


def test_most_severe_class_sets_the_targets() -> None:
    result = assessed(timeline([(0, "P2"), (300, "P0"), (900, "P2")], acked=1000))
    assert result.severity == "P2"
    assert result.assessed_class == "P0"
    assert result.acknowledgement.target_minutes == 15
    assert result.acknowledgement.status == MISSED


def test_class_notes_name_changes_and_rule() -> None:
    notes = assessed(timeline([(0, "P2"), (300, "P0"), (900, "P2")])).class_notes()
    assert notes[0] == "class P2 from 2026-12-04 16:00:00 UTC"
    assert notes[1] == "class P0 from 2026-12-04 16:05:00 UTC (was P2)"
    assert "the targets follow P0" in notes[3]


def test_most_severe_ignores_unknown() -> None:
    assert most_severe([None, "P2", "X", "P1"]) == "P1"


def test_escalation_within_window_is_met() -> None:
    line = timeline(
        [(0, "P0")],
        acked=60,
        resolved=7200,
        events=[
            event(20 * 60, "escalated", escalated_to="security", escalated_by="bo")
        ],
    )
    security = step(assessed(line), "security")
    assert security.status == MET
    assert security.reached_at == at(20 * 60)
    assert security.reached_by == "escalated to security by bo"
    assert security.due_at == at(15 * 60)
    assert security.deadline_at == at(30 * 60)


def test_escalation_exactly_at_window_end_is_met() -> None:
    line = timeline(
        [(0, "P0")],
        resolved=7200,
        events=[event(30 * 60, "escalated", escalated_to="security")],
    )
    assert step(assessed(line), "security").status == MET


def test_escalation_after_window_is_late() -> None:
    line = timeline(
        [(0, "P0")],
        resolved=7200,
        events=[event(30 * 60 + 1, "escalated", escalated_to="security")],
    )
    assert step(assessed(line), "security").status == LATE


def test_unreached_step_is_missed_after_due() -> None:
    result = assessed(timeline([(0, "P0")], acked=60, resolved=40 * 60))
    assert step(result, "infrastructure").status == MISSED


def test_step_not_due_when_resolved_first() -> None:
    result = assessed(timeline([(0, "P0")], acked=60, resolved=10 * 60))
    assert step(result, "security").status == NOT_DUE


def test_step_resolved_exactly_at_due_is_not_due() -> None:
    result = assessed(timeline([(0, "P0")], acked=60, resolved=15 * 60))
    assert step(result, "security").status == NOT_DUE


def test_step_pending_while_open_in_window() -> None:
    result = assessed(timeline([(0, "P0")], acked=60), now_s=20 * 60)
    assert step(result, "security").status == PENDING


def test_open_ended_step_deadline_is_its_start() -> None:
    line = timeline(
        [(0, "P0")],
        resolved=7200,
        events=[event(3601, "escalated", escalated_to="engineering_manager")],
    )
    assert step(assessed(line), "engineering_manager").status == LATE


def test_acknowledgement_reaches_oncall_step() -> None:
    oncall = step(
        assessed(timeline([(0, "P1")], acked=120, resolved=600)), "primary_oncall"
    )
    assert oncall.status == MET
    assert oncall.reached_by == "acknowledged by ana"


def test_ack_reaches_step_without_role_first() -> None:
    line = timeline(
        [(0, "P1")], acked=60, resolved=3600, events=[event(90, "note", text="x")]
    )
    investigation = step(assessed(line), None, "investigation")
    assert investigation.status == MET
    assert investigation.reached_at == at(60)


def test_note_reaches_step_only_automatically() -> None:
    line = timeline([(0, "P1")], resolved=3600, events=[event(90, "note", text="x")])
    investigation = step(assessed(line), None, "investigation")
    assert investigation.reached_at == at(90)
    assert str(investigation.reached_by).startswith("only automatically")


def test_unnamed_ack_is_automatic() -> None:
    line = timeline([(0, "P1")], resolved=3600, events=[event(30, "acknowledged")])
    line.incident.acknowledged_at = at(30)
    ack = assessed(line).acknowledgement
    assert ack.automatic_at == at(30)
    assert ack.acknowledged_by is None


def test_elapsed_text_minutes_and_seconds() -> None:
    assert elapsed_text(750) == "12 min 30 s"


def test_elapsed_text_zero() -> None:
    assert elapsed_text(0.2) == "0 s"


def test_elapsed_text_hours_drop_zero_parts() -> None:
    assert elapsed_text(3900) == "1 h 5 min"
