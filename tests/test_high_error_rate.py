"""Runs of the real high-error-rate notebook against the demo scenarios and a down
target.

Each scenario runs once per module with a 3 s window, and the tests read the
journal and the executed notebook. The down target is a closed port on loopback.
The expected findings follow from each scenario's symptoms: which routes fail,
which exceptions the logs carry, whether a deployment preceded the errors and
whether addresses are attacking.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from veerunbook.journal import Journal
from veerunbook.redact import Redactor
from veerunbook.runner import RunOutcome, run_procedure

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "high-error-rate.ipynb"


@dataclass
class Run:
    """A finished run: its outcome, journal events and executed notebook."""

    outcome: RunOutcome
    events: list[dict[str, Any]]
    notebook: dict[str, Any]

    def check(self, name: str) -> dict[str, Any]:
        matches = [
            e for e in self.events if e["event"] == "check" and e["name"] == name
        ]
        assert len(matches) == 1, f"{len(matches)} checks named {name!r}"
        return matches[0]

    def note(self, prefix: str) -> dict[str, Any]:
        notes = [e for e in self.events if e["event"] == "note"]
        matches = [note for note in notes if note["text"].startswith(prefix)]
        assert matches, f"no note starts with {prefix!r}: {[n['text'] for n in notes]}"
        return matches[0]

    def checks(self) -> list[dict[str, Any]]:
        return [event for event in self.events if event["event"] == "check"]

    def field(self, name: str) -> Any:
        notes = [e for e in self.events if e["event"] == "note" and name in e]
        assert len(notes) == 1, f"{len(notes)} notes with the field {name!r}"
        return notes[0][name]

    def options(self) -> dict[str, dict[str, Any]]:
        return {option["key"]: option for option in self.field("recovery_options")}

    def first(self) -> str:
        return next(key for key, opt in self.options().items() if opt["rank"] == 1)

    def diagnosis(self) -> str:
        text = self.field("diagnosis")
        assert isinstance(text, str)
        return text

    def texts(self) -> list[str]:
        """Every line the run journaled for a reader: checks, notes, options."""
        lines = []
        for event in self.events:
            if event["event"] == "check":
                lines += [str(event.get("summary")), str(event.get("expected"))]
            elif event["event"] == "note":
                lines.append(event["text"])
        for option in self.options().values():
            lines += [option["evidence"], option["against"]]
        return lines

    def stream(self) -> str:
        return "".join("".join(output["text"]) for output in self.outputs("stream"))

    def outputs(self, output_type: str) -> list[dict[str, Any]]:
        return [
            output
            for cell in self.notebook["cells"]
            for output in cell.get("outputs", [])
            if output["output_type"] == output_type
        ]


def run(target: str, archive: Path) -> Run:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("VEERUNBOOK_DEMO_URL", raising=False)
        outcome = run_procedure(
            "high-error-rate",
            incident="INC-HER",
            target=target,
            params={"window_seconds": 3.0},
            archive=archive,
            redactor=Redactor(),
        )
    events = list(Journal(archive / "INC-HER").events())
    notebook = json.loads(outcome.notebook.read_text(encoding="utf-8"))
    return Run(outcome, events, notebook)


@pytest.fixture(scope="module")
def error_spike(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run("demo:error-spike", tmp_path_factory.mktemp("error-spike"))


@pytest.fixture(scope="module")
def bad_deploy(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run("demo:bad-deploy", tmp_path_factory.mktemp("bad-deploy"))


@pytest.fixture(scope="module")
def attack(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run("demo:attack", tmp_path_factory.mktemp("attack"))


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run("demo:healthy", tmp_path_factory.mktemp("healthy"))


@pytest.fixture(scope="module")
def down(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield run(f"http://127.0.0.1:{port}", tmp_path_factory.mktemp("down"))


def test_notebook_stored_clean() -> None:
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert all(cell["outputs"] == [] for cell in code)
    assert all(cell["execution_count"] is None for cell in code)
    tagged = [cell for cell in code if "parameters" in cell["metadata"].get("tags", [])]
    assert len(tagged) == 1


# Wording shared by every scenario: alerts named as alerts, units and plurals.

SCENARIOS = ["error_spike", "bad_deploy", "attack", "healthy", "down"]


@pytest.fixture(params=SCENARIOS)
def any_run(request: pytest.FixtureRequest) -> Run:
    run: Run = request.getfixturevalue(request.param)
    return run


def test_no_incident_class_named(any_run: Run) -> None:
    # Alert lines are alerts; only triage sets the incident class (P0 to P3).
    classes = [text for text in any_run.texts() if re.search(r"\bP[0-3]\b", text)]
    assert classes == []


def test_space_before_percent(any_run: Run) -> None:
    glued = [text for text in any_run.texts() if re.search(r"\d%", text)]
    assert glued == []


def test_plurals_agree(any_run: Run) -> None:
    wrong = [
        text
        for text in any_run.texts()
        if re.search(r"\b1 (changes|groups|errors|scrapes|IPs)\b", text)
    ]
    assert wrong == []


def test_one_diagnosis_line(any_run: Run) -> None:
    assert "\n" not in any_run.diagnosis()


def test_ranks_need_evidence(any_run: Run) -> None:
    ranked = [opt for opt in any_run.options().values() if opt["rank"] is not None]
    assert all(option["evidence"] != "none" for option in ranked)
    ranks = sorted(option["rank"] for option in ranked)
    assert ranks == list(range(1, len(ranked) + 1))


def test_unranked_listed_last(any_run: Run) -> None:
    ranks = [option["rank"] for option in any_run.field("recovery_options")]
    first_unranked = ranks.index(None) if None in ranks else len(ranks)
    assert all(rank is None for rank in ranks[first_unranked:])


# error-spike: two defective handlers, no deployment in the lookback.


def test_error_spike_findings(error_spike: Run) -> None:
    assert error_spike.outcome.exit_code == 1
    assert error_spike.outcome.status == "findings"


def test_error_spike_rate_fails(error_spike: Run) -> None:
    assert error_spike.check("5xx error rate")["status"] == "fail"


def test_error_spike_worst_routes(error_spike: Run) -> None:
    routes = error_spike.check("5xx error rate")["evidence"]["routes"]
    worst = {f"{route['method']} {route['route']}" for route in routes[:2]}
    assert worst == {"POST /api/instagram/publish", "GET /api/dashboard/analytics"}


def test_error_spike_other_routes_clean(error_spike: Run) -> None:
    routes = error_spike.check("5xx error rate")["evidence"]["routes"]
    assert all(route["errors"] == 0 for route in routes[2:])


def test_error_spike_signatures(error_spike: Run) -> None:
    groups = error_spike.check("error log entries")["evidence"]
    assert {group["signature"] for group in groups} == {
        "TypeError: Cannot read properties of undefined (reading 'id')",
        "RangeError: Invalid time value",
    }


def test_error_spike_handlers_named(error_spike: Run) -> None:
    diagnosis = error_spike.diagnosis()
    assert "TypeError in InstagramPublisher.createMediaContainer" in diagnosis
    assert "RangeError in buildAnalyticsWindow" in diagnosis


def test_error_spike_no_recent_deploy(error_spike: Run) -> None:
    # The newest simulated deployment is 1.3 days old, outside the 6 h lookback.
    deploy = error_spike.check("deployment before the errors")
    assert deploy["status"] == "pass"
    assert deploy["summary"] == (
        "no deployment in the lookback before the errors started"
    )


def test_error_spike_fix_forward_first(error_spike: Run) -> None:
    assert error_spike.first() == "fix"


def test_error_spike_no_rollback_rank(error_spike: Run) -> None:
    # No deployment in the lookback: nothing to roll back, so no rank.
    rollback = error_spike.options()["rollback"]
    assert rollback["rank"] is None
    assert rollback["against"] == (
        "no deployment in the lookback before the errors started"
    )


def test_error_spike_rate_alert_line(error_spike: Run) -> None:
    summary = error_spike.check("5xx error rate")["summary"]
    assert "above the critical alert line (5 % for 2 min)" in summary


def test_error_spike_history_read(error_spike: Run) -> None:
    assert error_spike.check("deployment history")["status"] == "pass"
    changes = error_spike.check("recent changes")
    assert changes["status"] == "pass"
    assert changes["summary"] == "no deployment in the last 6 h"


def test_error_spike_one_scrape_check(error_spike: Run) -> None:
    names = [check["name"] for check in error_spike.checks()]
    assert names.count("metrics scrapes") == 1
    assert "metrics scrape" not in names


def test_error_spike_plot_drawn(error_spike: Run) -> None:
    # A cell that returns the Figure shows it as its result.
    results = error_spike.outputs("execute_result")
    assert len([output for output in results if "image/png" in output["data"]]) == 1


def test_error_spike_nothing_executed(error_spike: Run) -> None:
    assert not [event for event in error_spike.events if event["event"] == "action"]


# bad-deploy: release 1.5.0 fails on authenticated routes from its first minute.


def test_bad_deploy_rollback_first(bad_deploy: Run) -> None:
    assert bad_deploy.first() == "rollback"


def test_bad_deploy_names_release(bad_deploy: Run) -> None:
    deploy = bad_deploy.check("deployment before the errors")
    assert deploy["status"] == "warn"
    assert deploy["evidence"]["deployment"]["version"] == "1.5.0"


def test_bad_deploy_release_in_stack(bad_deploy: Run) -> None:
    evidence = bad_deploy.options()["rollback"]["evidence"]
    assert "the stack traces name release 1.5.0" in evidence


def test_bad_deploy_diagnosis(bad_deploy: Run) -> None:
    diagnosis = bad_deploy.diagnosis()
    assert "TypeError in checkPlanLimits" in diagnosis
    assert diagnosis.endswith("first action: roll back the deployment, high confidence")


def test_bad_deploy_singular_counts(bad_deploy: Run) -> None:
    # One release and one error signature.
    assert bad_deploy.check("recent changes")["summary"].startswith(
        "1 change; latest deployment 1.5.0 at "
    )
    assert bad_deploy.check("error log entries")["summary"].endswith(" in 1 group")


def test_bad_deploy_plot_drawn(bad_deploy: Run) -> None:
    results = bad_deploy.outputs("execute_result")
    assert len([output for output in results if "image/png" in output["data"]]) == 1


# attack: credential stuffing that the rate limiter contains; few 5xx.


def test_attack_security_first(attack: Run) -> None:
    assert attack.first() == "security"
    assert attack.options()["block"]["rank"] == 2


def test_attack_diagnosis_security_incident(attack: Run) -> None:
    # The simulated attack's escalation comes from its first address.
    assert attack.diagnosis().startswith(
        "security incident: privilege-escalation attempt from 203.0.113.11 at "
    )


def test_attack_diagnosis_recommends(attack: Run) -> None:
    assert "; run the security-incident procedure; " in attack.diagnosis()


def test_attack_breach_check(attack: Run) -> None:
    breach = attack.check("breach signs")
    assert breach["status"] == "fail"
    assert breach["summary"].endswith(
        ": user session token used on POST /admin/security/block-ip"
    )


def test_attack_blocked_warning_line(attack: Run) -> None:
    # The scenario blocks 14 addresses a wave: above 10, below 50.
    blocked = attack.check("blocked IPs in the last minute")
    assert blocked["status"] == "warn"
    assert 10 < blocked["observed"] <= 50
    assert (
        "above the warning alert line (more than 10 in 1 min)" in (blocked["summary"])
    )


def test_attack_logins_fail(attack: Run) -> None:
    # The scenario makes about 50 attempts a second, far above 100 a minute.
    logins = attack.check("failed logins in the last minute")
    assert logins["status"] == "fail"
    assert logins["observed"] >= 100
    assert (
        "at or above the attack line (100 a minute, an estimate)" in (logins["summary"])
    )


def test_attack_no_limit_raise(attack: Run) -> None:
    option = attack.options()["raise"]
    assert option["rank"] is None
    assert "overruled by attack signs: " in option["against"]


def test_attack_rate_within_alerts(attack: Run) -> None:
    assert attack.check("5xx error rate")["status"] == "pass"


# healthy: nothing to recover from.


def test_healthy_ok(healthy: Run) -> None:
    assert healthy.outcome.exit_code == 0


def test_healthy_no_recovery(healthy: Run) -> None:
    assert all(option["rank"] is None for option in healthy.options().values())
    assert healthy.note("no recovery needed")["text"] == (
        "no recovery needed: no finding supports any recovery action"
    )


def test_healthy_diagnosis(healthy: Run) -> None:
    assert healthy.diagnosis() == (
        "5xx 0.0 % of user requests, at or below the information alert line"
        " (0.5 % for 15 min); no recovery needed"
    )


def test_healthy_one_scrape_check(healthy: Run) -> None:
    scrapes = [c for c in healthy.checks() if c["name"].startswith("metrics scrape")]
    assert len(scrapes) == 1
    assert scrapes[0]["summary"] == "7 of 7 metrics scrapes succeeded"


# A target where nothing listens: the run completes and records what failed.


def test_down_completes_with_findings(down: Run) -> None:
    assert down.outcome.exit_code == 1
    assert down.outcome.status == "findings"


def test_down_no_cell_error(down: Run) -> None:
    assert down.outputs("error") == []


def test_down_one_error_check(down: Run) -> None:
    errors = [check for check in down.checks() if check["status"] == "error"]
    assert [check["name"] for check in errors] == ["target reachability"]


def test_down_unreachable_line(down: Run) -> None:
    summary = down.check("target reachability")["summary"]
    assert re.fullmatch(
        r"target unreachable: connection refused at http://127\.0\.0\.1:\d+"
        r" \(every request failed\); check that the service is running, then run"
        r" triage",
        summary,
    )


def test_down_stops_after_retry(down: Run) -> None:
    # One refused scrape and one retry, not the window's 7 scrapes.
    assert len(down.check("target reachability")["evidence"]) == 2
    assert "2 scrapes done, 2 failed; sampling stopped" in down.stream()


def test_down_steps_skipped(down: Run) -> None:
    summary = down.check("target reachability")["summary"]
    skipped = [check for check in down.checks() if check["status"] == "skip"]
    assert [check["name"] for check in skipped] == [
        "error logs",
        "resources",
        "security audit",
        "recent changes",
    ]
    assert all(check["summary"] == summary for check in skipped)


def test_down_no_scrape_checks(down: Run) -> None:
    names = [check["name"] for check in down.checks()]
    assert not [name for name in names if name.startswith("metrics scrape")]


def test_down_nothing_passes(down: Run) -> None:
    assert [check for check in down.checks() if check["status"] == "pass"] == []


def test_down_nothing_ranked(down: Run) -> None:
    assert all(option["rank"] is None for option in down.options().values())
    summary = down.check("target reachability")["summary"]
    assert down.note("no recovery option ranked")["text"] == (
        f"no recovery option ranked: {summary}"
    )


def test_down_diagnosis(down: Run) -> None:
    assert down.diagnosis() == down.check("target reachability")["summary"]
