"""Runs of the real application-rollback notebook against the simulated service.

The bad-deploy service runs in this process, so its full state can be compared
before and after each run (tests/targetstate.py): the notebook's kernel attaches to
it through VEERUNBOOK_DEMO_URL. Four runs for one incident follow each other on it:
a dry-run, a confirmed run with an unknown version, a confirmed run and a second
confirmed run. A healthy demo and a closed loopback port run on their own. The
expected versions follow from the simulated deploy history: 1.4.2 runs until
bad-deploy ships 1.5.0, whose defect fails about a quarter of authenticated requests.
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
from targetstate import difference, snapshot

from veerunbook.journal import Journal
from veerunbook.redact import Redactor
from veerunbook.runner import RunOutcome, run_procedure
from veerunbook.simulator import start_target
from veerunbook.verify import verify

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "application-rollback.ipynb"
INCIDENT = "INC-ROLLBACK"
# A 6 s watch with a scrape every 2 s: 4 scrapes, 3 intervals.
SHORT_WATCH = {"monitor_minutes": 0.1, "monitor_interval_seconds": 2.0}
RATE_BEFORE = "5xx error rate before the rollback"
RATE_AFTER = "5xx error rate after the rollback"
P95_AFTER = "user API p95 after the rollback"
UNDO = (
    "to undo: deploy the fixed release, or run application-rollback with"
    " -p version 1.5.0"
)


@dataclass
class Run:
    """A finished run: its outcome, its journal events and the executed notebook."""

    outcome: RunOutcome
    events: list[dict[str, Any]]
    notebook: dict[str, Any]

    def check(self, name: str) -> dict[str, Any]:
        matches = [
            e for e in self.events if e["event"] == "check" and e["name"] == name
        ]
        assert len(matches) == 1, f"{len(matches)} checks named {name!r}"
        return matches[0]

    def actions(self) -> list[dict[str, Any]]:
        return [event for event in self.events if event["event"] == "action"]

    def modes(self) -> list[str]:
        return [event["mode"] for event in self.actions()]

    def field(self, name: str) -> Any:
        notes = [e for e in self.events if e["event"] == "note" and name in e]
        assert len(notes) == 1, f"{len(notes)} notes with the field {name!r}"
        return notes[0][name]

    def ranked(self) -> list[str]:
        options = [o for o in self.field("recovery_options") if o["rank"] is not None]
        return [option["key"] for option in sorted(options, key=lambda o: o["rank"])]

    def stream(self) -> str:
        return "".join(
            "".join(output["text"])
            for cell in self.notebook["cells"]
            for output in cell.get("outputs", [])
            if output["output_type"] == "stream"
        )

    def results(self) -> str:
        """The plain text of every cell result, such as a table or a one-line note."""
        return "".join(
            "".join(output["data"].get("text/plain", ""))
            for cell in self.notebook["cells"]
            for output in cell.get("outputs", [])
            if output["output_type"] == "execute_result"
        )

    def last_result(self) -> str:
        """The plain text of the last cell's result: the summary table."""
        cell = self.notebook["cells"][-1]
        return "".join(
            "".join(output["data"].get("text/plain", ""))
            for output in cell.get("outputs", [])
            if output["output_type"] == "execute_result"
        )

    def images(self) -> int:
        return sum(
            "image/png" in output.get("data", {})
            for cell in self.notebook["cells"]
            for output in cell.get("outputs", [])
        )


def run(target: str, archive: Path, incident: str, **params: Any) -> Run:
    outcome = run_procedure(
        "application-rollback",
        incident=incident,
        target=target,
        params={"window_seconds": 3.0, **params},
        archive=archive,
        redactor=Redactor(),
    )
    events = [
        event
        for event in Journal(archive / incident).events()
        if event.get("run") == outcome.run_id
    ]
    notebook = json.loads(outcome.notebook.read_text(encoding="utf-8"))
    return Run(outcome, events, notebook)


@dataclass
class Sequence:
    """The four runs on one bad-deploy service and its state around them."""

    archive: Path
    dry: Run
    unknown: Run
    confirmed: Run
    again: Run
    states: list[dict[str, Any]]


