"""Tests for the post-mortem draft: drills end to end, hand-built timelines per
section."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from veerunbook.cli import main
from veerunbook.compliance import assess
from veerunbook.drill import run_drill
from veerunbook.incident import Incident, SeverityChange
from veerunbook.journal import Journal, sha256_file, utc_timestamp
from veerunbook.postmortem import draft, write_postmortem
from veerunbook.redact import Redactor
from veerunbook.timeline import RunSummary, Timeline, TimelineEvent, build_timeline
from veerunbook.timeline_plot import Sample
from veerunbook.verify import verify

OPENED = datetime(2026, 12, 4, 16, 0, 0, tzinfo=UTC)
NOW = OPENED + timedelta(hours=3)


@pytest.fixture(scope="module")
def drills(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the error-spike and attack drills once, with the shortest window."""
    archive = tmp_path_factory.mktemp("archive")
    for scenario in ("error-spike", "attack"):
        run_drill(
            scenario,
            archive=archive,
            redactor=Redactor(),
            incident=f"DRILL-{scenario}",
            window_seconds=1.0,
        )
    return archive


def journaled(archive: Path, incident: str, field: str) -> list[Any]:
    events = Journal(archive / incident).events()
    return [event[field] for event in events if field in event]


def drill_draft(archive: Path, incident: str) -> str:
    timeline = build_timeline(archive / incident)
    return draft(timeline, assess(timeline))


def test_drill_draft_names_error_spike_class(drills: Path) -> None:
    assert "- Class: P1" in drill_draft(drills, "DRILL-error-spike")


def test_drill_draft_names_error_spike_diagnosis(drills: Path) -> None:
    [diagnosis] = journaled(drills, "DRILL-error-spike", "diagnosis")
    assert diagnosis[:300] in drill_draft(drills, "DRILL-error-spike")


def test_drill_draft_names_attack_class(drills: Path) -> None:
    assert "- Class: P0" in drill_draft(drills, "DRILL-attack")


def test_drill_draft_names_attack_diagnosis(drills: Path) -> None:
    [diagnosis] = journaled(drills, "DRILL-attack", "diagnosis")
    text = drill_draft(drills, "DRILL-attack")
    assert "failed-login burst" in diagnosis
    assert diagnosis[:300] in text


def test_drill_draft_lists_attack_recovery_items(drills: Path) -> None:
    assert "- [ ] block the attacking addresses" in drill_draft(drills, "DRILL-attack")


def test_drill_draft_measures_error_rate(drills: Path) -> None:
    assert "- Worst 5xx error rate: " in drill_draft(drills, "DRILL-error-spike")


def test_cli_postmortem_writes_and_journals(
    drills: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["postmortem", "DRILL-attack", "--archive", str(drills)]) == 0
    path = Path(capsys.readouterr().out.strip())
    folder = drills / "DRILL-attack"
    [files] = journaled(drills, "DRILL-attack", "files")[-1:]
    assert path == folder / "reports" / "postmortem.md"
    assert files == {"reports/postmortem.md": sha256_file(path)}
    assert verify(folder).ok


def test_cli_postmortem_unknown_incident_exits_2(drills: Path) -> None:
    assert main(["postmortem", "NO-SUCH", "--archive", str(drills)]) == 2
    assert not (drills / "NO-SUCH").exists()


def test_write_postmortem_to_other_file(drills: Path, tmp_path: Path) -> None:
    target = tmp_path / "review.md"
    written = write_postmortem(drills, "DRILL-error-spike", output=target)
    assert written == target
    assert target.read_text().startswith("# Post-mortem: drill: error-spike")


# Hand-built timelines for each section.


def at(minutes: float) -> str:
    return utc_timestamp(OPENED + timedelta(minutes=minutes))


def event(
    minutes: float,
    kind: str,
    summary: str = "",
    *,
    status: str | None = None,
    procedure: str | None = None,
    **fields: Any,
) -> TimelineEvent:
    return TimelineEvent(
        0, at(minutes), kind, summary or kind, None, procedure, status, None, fields
    )


def incident(resolved: float | None = 90.0) -> Incident:
    return Incident(
        id="INC-7",
        title="checkout 5xx",
        severity="P1",
        opened_at=at(0),
        acknowledged_at=at(5),
        resolved_at=at(resolved) if resolved is not None else None,
        updated_at=at(0),
        severity_history=[SeverityChange(at(2), "P1", None)],
    )


def run(status: str) -> RunSummary:
    return RunSummary("RUN-1", "high-error-rate", at(3), at(4), status, None, {}, 60.0)


