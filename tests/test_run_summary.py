"""Summary lines of a finished run, read from journals written through the record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from veerunbook.incident import ARCHIVE_ENV
from veerunbook.probe import ProbeResult
from veerunbook.procedures import list_procedures
from veerunbook.record import INCIDENT_ENV, RUN_ID_ENV, RunContext, start_run
from veerunbook.redact import Redactor
from veerunbook.run_actions import action_lines
from veerunbook.run_summary import (
    RUNBOOK_SECTIONS,
    by_hand,
    class_text,
    diagnosis_lines,
    finding_line,
    next_lines,
    problem_lines,
    run_events,
    triage_completed,
)

INCIDENT = "INC-SUMMARY"

ROLLBACK = {
    "action": "roll back the deployment",
    "evidence": "deployment v2.4.1 at 14:02 UTC, 3 min before the errors started",
    "rank": 1,
}
HOTFIX = {
    "action": "fix the defect forward (hotfix)",
    "evidence": "errors are code-level exceptions",
    "rank": 2,
}
SCALE = {
    "action": "scale application resources",
    "evidence": "memory, pool and CPU are within their limits",
    "rank": None,
}


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Record standalone runs, outside any runner, into ``tmp_path``."""
    for name in (RUN_ID_ENV, INCIDENT_ENV, ARCHIVE_ENV, "VEERUNBOOK_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def start(archive: Path, procedure: str) -> RunContext:
    return start_run(
        procedure, incident=INCIDENT, archive=str(archive), redactor=Redactor()
    )


def events_of(run: RunContext) -> list[dict[str, Any]]:
    return run_events(run.incident_dir, run.run_id)


def diagnosed(archive: Path, options: list[Any], **actions: str) -> list[str]:
    """Journal a high-error-rate run with a diagnosis and options; return its lines."""
    run = start(archive, "high-error-rate")
    for name, mode in actions.items():
        run.action(name, mode)
    line = "5xx 27.3 % of user requests, above the critical alert line (5 % for 2 min)"
    run.note(f"diagnosis: {line}", diagnosis=line)
    run.note("recovery options ranked", recovery_options=options)
    run.finish()
    return diagnosis_lines(events_of(run))


def test_class_not_set_before_triage() -> None:
    text = class_text(
        None,
        procedure="high-error-rate",
        status="findings",
        triage_done=False,
        incident=INCIDENT,
    )
    assert text == (
        "not set (triage sets it: veerunbook run triage --incident INC-SUMMARY)"
    )


def test_class_no_incident_after_triage(tmp_path: Path) -> None:
    start(tmp_path, "triage").finish("ok")
    done = triage_completed(tmp_path / INCIDENT)
    text = class_text(
        None,
        procedure="high-error-rate",
        status="findings",
        triage_done=done,
        incident=INCIDENT,
    )
    assert done is True
    assert text.startswith("no incident (triage found none")


def test_failed_triage_not_completed(tmp_path: Path) -> None:
    start(tmp_path, "triage").finish("failed")
    assert triage_completed(tmp_path / INCIDENT) is False


def test_other_procedure_not_triage(tmp_path: Path) -> None:
    start(tmp_path, "high-error-rate").finish("findings")
    assert triage_completed(tmp_path / INCIDENT) is False


def test_class_of_triage_run() -> None:
    found_none = class_text(
        None, procedure="triage", status="ok", triage_done=True, incident=INCIDENT
    )
    failed = class_text(
        None, procedure="triage", status="failed", triage_done=False, incident=INCIDENT
    )
    classified = class_text(
        "P1",
        procedure="high-error-rate",
        status="findings",
        triage_done=True,
        incident=INCIDENT,
    )
    assert found_none == "no incident"
    assert failed == "not determined: the run did not complete"
    assert classified == "P1"


def test_diagnosis_line_from_journal(tmp_path: Path) -> None:
    lines = diagnosed(tmp_path, [HOTFIX, ROLLBACK, SCALE])
    assert lines[0] == (
        "diagnosis: 5xx 27.3 % of user requests, above the critical alert line "
        "(5 % for 2 min)"
    )


def test_action_line_shows_rank_1(tmp_path: Path) -> None:
    lines = diagnosed(tmp_path, [SCALE, HOTFIX, ROLLBACK])
    assert lines[1] == (
        "action:    1. roll back the deployment (because deployment v2.4.1 at "
        "14:02 UTC, 3 min before the errors started)"
    )
    assert lines[2] == "           none of the recovery options was carried out"
    assert len(lines) == 3


def test_action_line_without_ranked_option(tmp_path: Path) -> None:
    lines = diagnosed(tmp_path, [SCALE, {**HOTFIX, "rank": None}])
    assert lines[1] == (
        "action:    none ranked: no recovery option has evidence for it"
    )
    assert len(lines) == 2


@pytest.mark.parametrize("rank", [0, -1, True, "1", 1.0])
def test_invalid_rank_not_ranked(tmp_path: Path, rank: object) -> None:
    lines = diagnosed(tmp_path, [{**ROLLBACK, "rank": rank}])
    assert lines[1].startswith("action:    none ranked")


def test_action_line_leaves_actions_out(tmp_path: Path) -> None:
    lines = diagnosed(
        tmp_path,
        [ROLLBACK],
        deploy_rollback="executed",
        restart_workers="dry-run",
    )
    assert lines[1].startswith("action:    1. roll back the deployment")
    assert len(lines) == 2


def test_evidence_list_joined(tmp_path: Path) -> None:
    option = {**ROLLBACK, "evidence": ["a deployment at 14:02 UTC", "5xx from 14:05"]}
    lines = diagnosed(tmp_path, [option])
    assert lines[1].endswith("(because a deployment at 14:02 UTC; 5xx from 14:05)")


def test_drill_indent_lines_up(tmp_path: Path) -> None:
    run = start(tmp_path, "database-connection")
    run.note("diagnosis: database down", diagnosis="database down")
    run.note("recovery options", recovery_options=[ROLLBACK])
    run.finish()
    lines = diagnosis_lines(events_of(run), indent="    ")
    assert lines[0] == "    diagnosis: database down"
    assert lines[1].startswith("    action:    1. roll back")
    assert lines[2].startswith("               none of the")


def test_triage_has_no_diagnosis_lines(tmp_path: Path) -> None:
    run = start(tmp_path, "triage")
    run.note("classified as P1", classification={"severity": "P1", "reasons": []})
    run.finish()
    assert diagnosis_lines(events_of(run)) == []


def test_diagnosis_list_not_shown(tmp_path: Path) -> None:
    run = start(tmp_path, "database-connection")
    run.note("diagnosis: two problems", diagnosis=["pool exhausted", "lock chain"])
    run.finish()
    assert diagnosis_lines(events_of(run)) == []


def test_finding_line_status_once(tmp_path: Path) -> None:
    run = start(tmp_path, "triage")
    result = ProbeResult(
        name="database endpoint",
        url="http://127.0.0.1:8080/api/health/database",
        method="GET",
        status="warn",
        started_at="2026-12-04T19:21:31Z",
        http_status=200,
        latency_ms=12.0,
        reasons=["status degraded"],
    )
    run.record_probe(result)
    run.finish()
    check = events_of(run)[-2]
    assert check["summary"].startswith("database endpoint  WARN  HTTP 200")
    assert finding_line(check) == (
        "WARN  database endpoint: HTTP 200  12 ms  status degraded"
    )


def test_finding_line_keeps_plain_summary(tmp_path: Path) -> None:
    run = start(tmp_path, "triage")
    run.check("5xx error rate", "fail", summary="26.53 % of 196 requests")
    run.check("warnings", "warn", summary="WARNING entries: 4")
    run.finish()
    events = events_of(run)
    assert finding_line(events[-3]) == "FAIL  5xx error rate: 26.53 % of 196 requests"
    assert finding_line(events[-2]) == "WARN  warnings: WARNING entries: 4"


def test_problem_lines_worst_first(tmp_path: Path) -> None:
    run = start(tmp_path, "triage")
    run.check("error logs", "warn", summary="67 errors in 2 groups")
    run.check("health", "pass", summary="HTTP 200")
    run.check("database", "fail", summary="HTTP 503")
    run.finish()
    lines = problem_lines(events_of(run))
    assert lines == [
        "  FAIL  database: HTTP 503",
        "  WARN  error logs: 67 errors in 2 groups",
    ]


def test_next_lines_command_and_by_hand(tmp_path: Path) -> None:
    run = start(tmp_path, "triage")
    rows = [
        {
            "procedure": "high-error-rate",
            "because": "5xx responses are above the alert thresholds",
            "evidence": "26.53 % 5xx over 10 s",
            "status": "available",
        },
        {
            "procedure": "application-rollback",
            "because": "a deployment in the window precedes the errors",
            "evidence": "deployment v2.4.1 at 14:02 UTC",
            "status": "not built yet",
        },
    ]
    run.note("recommended procedures", recommended=rows)
    run.finish()
    lines = next_lines(events_of(run), INCIDENT)
    assert lines[0] == (
        "next:      high-error-rate (26.53 % 5xx over 10 s): "
        "veerunbook run high-error-rate --incident INC-SUMMARY"
    )
    assert lines[1] == (
        "next:      application-rollback (deployment v2.4.1 at 14:02 UTC): "
        "not built yet; follow the runbook's Application Rollback steps by hand"
    )
    assert len(lines) == 2


def test_next_lines_name_target() -> None:
    events = [
        {"event": "run.started", "target": "demo:db-outage"},
        {
            "event": "note",
            "recommended": [
                {"procedure": "database-connection", "status": "available"}
            ],
        },
    ]
    lines = next_lines(events, "INC-7")
    assert lines == [
        "next:      database-connection: veerunbook run database-connection "
        "--incident INC-7 --target demo:db-outage"
    ]


def test_no_next_lines_without_recommendation(tmp_path: Path) -> None:
    run = start(tmp_path, "high-error-rate")
    run.finish()
    assert next_lines(events_of(run), INCIDENT) == []


def test_runbook_section_for_every_procedure() -> None:
    missing = [p.name for p in list_procedures() if p.name not in RUNBOOK_SECTIONS]
    assert missing == []


def test_by_hand_names_section() -> None:
    assert by_hand("database-rollback") == (
        "follow the runbook's Database Rollback steps by hand"
    )
    assert (
        by_hand("cache-flush") == "follow the runbook's steps for cache-flush by hand"
    )


def changing_run(
    ends: list[tuple[str, str]], **parameters: Any
) -> list[dict[str, Any]]:
    """Return the events of a security-incident run: ``run.started`` as the runner
    journals it, then an intent and an end for each action."""
    events: list[dict[str, Any]] = [
        {
            "event": "run.started",
            "procedure": "security-incident",
            "target": "demo:attack",
            "parameters": parameters,
        }
    ]
    for name, mode in ends:
        events.append({"event": "action", "name": name, "mode": "intent"})
        if mode in ("executed", "failed"):
            verified = mode == "executed"
            events.append(
                {"event": "action", "name": name, "mode": mode, "verified": verified}
            )
        elif mode != "unfinished":
            events.append({"event": "action", "name": name, "mode": mode})
    events.append({"event": "run.finished", "status": "findings"})
    return events


def test_action_lines_one_per_action() -> None:
    events = changing_run(
        [
            ("block-ip 198.51.100.11", "executed"),
            ("block-ip 198.51.100.13", "failed"),
            ("rotate-keys", "refused"),
        ],
    )
    assert action_lines(events, INCIDENT) == [
        "actions:   executed block-ip 198.51.100.11 (verified)",
        "           failed block-ip 198.51.100.13 (not verified)",
        "           refused rotate-keys",
    ]


def test_action_lines_grouped_by_mode() -> None:
    blocks = [(f"block-ip 198.51.100.{n}", "executed") for n in range(11, 25)]
    events = changing_run([*blocks, ("rotate-keys", "refused")])
    lines = action_lines(events, INCIDENT)
    assert lines[0] == (
        "actions:   executed 14: block-ip 198.51.100.11, block-ip 198.51.100.12 "
        "and 12 more"
    )
    assert lines[1] == "           refused 1: rotate-keys"
    assert len(lines) == 2
    assert max(len(line) for line in lines) <= 88


def test_action_lines_unfinished_intent() -> None:
    events = changing_run([("restore", "unfinished")])
    assert action_lines(events, INCIDENT) == ["actions:   unfinished restore"]


def test_dry_run_confirm_command() -> None:
    events = changing_run(
        [("stop-traffic", "dry-run"), ("restore", "dry-run")],
        window_seconds=5.0,
        note="two words",
        services=["api", "worker"],
    )
    lines = action_lines(events, INCIDENT)
    assert lines[:2] == [
        "actions:   dry-run stop-traffic",
        "           dry-run restore",
    ]
    assert lines[2] == (
        "confirm:   veerunbook run security-incident --target demo:attack "
        "--incident INC-SUMMARY -p confirm INC-SUMMARY -p window_seconds 5.0 "
        "-p note 'two words' -p services '[\"api\", \"worker\"]'"
    )
    assert len(lines) == 3


def test_confirmed_run_no_confirm_command() -> None:
    events = changing_run([("deploy-rollback", "executed")], confirm=INCIDENT)
    assert not any(
        line.startswith("confirm:") for line in action_lines(events, INCIDENT)
    )


def test_undo_note_gets_a_line() -> None:
    events = changing_run([("deploy-rollback", "executed")], confirm=INCIDENT)
    undo = "to undo: run application-rollback with -p version 1.5.0"
    events.insert(-1, {"event": "note", "text": undo, "undo": undo})
    assert action_lines(events, INCIDENT)[-1] == f"undo:      {undo}"


def test_drill_action_lines_indented() -> None:
    events = changing_run([("block-ip 203.0.113.11", "dry-run")])
    lines = action_lines(events, INCIDENT, indent="    ")
    assert lines[0] == "    actions:   dry-run block-ip 203.0.113.11"
    assert lines[1].startswith("    confirm:   veerunbook run security-incident ")


def test_no_action_lines_without_actions(tmp_path: Path) -> None:
    run = start(tmp_path, "high-error-rate")
    run.finish()
    assert action_lines(events_of(run), INCIDENT) == []


def test_confirm_command_names_archive(tmp_path: Path) -> None:
    events = changing_run([("restore", "dry-run")])
    command = action_lines(events, INCIDENT, archive=tmp_path / "records")[-1]
    default = action_lines(events, INCIDENT, archive=tmp_path / "outputs")[-1]
    assert f"--target demo:attack --archive {tmp_path / 'records'} --incident" in (
        command
    )
    assert "--archive" not in default
