"""The post-incident notebook run through the runner with a real kernel.

The incident under review is the one ``tests.test_report_html`` builds: P1, opened,
acknowledged by alice and resolved within a second, one run with a failing 5xx
check, an executed restart and a note: nine journal lines, in this order: opened,
acknowledged, run.started, check, run.finished, action intent, action executed, note,
resolved.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.test_report_html import INCIDENT, PLANTED_SECRET, build_incident
from veerunbook.incident import open_or_update
from veerunbook.redact import Redactor
from veerunbook.runner import RunOutcome, run_procedure
from veerunbook.verify import verify


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("review")
    return build_incident(base / "archive", base / "notebooks")


def review(archive: Path, incident: str | None, **params: Any) -> RunOutcome:
    return run_procedure(
        "post-incident",
        incident=incident,
        target="demo",
        params=params,
        archive=archive,
        redactor=Redactor(),
    )


@pytest.fixture(scope="module")
def reviewed(built: Path, tmp_path_factory: pytest.TempPathFactory) -> RunOutcome:
    archive = tmp_path_factory.mktemp("reviewed") / "archive"
    shutil.copytree(built, archive / INCIDENT)
    return review(archive, INCIDENT)


def cell_output(outcome: RunOutcome, source: str) -> str:
    """Return the HTML, else plain text and stdout, of the cell ending in ``source``."""
    nb = json.loads(outcome.notebook.read_text("utf-8"))
    for cell in nb["cells"]:
        if not "".join(cell["source"]).strip().endswith(source):
            continue
        texts = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            text = data.get("text/html") or data.get("text/markdown")
            text = text or data.get("text/plain") or output.get("text", "")
            texts.append("".join(text))
        return "\n".join(texts)
    raise AssertionError(f"no cell with source {source!r}")


def integrity_checks(outcome: RunOutcome) -> list[dict[str, Any]]:
    """Return the ``journal integrity`` checks that the review journaled."""
    journal = outcome.notebook.parent.parent / "journal.jsonl"
    events = [json.loads(line) for line in journal.read_text("utf-8").splitlines()]
    return [
        event
        for event in events
        if event["event"] == "check" and event["name"] == "journal integrity"
    ]


def has_image(outcome: RunOutcome, source: str) -> bool:
    nb = json.loads(outcome.notebook.read_text("utf-8"))
    cells = [c for c in nb["cells"] if "".join(c["source"]).strip().endswith(source)]
    return any("image/png" in o.get("data", {}) for o in cells[0]["outputs"])


def test_review_run_is_ok(reviewed: RunOutcome) -> None:
    assert reviewed.status == "ok", reviewed.reason
    # One pass for the journal integrity and one for the review.
    assert reviewed.counts["pass"] == 2


def test_review_header(reviewed: RunOutcome) -> None:
    header = cell_output(reviewed, "review.overview()")
    assert f"<td>{INCIDENT}</td>" in header
    assert "<td>checkout errors</td>" in header
    assert "<td>P1</td>" in header
    assert "not resolved" not in header
    assert "not acknowledged" not in header


def test_review_timeline_table(reviewed: RunOutcome) -> None:
    table = cell_output(reviewed, "review.timeline_table()")
    assert "<td>acknowledged by alice</td>" in table
    assert "<td>restart checkout: 3 pods restarted</td>" in table
    assert "<td>errors stopped after restart</td>" in table
    assert "review-fixture findings" in table
    assert "<td>resolved</td>" in table


def test_review_leaves_own_run_out(reviewed: RunOutcome) -> None:
    table = cell_output(reviewed, "review.timeline_table()")
    assert "post-incident" not in table


def test_review_figure_is_image(reviewed: RunOutcome) -> None:
    assert has_image(reviewed, "review.figure()")


def test_review_compliance_table(reviewed: RunOutcome) -> None:
    table = cell_output(reviewed, "review.compliance_table()")
    # P1: acknowledgement within 60 min; alice acknowledged within a second.
    assert "<td>acknowledgement (60 min)</td>" in table
    # The on-call step (0-15 min) is reached by the acknowledgement.
    assert "<td>escalation 0-15 min: on-call engineer</td>" in table
    # The investigation step (15-30 min, no role) is reached early by the same
    # acknowledgement, which counts as met.
    assert table.count("<td>met</td>") == 3
    # Resolved within a second, so the steps due at 30 and 60 min never fell due.
    assert table.count("<td>not due</td>") == 2
    assert "<td>escalation from 60 min: + infrastructure team</td>" in table


def test_review_postmortem_draft(reviewed: RunOutcome) -> None:
    draft = cell_output(reviewed, "review.postmortem()")
    assert draft.startswith("# Post-mortem: checkout errors")
    assert "restart checkout" in draft


def test_review_writes_nothing_by_default(reviewed: RunOutcome) -> None:
    folder = reviewed.notebook.parent.parent
    assert not (folder / "reports").exists()
    assert list((folder / "runs").glob("*.html")) == []


def test_review_writes_reports(built: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    shutil.copytree(built, archive / INCIDENT)
    outcome = review(archive, INCIDENT, write_reports=True)
    folder = archive / INCIDENT
    table = cell_output(outcome, "review.write_reports(write_reports)")
    assert outcome.status == "ok", outcome.reason
    assert (folder / "reports" / "timeline.html").is_file()
    assert (folder / "reports" / "postmortem.md").is_file()
    assert len(list((folder / "runs").glob("*review-fixture.html"))) == 1
    assert "<td>reports/postmortem.md</td>" in table
    assert verify(folder).ok


def test_review_copy_masks_configured_secret(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "archive"
    shutil.copytree(built, archive / INCIDENT)
    # The default configuration masks $DATABASE_URL, and the kernel inherits it.
    monkeypatch.setenv("DATABASE_URL", PLANTED_SECRET)
    review(archive, INCIDENT, write_reports=True)
    copy = next((archive / INCIDENT / "runs").glob("*review-fixture.html"))
    assert PLANTED_SECRET not in copy.read_text("utf-8")


def test_review_of_new_incident_finds_nothing(tmp_path: Path) -> None:
    outcome = review(tmp_path / "archive", None)
    overview = cell_output(outcome, "review.overview()")
    assert outcome.status == "findings"
    assert "has nothing to review" in overview
    assert outcome.incident in overview


def test_review_lists_incidents(built: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    shutil.copytree(built, archive / INCIDENT)
    outcome = review(archive, None)
    overview = cell_output(outcome, "review.overview()")
    assert f"<td>{INCIDENT}</td>" in overview
    assert "<td>checkout errors</td>" in overview


def test_review_of_open_incident(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    open_or_update(archive, "INC-OPEN-1", title="slow pages", severity="P2")
    open_or_update(archive, "INC-OPEN-1", acknowledge=True, acknowledged_by="bob")
    outcome = review(archive, "INC-OPEN-1")
    table = cell_output(outcome, "review.compliance_table()")
    assert outcome.status == "ok", outcome.reason
    # P2: 240 min to acknowledge, and bob acknowledged at once.
    assert "<td>acknowledgement (240 min)</td>" in table
    assert "<td>met</td>" in table


def test_review_integrity_intact(reviewed: RunOutcome) -> None:
    table = cell_output(reviewed, "review.integrity()")
    checks = integrity_checks(reviewed)
    assert "<td>pass</td>" in table
    # The fixture's nine lines plus the runner's run.started for the review.
    assert "<td>10</td>" in table
    assert len(checks) == 1
    assert checks[0]["status"] == "pass"
    assert checks[0]["observed"] == 10
    assert checks[0]["summary"] == "journal intact: 10 lines"


def test_review_summary_lists_integrity(reviewed: RunOutcome) -> None:
    table = cell_output(reviewed, "review.close()")
    assert "<td>journal integrity</td>" in table
    assert "<td>post-incident review</td>" in table


def test_review_of_changed_notebook(built: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    shutil.copytree(built, archive / INCIDENT)
    notebook = next((archive / INCIDENT / "runs").glob("*review-fixture.ipynb"))
    with notebook.open("a", encoding="utf-8") as file:
        file.write("\n")
    outcome = review(archive, INCIDENT)
    table = cell_output(outcome, "review.integrity()")
    checks = integrity_checks(outcome)
    name = f"runs/{notebook.name}"
    assert outcome.status == "findings", outcome.reason
    assert "<td>fail</td>" in table
    assert f"<td>{name}</td>" in table
    # run.finished, line 5 of the journal, records the notebook's SHA-256.
    assert "<td>5</td>" in table
    assert "was changed after it was written" in table
    assert checks[0]["status"] == "fail"
    assert checks[0]["observed"] == 4
    assert checks[0]["summary"].startswith(f"journal broken: run file {name}")
    assert "recorded on line 5 was changed" in checks[0]["summary"]


def test_review_of_edited_journal(built: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    shutil.copytree(built, archive / INCIDENT)
    journal = archive / INCIDENT / "journal.jsonl"
    text = journal.read_text("utf-8")
    journal.write_text(text.replace("errors stopped", "errors ended"), "utf-8")
    outcome = review(archive, INCIDENT)
    checks = integrity_checks(outcome)
    assert outcome.status == "findings", outcome.reason
    assert checks[0]["status"] == "fail"
    # The note is line 8, so line 9 no longer links to it and 8 lines stay intact.
    assert checks[0]["observed"] == 8
    assert checks[0]["summary"].startswith("journal broken in journal.jsonl: line 9")
    assert verify(archive / INCIDENT).problem in checks[0]["summary"]