def hand_draft(
    events: list[TimelineEvent], resolved: float | None = 90.0, status: str = "ok"
) -> str:
    # A person acknowledged at minute 5, the time incident.json records.
    acked = event(5, "acknowledged", acknowledged_by="ana")
    ordered = sorted([acked, *events], key=lambda item: item.time)
    line = Timeline(incident(resolved), ordered, [run(status)])
    return draft(line, assess(line, now=NOW))


def test_summary_gives_duration() -> None:
    assert "- Duration: 1 h 30 min" in hand_draft([])


def test_summary_of_open_incident() -> None:
    assert "- Resolved: not yet" in hand_draft([], resolved=None)


def test_impact_takes_worst_error_rate() -> None:
    checks = [
        event(
            3, "check", status="fail", name="5xx error rate", observed=12.5, unit="%"
        ),
        event(
            6, "check", status="fail", name="5xx error rate", observed=31.0, unit="%"
        ),
    ]
    text = hand_draft(checks)
    assert "- Worst 5xx error rate: 31 % at 2026-12-04 16:06:00 UTC" in text


def sampled_draft(samples: list[Sample]) -> str:
    runs = [
        run("ok"),
        RunSummary("RUN-2", "application-rollback", at(9), at(12), "ok", None, {}, 180),
    ]
    line = Timeline(incident(), [], runs, samples)
    return draft(line, assess(line, now=NOW))


def test_impact_counts_suffixed_error_rate_check() -> None:
    samples = [
        Sample("error rate", at(3), 20.8, "5xx error rate", "RUN-1"),
        Sample(
            "error rate", at(10), 25.3, "5xx error rate before the rollback", "RUN-2"
        ),
        Sample("error rate", at(12), 0.4, "5xx error rate after the rollback", "RUN-2"),
    ]
    text = sampled_draft(samples)
    assert (
        "- Worst 5xx error rate: 25.3 % at 2026-12-04 16:10:00 UTC "
        '(check "5xx error rate before the rollback", run RUN-2, '
        "application-rollback)"
    ) in text
    assert "20.8" not in text


def test_impact_takes_worst_p95_across_runs() -> None:
    samples = [
        Sample("p95", at(3), 2400.0, "p95 latency", "RUN-1"),
        Sample("p95", at(11), 3100.0, "user API p95", "RUN-2"),
    ]
    text = sampled_draft(samples)
    assert "- Worst p95 response time: 3100 ms at 2026-12-04 16:11:00 UTC" in text
    assert 'check "user API p95", run RUN-2' in text


def test_impact_ignores_pool_samples() -> None:
    text = sampled_draft([Sample("pool", at(3), 97.0, "connection pool", "RUN-1")])
    assert "No error rate, response time" in text


def test_impact_takes_lowest_availability() -> None:
    alerts = [
        event(4, "alert", status="firing", alert="AvailabilityP0", value=91.0),
        event(8, "alert", status="firing", alert="AvailabilityP0", value=88.5),
    ]
    assert "- Worst availability: 88.5 %" in hand_draft(alerts)


def test_impact_reads_blocked_ips_evidence() -> None:
    check = event(
        3,
        "check",
        status="fail",
        name="high-severity security events",
        evidence={"blocked_last_minute": 64},
    )
    assert "- Worst blocked IPs in one minute: 64 IPs" in hand_draft([check])


def test_impact_without_measures_says_so() -> None:
    assert "No error rate, response time" in hand_draft([])


def test_timeline_lists_class_change_not_checks() -> None:
    events = [
        event(2, "severity", "class set to P1"),
        event(3, "check", "p95 latency: 2400 ms", status="fail"),
    ]
    text = hand_draft(events)
    assert "| 2026-12-04 16:02:00 UTC | 2 min | class set to P1 |" in text
    assert "p95 latency: 2400 ms" not in text.split("## Detection")[0]


def test_timeline_lists_executed_actions_only() -> None:
    events = [
        event(10, "action", "block-ip 203.0.113.9", status="executed"),
        event(11, "action", "block-ip 203.0.113.10", status="dry-run"),
    ]
    text = hand_draft(events)
    assert "action executed: block-ip 203.0.113.9" in text
    assert "block-ip 203.0.113.10" not in text


def test_detection_by_alert_with_start() -> None:
    alert = event(
        1, "alert", status="firing", alert="ErrorRateP0", since=at(-2), value=9.0
    )
    text = hand_draft([alert])
    assert "First detected by alert ErrorRateP0 at 2026-12-04 16:01:00 UTC" in text
    assert "began at 2026-12-04 15:58:00 UTC, 3 min before the alert" in text


def test_detection_by_run_with_findings() -> None:
    found = event(4, "run", status="findings", procedure="triage")
    assert "First detected by the triage run" in hand_draft([found])


