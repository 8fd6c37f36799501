"""Drills of every scenario reach the class and findings a responder must reach.

Each drill runs the real triage notebook against the embedded target. The expected
values below follow from each scenario's symptoms, not from its name, because the
notebook receives nothing but HTTP responses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from veerunbook.drill import DrillReport
from veerunbook.procedures import list_procedures
from veerunbook.redact import Redactor
from veerunbook.runner import RunOutcome, run_procedure
from veerunbook.simulator import SCENARIOS, start_target
from veerunbook.verify import verify

# scenario: (exit code, class, a classification rule that must fire, next procedure)
EXPECTED: dict[str, tuple[int, str | None, str | None, str | None]] = {
    "healthy": (0, None, None, None),
    "db-outage": (1, "P0", "database unavailable", "database-connection"),
    # A quarter of database requests time out here, so the synthetic login may fail
    # too, which is an authentication failure (P0); both classes are right.
    "pool-exhaustion": (
        1,
        "P0|P1",
        "connection pool above 80 %",
        "database-connection",
    ),
    "error-spike": (1, "P1", "error rate 10-50 % (escalated: between P2 and P1)", None),
    "slow": (1, "P1", "p95 above 2000 ms", "performance-degradation"),
    "attack": (1, "P0", "security incident", "security-incident"),
    "bad-deploy": (1, "P1", None, "application-rollback"),
    "data-corruption": (
        1,
        "P0",
        "database corruption or data loss",
        "database-rollback",
    ),
    "integration-down": (1, "P1", "integration down", None),
    "memory-pressure": (1, "P1", "memory above 85 %", None),
    "broken-health": (1, "P2", "health endpoint misbehaving", None),
}


# scenario: (follow-up procedure, a word its diagnosis must contain)
FOLLOW_UP_DIAGNOSIS = {
    "db-outage": ("database-connection", "database"),
    "pool-exhaustion": ("database-connection", "pool"),
    "slow": ("performance-degradation", "p95"),
    "attack": ("security-incident", "burst"),
    "bad-deploy": ("application-rollback", "roll back"),
    "data-corruption": ("database-rollback", "corruption"),
}


# Rules that would send a responder the wrong way for these scenarios.
MUST_NOT_FIRE = {
    "error-spike": "integration down",
    "bad-deploy": "integration down",
    "broken-health": "complete service outage",
}


def drill(
    scenario: str, archive: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "VEERUNBOOK_ARCHIVE": str(archive)}
    environment.pop("VEERUNBOOK_DEMO_URL", None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "veerunbook.cli",
            "drill",
            scenario,
            "--window",
            "3",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=240,
    )


def journal_events(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "journal.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def procedure_notes(
    events: list[dict[str, Any]], procedure: str, field: str
) -> list[dict[str, Any]]:
    """Return the notes with ``field`` that the runs of ``procedure`` journaled."""
    runs = [
        event["run"]
        for event in events
        if event["event"] == "run.started" and event["procedure"] == procedure
    ]
    return [
        event
        for event in events
        if event["event"] == "note" and event["run"] in runs and field in event
    ]


def journaled_diagnosis(events: list[dict[str, Any]], procedure: str) -> object:
    notes = procedure_notes(events, procedure, "diagnosis")
    return notes[-1]["diagnosis"] if notes else None


def ranked_options(events: list[dict[str, Any]], procedure: str) -> list[Any]:
    notes = procedure_notes(events, procedure, "recovery_options")
    options = notes[-1]["recovery_options"] if notes else []
    return [option for option in options if option.get("rank") is not None]


def lines_under(stdout: str, procedure: str) -> list[str]:
    """Return the indented lines printed under ``ran PROCEDURE: ...``."""
    lines = stdout.splitlines()
    starts = [
        i for i, line in enumerate(lines) if line.startswith(f"  ran {procedure}:")
    ]
    if not starts:
        return []
    under = []
    for line in lines[starts[0] + 1 :]:
        if not line.startswith("    "):
            break
        under.append(line)
    return under


def test_table_covers_every_scenario() -> None:
    assert set(EXPECTED) == set(SCENARIOS)


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_drill_reaches_diagnosis(tmp_path: Path, scenario: str) -> None:
    exit_code, severity, rule, procedure = EXPECTED[scenario]
    done = drill(scenario, tmp_path, "--incident", "INC-DRILL")
    folder = tmp_path / "INC-DRILL"
    incident = json.loads((folder / "incident.json").read_text())
    events = journal_events(folder)
    notes = [event for event in events if event["event"] == "note"]
    classified = [note for note in notes if "classification" in note]
    reasons = classified[-1]["classification"]["reasons"]
    recommended = [note for note in notes if "recommended" in note]
    names = [row["procedure"] for row in recommended[-1]["recommended"]]

    assert done.returncode == exit_code, done.stdout + done.stderr[-2000:]
    accepted = severity.split("|") if severity else [None]
    assert incident["severity"] in accepted
    assert f"drill {scenario}: {incident['severity'] or 'no incident'}" in done.stdout
    assert "(verified)" in done.stdout
    rules = {reason["rule"] for reason in reasons}
    if rule is not None:
        assert rule in rules
    assert MUST_NOT_FIRE.get(scenario) not in rules
    if procedure is not None:
        assert procedure in names
    built = {found.name for found in list_procedures()}
    for name in names:
        if name in built:
            assert f"ran {name}: " in done.stdout
        else:
            assert f"skipped {name}: not built yet; follow the runbook's" in done.stdout
    next_lines = [line for line in done.stdout.splitlines() if line.startswith("next:")]
    for name in built:
        assert not any(name in line for line in next_lines), next_lines
    if scenario in FOLLOW_UP_DIAGNOSIS:
        follow_up, word = FOLLOW_UP_DIAGNOSIS[scenario]
        diagnosis = journaled_diagnosis(events, follow_up)
        under = lines_under(done.stdout, follow_up)
        assert isinstance(diagnosis, str), diagnosis
        assert word in diagnosis
        assert len(under) >= 2, done.stdout
        assert under[0] == f"    diagnosis: {diagnosis}"
        if ranked_options(events, follow_up):
            assert under[1].startswith("    action:    1. ")
        else:
            assert under[1] == (
                "    action:    none ranked: no recovery option has evidence for it"
            )


def outcome(procedure: str, status: str, reason: str | None = None) -> RunOutcome:
    return RunOutcome(
        run_id=f"RUN-{procedure}",
        incident="INC-LINES",
        procedure=procedure,
        status=status,
        exit_code=1,
        notebook=Path(f"runs/{procedure}.ipynb"),
        reason=reason,
        failing_cell=None,
        duration_s=4.0,
        counts={},
    )


def test_report_lines_follow_ups(tmp_path: Path) -> None:
    report = DrillReport("bad-deploy", "INC-LINES", tmp_path, severity="P1")
    report.recommended = ["high-error-rate", "application-rollback"]
    report.runs = [
        outcome("triage", "findings"),
        outcome("high-error-rate", "findings"),
    ]
    report.details["RUN-high-error-rate"] = [
        "    diagnosis: 5xx 31 % of user requests",
        "    action:    1. roll back the deployment (because v2.4.1 at 14:02 UTC)",
    ]
    report.skipped = ["application-rollback"]
    lines = report.lines()
    ran = lines.index("  ran high-error-rate: findings in 4.0 s")
    assert lines[ran + 1] == "    diagnosis: 5xx 31 % of user requests"
    assert lines[ran + 2].startswith("    action:    1. roll back the deployment")
    assert lines[ran + 3] == (
        "  skipped application-rollback: not built yet; follow the runbook's "
        "Application Rollback steps by hand"
    )
    assert lines[ran + 4] == "next:      application-rollback"


def test_report_lines_failed_run(tmp_path: Path) -> None:
    report = DrillReport("slow", "INC-LINES", tmp_path)
    report.recommended = ["performance-degradation"]
    report.runs = [
        outcome("triage", "findings"),
        outcome("performance-degradation", "failed", "cell 7 raised KeyError"),
    ]
    lines = report.lines()
    ran = lines.index("  ran performance-degradation: failed in 4.0 s")
    assert lines[ran + 1] == "    reason:    cell 7 raised KeyError"
    assert not any(line.startswith("next:") for line in lines)


def test_report_class_when_triage_failed(tmp_path: Path) -> None:
    report = DrillReport("db-outage", "INC-LINES", tmp_path)
    report.runs = [outcome("triage", "failed", "kernel died")]
    lines = report.lines()
    assert lines[0] == "drill db-outage: class not determined: triage did not complete"


def test_drill_list_describes_scenarios(tmp_path: Path) -> None:
    done = drill("--list", tmp_path)
    assert done.returncode == 0
    for name in SCENARIOS:
        assert f"{name}: " in done.stdout
    assert done.stdout.count("diagnosis: ") == len(SCENARIOS)
    assert not any(tmp_path.iterdir())


def test_drill_unknown_scenario_exits_2(tmp_path: Path) -> None:
    done = drill("meteor-strike", tmp_path / "archive")
    assert done.returncode == 2
    assert "meteor-strike" in done.stderr
    assert not (tmp_path / "archive").exists()


def test_switching_scenarios_mid_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = start_target("healthy")
    stop = threading.Event()
    names = sorted(SCENARIOS)

    def switch_scenarios() -> None:
        index = 0
        while not stop.wait(0.2):
            running.set_scenario(names[index % len(names)])
            index += 1

    switcher = threading.Thread(target=switch_scenarios)
    monkeypatch.setenv("VEERUNBOOK_DEMO_URL", running.base_url)
    monkeypatch.setenv("VEERUNBOOK_DEMO_DATA_DIR", str(running.data_dir))
    switcher.start()
    try:
        outcome = run_procedure(
            "triage",
            incident="INC-SWITCH",
            target="demo",
            params={"window_seconds": 3.0},
            archive=tmp_path,
            redactor=Redactor(),
        )
    finally:
        stop.set()
        switcher.join()
    running.set_scenario("healthy")
    answer = httpx.get(running.base_url + "/healthz", timeout=5)
    running.stop()
    assert outcome.status in ("ok", "findings"), outcome.reason
    assert answer.status_code == 200
    assert verify(tmp_path / "INC-SWITCH").ok