@pytest.fixture(scope="module")
def bad_deploy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sequence]:
    archive = tmp_path_factory.mktemp("bad-deploy")
    running = start_target("bad-deploy", data_dir=archive / "service")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("VEERUNBOOK_DEMO_URL", running.base_url)
            patch.setenv("VEERUNBOOK_DEMO_DATA_DIR", str(running.data_dir))
            states = [snapshot(running)]
            dry = run("demo:bad-deploy", archive, INCIDENT)
            states.append(snapshot(running))
            unknown = run(
                "demo:bad-deploy", archive, INCIDENT, confirm=INCIDENT, version="9.9.9"
            )
            states.append(snapshot(running))
            confirmed = run(
                "demo:bad-deploy", archive, INCIDENT, confirm=INCIDENT, **SHORT_WATCH
            )
            states.append(snapshot(running))
            again = run(
                "demo:bad-deploy", archive, INCIDENT, confirm=INCIDENT, **SHORT_WATCH
            )
            states.append(snapshot(running))
        yield Sequence(archive, dry, unknown, confirmed, again, states)
    finally:
        running.stop()


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Run:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("VEERUNBOOK_DEMO_URL", raising=False)
        return run("demo:healthy", tmp_path_factory.mktemp("healthy"), "INC-HEALTHY")


@pytest.fixture(scope="module")
def down(tmp_path_factory: pytest.TempPathFactory) -> Run:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    archive = tmp_path_factory.mktemp("down")
    return run(f"http://127.0.0.1:{port}", archive, "INC-DOWN", confirm="INC-DOWN")


def test_notebook_stored_clean() -> None:
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert all(cell["outputs"] == [] for cell in code)
    assert all(cell["execution_count"] is None for cell in code)
    tagged = [cell for cell in code if "parameters" in cell["metadata"].get("tags", [])]
    assert len(tagged) == 1


# The dry-run: chooses by evidence and changes nothing.


def test_dry_run_state_unchanged(bad_deploy: Sequence) -> None:
    assert difference(bad_deploy.states[0], bad_deploy.states[1]) == {}


def test_dry_run_picks_previous(bad_deploy: Sequence) -> None:
    choice = bad_deploy.dry.check("version to roll back to")
    assert choice["status"] == "pass"
    assert choice["observed"] == "1.4.2"
    assert choice["evidence"] == {
        "by": "evidence",
        "suspect": "1.5.0",
        "running": "1.5.0",
    }


def test_dry_run_names_evidence(bad_deploy: Sequence) -> None:
    summary = bad_deploy.dry.check("version to roll back to")["summary"]
    assert summary.startswith("1.4.2 by evidence: the errors started at ")
    assert (
        "first error log entry of 'TypeError: Cannot read properties of undefined"
        " (reading 'tier')' at " in summary
    )
    assert "; 1.5.0 was deployed " in summary
    assert "; the newest earlier good deployment is 1.4.2, deployed " in summary


def test_dry_run_action_modes(bad_deploy: Sequence) -> None:
    assert bad_deploy.dry.modes() == ["intent", "dry-run"]


def test_dry_run_banner(bad_deploy: Sequence) -> None:
    assert (
        "DRY-RUN: nothing will be changed; to carry out the actions run with"
        f" --incident {INCIDENT} -p confirm {INCIDENT}" in bad_deploy.dry.stream()
    )


def test_dry_run_watch_skipped(bad_deploy: Sequence) -> None:
    for name in (RATE_AFTER, P95_AFTER):
        watch = bad_deploy.dry.check(name)
        assert watch["status"] == "skip"
        assert watch["summary"] == (
            "no watch: the rollback was not carried out (dry-run)"
        )
    assert "The baseline before it: 5xx " in bad_deploy.dry.results()


def test_dry_run_names_watch(bad_deploy: Sequence) -> None:
    # The default monitor_minutes: a confirmed run lasts that much longer.
    assert (
        "a confirmed run watches for 15 min (monitor_minutes) after the rollback"
        in bad_deploy.dry.results()
    )


def test_dry_run_diagnosis(bad_deploy: Sequence) -> None:
    assert bad_deploy.dry.field("diagnosis") == (
        "the errors started with 1.5.0; would roll back to 1.4.2 (chosen by"
        f" evidence); dry-run, nothing was changed: run with --incident {INCIDENT}"
        f" -p confirm {INCIDENT},"
        " which then watches for 15 min"
    )


def test_dry_run_no_undo(bad_deploy: Sequence) -> None:
    assert "to undo:" not in bad_deploy.dry.stream()


def test_dry_run_verdict_findings(bad_deploy: Sequence) -> None:
    assert "verdict: findings" in bad_deploy.dry.stream()


def test_dry_run_rollback_ranked(bad_deploy: Sequence) -> None:
    assert bad_deploy.dry.ranked() == ["rollback", "fix"]