def test_root_cause_left_to_reviewers_with_evidence() -> None:
    note = event(5, "note", procedure="high-error-rate", diagnosis="pool exhausted")
    text = hand_draft([note])
    assert "_To be written by the reviewers" in text
    assert "- high-error-rate: pool exhausted" in text


def test_went_well_names_ack_within_target() -> None:
    assert "- Acknowledged 5 min after opening, within the 60 min target." in (
        hand_draft([])
    )


def test_could_go_better_names_failed_run() -> None:
    assert "- Run of high-error-rate ended failed." in hand_draft([], status="failed")


def test_could_go_better_names_missed_escalation() -> None:
    text = hand_draft([])
    assert "Escalation step '+ infrastructure team' is missed (due at 60 min)" in text


def test_action_items_from_ranked_options() -> None:
    options = [
        {"action": "roll back", "evidence": "deploy 1.4.2 preceded errors", "rank": 1},
        {"action": "scale out", "evidence": "", "rank": None},
    ]
    note = event(6, "note", procedure="high-error-rate", recovery_options=options)
    text = hand_draft([note])
    assert "- [ ] roll back (high-error-rate, rank 1, because deploy 1.4.2" in text
    assert "scale out" not in text


def test_follow_ups_due_from_resolution() -> None:
    text = hand_draft([])
    assert "### Within 24 hours, due 2026-12-05 17:30:00 UTC" in text
    assert "### Within one week, due 2026-12-11 17:30:00 UTC" in text


def test_follow_ups_without_resolution() -> None:
    assert "which is not recorded yet" in hand_draft([], resolved=None)


def test_cli_postmortem_keeps_edited_draft(
    drills: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["postmortem", "DRILL-error-spike", "--archive", str(drills)]) == 0
    path = Path(capsys.readouterr().out.strip())
    path.write_text(path.read_text() + "\nRoot cause: a reviewer's words.\n")
    assert main(["postmortem", "DRILL-error-spike", "--archive", str(drills)]) == 2
    assert "a reviewer's words" in path.read_text()
    assert "--force" in capsys.readouterr().err


def test_cli_postmortem_force_overwrites(
    drills: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["postmortem", "DRILL-attack", "--archive", str(drills)]) == 0
    path = Path(capsys.readouterr().out.strip())
    path.write_text("edited\n")
    args = ["postmortem", "DRILL-attack", "--archive", str(drills), "--force"]
    assert main(args) == 0
    assert path.read_text().startswith("# Post-mortem: ")
    assert verify(drills / "DRILL-attack").ok


ROLLBACK_OPTIONS = [
    {"key": "rollback", "action": "roll back to 1.4.2", "evidence": "1.4.3", "rank": 1},
    {"key": "fix", "action": "fix forward: correct 1.4.3", "evidence": "x", "rank": 2},
]


def rollback_events(mode: str) -> list[TimelineEvent]:
    """Return a deploy-rollback of run RUN-2 ending in ``mode`` and its options."""
    fields = {"name": "deploy-rollback", "mode": mode, "verified": mode == "executed"}
    action = TimelineEvent(
        0, at(10), "action", "deploy-rollback", "RUN-2", "application-rollback",
        mode, None, fields,
    )  # fmt: skip
    note = event(
        12, "note", procedure="application-rollback", recovery_options=ROLLBACK_OPTIONS
    )
    return [action, note]


def test_action_items_mark_executed_rollback_done() -> None:
    text = hand_draft(rollback_events("executed"))
    assert "- [x] roll back to 1.4.2 (application-rollback, rank 1, because" in text
    assert "(done: run RUN-2, verified)" in text


def test_action_items_keep_other_option_open() -> None:
    text = hand_draft(rollback_events("executed"))
    assert "- [ ] fix forward: correct 1.4.3 (application-rollback, rank 2" in text


def test_action_items_keep_refused_rollback_open() -> None:
    text = hand_draft(rollback_events("refused"))
    assert "- [ ] roll back to 1.4.2 (application-rollback, rank 1" in text
    assert "done: run" not in text


def test_action_items_keep_whole_sentences() -> None:
    first = "The errors started with 1.4.3 at 16:02. " + "a" * 200 + "."
    evidence = first + " Second sentence " + "b" * 200 + "."
    options = [{"action": "roll back", "evidence": evidence, "rank": 1}]
    note = event(6, "note", procedure="high-error-rate", recovery_options=options)
    text = hand_draft([note])
    assert f"because {first}) - owner" in text
    assert "…" not in text.split("## Action items")[1]


def test_action_items_keep_long_sentence_whole() -> None:
    evidence = "one sentence " + "c" * 400
    options = [{"action": "roll back", "evidence": evidence, "rank": 1}]
    note = event(6, "note", procedure="high-error-rate", recovery_options=options)
    assert f"because {evidence}) - owner" in hand_draft([note])
