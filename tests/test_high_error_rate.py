"""Runs of the real high-error-rate notebook against the demo scenarios and a down
target.

Each scenario runs once per module with a 3 s window, and the tests read the
journal and the executed notebook. The expected findings follow from each
scenario's symptoms: which routes fail, which exceptions the logs carry, whether a
deployment preceded the errors and whether addresses are attacking.
"""

from __future__ import annotations

import json
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

    def options(self) -> dict[str, dict[str, Any]]:
        notes = [e for e in self.events if e["event"] == "note" and "options" in e]
        assert len(notes) == 1, f"{len(notes)} notes with recovery options"
        return {option["key"]: option for option in notes[0]["options"]}

    def first(self) -> str:
        return next(key for key, opt in self.options().items() if opt["rank"] == 1)

    def diagnosis(self) -> str:
        return str(self.note("diagnosis: ")["text"])

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
    assert error_spike.options()["rollback"]["rank"] == 2


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
    assert diagnosis.endswith("first action: roll back the deployment (high)")


# attack: credential stuffing that the rate limiter contains; few 5xx.


def test_attack_block_first(attack: Run) -> None:
    assert attack.first() == "block"


def test_attack_blocked_burst(attack: Run) -> None:
    blocked = attack.check("blocked IPs in the last minute")
    assert blocked["status"] == "fail"
    assert blocked["observed"] > 10


def test_attack_no_limit_raise(attack: Run) -> None:
    option = attack.options()["raise"]
    assert option["rank"] is None
    assert option["against"][-1].startswith("attack signs: ")


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
    assert healthy.diagnosis().endswith("; no recovery needed")


# A target where nothing listens: the run completes and records what failed.


def test_down_completes_with_findings(down: Run) -> None:
    assert down.outcome.exit_code == 1
    assert down.outcome.status == "findings"


def test_down_no_cell_error(down: Run) -> None:
    assert down.outputs("error") == []


def test_down_scrapes_refused(down: Run) -> None:
    scrapes = down.check("metrics scrapes")
    assert scrapes["status"] == "error"
    assert scrapes["observed"] == 0
    assert "refused" in scrapes["summary"]


def test_down_logs_refused(down: Run) -> None:
    logs = down.check("error logs")
    assert logs["status"] == "error"
    assert "refused" in logs["summary"]


def test_down_audit_refused(down: Run) -> None:
    assert down.check("security audit")["status"] == "error"


def test_down_nothing_ranked(down: Run) -> None:
    note = down.note("no recovery option ranked")
    assert note["text"] == (
        "no recovery option ranked: the metrics and error logs are unread"
    )


def test_down_diagnosis(down: Run) -> None:
    assert down.diagnosis().startswith(
        "diagnosis: the target could not be observed: no metrics and no error logs"
    )