def test_dry_run_findings(bad_deploy: Sequence) -> None:
    # About a quarter of authenticated requests fail: above the 5 % alert line.
    assert bad_deploy.dry.check(RATE_BEFORE)["status"] == "fail"
    assert bad_deploy.dry.outcome.exit_code == 1


def test_baseline_p95_named_before(bad_deploy: Sequence) -> None:
    assert bad_deploy.dry.check("user API p95 before the rollback")["unit"] == "ms"


def test_baseline_rate_from_counts(bad_deploy: Sequence) -> None:
    # The observed percent is 5xx / requests of the evidence, rounded to 3 places.
    rate = bad_deploy.dry.check(RATE_BEFORE)
    evidence = rate["evidence"]
    expected = round(evidence["errors"] / evidence["requests"] * 100, 3)
    assert rate["observed"] == expected


def test_dry_run_plots_baseline(bad_deploy: Sequence) -> None:
    assert bad_deploy.dry.images() == 1


# An unknown version: refused, with the known versions listed.


def test_unknown_version_refused(bad_deploy: Sequence) -> None:
    assert bad_deploy.unknown.modes() == ["intent", "refused"]
    refused = bad_deploy.unknown.actions()[-1]
    assert refused["detail"] == (
        "precondition 'version chosen' not met: unknown version '9.9.9': the"
        " deployment history does not list it; known versions, newest first:"
        " 1.5.0, 1.4.2, 1.4.1, 1.4.0, 1.3.1, 1.3.0"
    )


def test_unknown_version_unchanged(bad_deploy: Sequence) -> None:
    assert difference(bad_deploy.states[1], bad_deploy.states[2]) == {}


def test_unknown_version_check_fails(bad_deploy: Sequence) -> None:
    assert bad_deploy.unknown.check("version to roll back to")["status"] == "fail"


# The confirmed run: rolls back, verifies and watches.


def test_confirmed_executed(bad_deploy: Sequence) -> None:
    assert bad_deploy.confirmed.modes() == ["intent", "executed"]
    executed = bad_deploy.confirmed.actions()[-1]
    assert executed["verified"] is True
    assert executed["before"] == {"version": "1.5.0", "source": "deployment history"}
    assert executed["after"] == {"version": "1.4.2", "source": "deployment history"}


def test_confirmed_intent_first(bad_deploy: Sequence) -> None:
    intent = bad_deploy.confirmed.actions()[0]
    assert intent["params"] == {
        "version": "1.4.2",
        "method": "command",
        "chosen_by": "evidence",
    }
    assert intent["confirmed"] is True


def test_confirmed_state_difference(bad_deploy: Sequence) -> None:
    # Exactly the version change: the deploys table marks 1.5.0 rolled back and
    # records a new deployment of 1.4.2 with the note "rolled back from 1.5.0".
    changes = difference(bad_deploy.states[2], bad_deploy.states[3])
    assert sorted(changes) == ["tables.deploys", "version"]
    assert changes["version"] == {"before": "1.5.0", "after": "1.4.2"}
    deploys = changes["tables.deploys"]
    assert [row[1:5:3] for row in deploys["removed"]] == [["1.5.0", "succeeded"]]
    added = sorted((row[1], row[4], row[5]) for row in deploys["added"])
    assert added == [
        ("1.4.2", "succeeded", "rolled back from 1.5.0"),
        ("1.5.0", "rolled_back", None),
    ]


def test_confirmed_health_version(bad_deploy: Sequence) -> None:
    version = bad_deploy.confirmed.check("running version")
    assert version["status"] == "pass"
    assert version["observed"] == "1.4.2"
    assert bad_deploy.confirmed.check("health")["status"] == "pass"
    assert bad_deploy.confirmed.check("readyz")["status"] == "pass"


def test_confirmed_watch_held(bad_deploy: Sequence) -> None:
    watch = bad_deploy.confirmed.check(RATE_AFTER)
    assert watch["status"] == "pass"
    assert watch["unit"] == "%"
    figures = watch["evidence"]
    assert figures["requests"] > 0
    assert figures["rate"] < 0.01
    assert figures["rate"] == figures["errors"] / figures["requests"]
    assert watch["observed"] == round(figures["rate"] * 100, 2)


def test_confirmed_watch_p95(bad_deploy: Sequence) -> None:
    watch = bad_deploy.confirmed.check(P95_AFTER)
    assert watch["status"] == "pass"
    assert watch["observed"] < 2000
    assert watch["observed"] == watch["evidence"]["p95_ms"]


def test_confirmed_watch_note(bad_deploy: Sequence) -> None:
    assert bad_deploy.confirmed.field("watch") == "held"


