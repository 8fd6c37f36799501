"""Report files journaled as report.written, the timeline command, and verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from veerunbook.cli import main
from veerunbook.incident import open_or_update
from veerunbook.journal import Journal
from veerunbook.reports import write_report
from veerunbook.verify import verify

INCIDENT = "INC-REPORTS-1"
# SHA-256 of the report text "# t\n", from sha256sum.
REPORT_SHA256 = "51c3935c02ad666c06c0b0961d432233cf1fac1923b223a688f8d549c930899c"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    open_or_update(tmp_path, INCIDENT, title="reports", severity="P2")
    journal = Journal(tmp_path / INCIDENT)
    journal.append("run.started", run="RUN-1", procedure="triage")
    journal.append("check", run="RUN-1", name="5xx error rate", status="fail")
    journal.append(
        "run.finished", run="RUN-1", procedure="triage", status="findings", counts={}
    )
    return tmp_path / INCIDENT


def last_event(folder: Path) -> dict[str, object]:
    lines = (folder / "journal.jsonl").read_text().splitlines()
    return dict(json.loads(lines[-1]))


def test_report_journaled(folder: Path) -> None:
    write_report(folder, folder / "reports" / "t.md", b"# t\n", report="x", fmt="md")
    event = last_event(folder)
    assert event["event"] == "report.written"
    assert event["files"] == {"reports/t.md": REPORT_SHA256}


def test_verify_passes_after_report(folder: Path) -> None:
    write_report(folder, folder / "reports" / "t.md", b"# t\n", report="x", fmt="md")
    result = verify(folder)
    assert result.ok
    assert result.events == 5


def test_verify_fails_after_change(folder: Path) -> None:
    path = write_report(
        folder, folder / "reports" / "t.md", b"# t\n", report="x", fmt="md"
    )
    path.write_bytes(b"# edited\n")
    result = verify(folder)
    assert not result.ok
    assert result.line == 5
    assert result.path == "reports/t.md"
    assert "report file reports/t.md recorded on line 5 was changed" in str(
        result.problem
    )


def test_verify_fails_after_removal(folder: Path) -> None:
    path = write_report(
        folder, folder / "reports" / "t.md", b"# t\n", report="x", fmt="md"
    )
    path.unlink()
    result = verify(folder)
    assert not result.ok
    assert "is missing" in str(result.problem)


def test_verify_rejects_report_without_files(folder: Path) -> None:
    Journal(folder).append("report.written", report="x", format="md")
    result = verify(folder)
    assert not result.ok
    assert result.problem == "line 5 records a report without its files"


def test_report_outside_incident_not_journaled(folder: Path, tmp_path: Path) -> None:
    before = (folder / "journal.jsonl").read_bytes()
    write_report(folder, tmp_path / "out" / "t.md", b"# t\n", report="x", fmt="md")
    assert (tmp_path / "out" / "t.md").read_bytes() == b"# t\n"
    assert (folder / "journal.jsonl").read_bytes() == before


def timeline(folder: Path, *extra: str) -> int:
    return main(["timeline", INCIDENT, "--archive", str(folder.parent), *extra])


def test_timeline_markdown_to_stdout(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (folder / "journal.jsonl").read_bytes()
    assert timeline(folder) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# Timeline of {INCIDENT}\n")
    assert "| check | 5xx error rate | fail |" in out
    assert (folder / "journal.jsonl").read_bytes() == before


def test_timeline_csv_to_stdout(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert timeline(folder, "--format", "csv") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "seq,time,kind,run,procedure,status,summary,link"
    assert len(lines) == 5


def test_timeline_html_default_path(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert timeline(folder, "--format", "html") == 0
    page = folder / "reports" / "timeline.html"
    assert capsys.readouterr().out == f"{page}\n"
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert last_event(folder)["files"] == {
        "reports/timeline.html": _sha256(page),
    }
    assert verify(folder).ok


def test_timeline_output_then_edit(folder: Path) -> None:
    output = folder / "reports" / "timeline.csv"
    assert timeline(folder, "--format", "csv", "-o", str(output)) == 0
    assert verify(folder).ok
    output.write_text(output.read_text() + "tampered\n")
    result = verify(folder)
    assert not result.ok
    assert result.path == "reports/timeline.csv"


def test_timeline_twice_keeps_chain(folder: Path) -> None:
    assert timeline(folder, "--format", "html") == 0
    assert timeline(folder, "--format", "html") == 0
    result = verify(folder)
    assert result.ok
    assert result.events == 6


def test_rewritten_report_edit_detected(folder: Path) -> None:
    assert timeline(folder, "--format", "html") == 0
    assert timeline(folder, "--format", "html") == 0
    (folder / "reports" / "timeline.html").write_text("<!DOCTYPE html>")
    result = verify(folder)
    assert not result.ok
    assert result.line == 6


def test_timeline_unknown_incident(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["timeline", "INC-NONE", "--archive", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "incident 'INC-NONE' not found" in err


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