def test_confirmed_ends_ok(bad_deploy: Sequence) -> None:
    # The baseline fails, but the rollback held: the notebook closes the run ok.
    assert bad_deploy.confirmed.check(RATE_BEFORE)["status"] == "fail"
    assert "verdict: ok" in bad_deploy.confirmed.stream()


def test_confirmed_undo_line(bad_deploy: Sequence) -> None:
    assert UNDO in bad_deploy.confirmed.stream().splitlines()
    assert bad_deploy.confirmed.field("undo") == UNDO


def test_confirmed_detail_punctuation(bad_deploy: Sequence) -> None:
    detail = bad_deploy.confirmed.actions()[-1]["detail"]
    assert ": Rolled back from 1.5.0 to 1.4.2; verification: " in detail


def test_summary_table_no_nan(bad_deploy: Sequence) -> None:
    table = bad_deploy.confirmed.last_result()
    assert "git history" in table
    assert "NaN" not in table
    assert "None" not in table


def test_confirmed_sample_lines(bad_deploy: Sequence) -> None:
    lines = [
        line
        for line in bad_deploy.confirmed.stream().splitlines()
        if line.startswith("sample ")
    ]
    assert len(lines) == 4
    assert lines[0] == "sample 1 of 4: first scrape"
    assert all(" user requests, p95 " in line for line in lines[1:])


def test_confirmed_diagnosis(bad_deploy: Sequence) -> None:
    diagnosis = bad_deploy.confirmed.field("diagnosis")
    pattern = (
        r"rolled back from 1\.5\.0 to 1\.4\.2; held: 5xx 0\.0 %, p95 \d+ ms over \d s"
    )
    assert re.fullmatch(pattern, diagnosis), diagnosis


def test_confirmed_plot_drawn(bad_deploy: Sequence) -> None:
    assert bad_deploy.confirmed.images() == 1


# The second confirmed run finds the rollback done.


def test_again_already_done(bad_deploy: Sequence) -> None:
    assert bad_deploy.again.modes() == ["intent", "already-done"]


def test_again_state_unchanged(bad_deploy: Sequence) -> None:
    assert difference(bad_deploy.states[3], bad_deploy.states[4]) == {}


def test_again_watch_skipped(bad_deploy: Sequence) -> None:
    for name in (RATE_AFTER, P95_AFTER):
        assert bad_deploy.again.check(name)["summary"] == (
            "no watch: the rollback was not carried out (already-done)"
        )


def test_again_no_undo(bad_deploy: Sequence) -> None:
    assert "to undo:" not in bad_deploy.again.stream()


def test_again_diagnosis(bad_deploy: Sequence) -> None:
    assert bad_deploy.again.field("diagnosis").startswith(
        "1.4.2 is running already, so nothing was rolled back; now: 5xx "
    )


def test_journal_chain_intact(bad_deploy: Sequence) -> None:
    assert verify(bad_deploy.archive / INCIDENT).ok


# healthy: nothing to roll back.


def test_healthy_ok(healthy: Run) -> None:
    assert healthy.outcome.exit_code == 0


def test_healthy_nothing_to_roll_back(healthy: Run) -> None:
    choice = healthy.check("version to roll back to")
    assert choice["status"] == "pass"
    assert choice["observed"] is None
    assert healthy.field("diagnosis") == (
        "nothing to roll back: no errors were found (no dominant error group in the"
        " logs and no interval above 1 % in the baseline)"
    )


def test_healthy_refused(healthy: Run) -> None:
    assert healthy.modes() == ["intent", "refused"]


def test_healthy_nothing_ranked(healthy: Run) -> None:
    assert healthy.ranked() == []


# A closed port: the run completes and records why nothing was done.


def test_down_completes(down: Run) -> None:
    assert down.outcome.exit_code == 1
    assert down.outcome.status == "findings"


def test_down_reachability_error(down: Run) -> None:
    reachability = down.check("target reachability")
    assert reachability["status"] == "error"
    assert reachability["summary"].startswith("target unreachable: connection refused")


def test_down_refused(down: Run) -> None:
    assert down.modes() == ["intent", "refused"]
    assert down.actions()[-1]["detail"] == (
        "precondition 'version chosen' not met: no version chosen: the target did"
        " not respond"
    )


def test_down_diagnosis(down: Run) -> None:
    diagnosis = down.field("diagnosis")
    assert diagnosis.startswith("target unreachable: connection refused at ")
    assert diagnosis.endswith("; nothing was rolled back")
