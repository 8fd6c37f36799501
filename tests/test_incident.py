"""Tests for incident folders, their state file and the archive root."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from veerunbook.errors import JournalError, UsageError
from veerunbook.incident import (
    ARCHIVE_ENV,
    INCIDENT_FILE,
    RUNS_DIR,
    Incident,
    SeverityChange,
    archive_root,
    incident_dir,
    load_incident,
    open_or_update,
)
from veerunbook.journal import Journal
from veerunbook.verify import verify


def events_of(folder: Path) -> list[str]:
    return [event["event"] for event in Journal(folder).events()]


def test_open_creates_incident_folder(tmp_path: Path) -> None:
    incident = open_or_update(tmp_path, "INC-1", title="API down", severity="P1")
    folder = tmp_path / "INC-1"
    assert (folder / INCIDENT_FILE).is_file()
    assert (folder / RUNS_DIR).is_dir()
    assert incident.title == "API down"
    assert incident.opened_at == incident.updated_at
    assert load_incident(folder) == incident


def test_open_journals_incident_opened(tmp_path: Path) -> None:
    open_or_update(tmp_path, "INC-1", title="API down", severity="P1")
    [opened] = Journal(tmp_path / "INC-1").events()
    assert opened["event"] == "incident.opened"
    assert opened["incident"] == "INC-1"
    assert opened["severity"] == "P1"
    assert opened["title"] == "API down"


def test_open_without_changes_is_journaled(tmp_path: Path) -> None:
    incident = open_or_update(tmp_path, "INC-1")
    assert incident.title == ""
    assert incident.severity is None
    assert events_of(tmp_path / "INC-1") == ["incident.opened"]


def test_severity_change_recorded(tmp_path: Path) -> None:
    open_or_update(tmp_path, "INC-1", severity="P2")
    incident = open_or_update(tmp_path, "INC-1", severity="P0")
    updated = Journal(tmp_path / "INC-1").events()[-1]
    assert incident.severity == "P0"
    assert [c.severity for c in incident.severity_history] == ["P2", "P0"]
    assert incident.severity_history[1].previous == "P2"
    assert updated["event"] == "incident.updated"
    assert updated["severity"] == "P0"
    assert updated["previous_severity"] == "P2"


def test_same_severity_changes_nothing(tmp_path: Path) -> None:
    first = open_or_update(tmp_path, "INC-1", severity="P2")
    again = open_or_update(tmp_path, "INC-1", severity="P2")
    assert again == first
    assert events_of(tmp_path / "INC-1") == ["incident.opened"]


def test_acknowledge_keeps_first_time(tmp_path: Path) -> None:
    open_or_update(tmp_path, "INC-1")
    first = open_or_update(tmp_path, "INC-1", acknowledge=True)
    again = open_or_update(tmp_path, "INC-1", acknowledge=True)
    assert first.acknowledged_at is not None
    assert again.acknowledged_at == first.acknowledged_at
    assert events_of(tmp_path / "INC-1") == ["incident.opened", "incident.updated"]


def test_resolve_sets_resolution_time(tmp_path: Path) -> None:
    open_or_update(tmp_path, "INC-1", severity="P3")
    incident = open_or_update(tmp_path, "INC-1", resolve=True)
    assert incident.resolved_at is not None
    assert Journal(tmp_path / "INC-1").events()[-1]["resolved_at"] == (
        incident.resolved_at
    )


def test_title_change_recorded(tmp_path: Path) -> None:
    open_or_update(tmp_path, "INC-1", title="slow")
    incident = open_or_update(tmp_path, "INC-1", title="  database pool exhausted ")
    assert incident.title == "database pool exhausted"
    assert load_incident(tmp_path / "INC-1").title == "database pool exhausted"


def test_title_password_masked(tmp_path: Path) -> None:
    title = "postgres://app:Xk9pw-2026@127.0.0.1/app refuses connections"
    open_or_update(tmp_path, "INC-1", title=title)
    folder = tmp_path / "INC-1"
    assert "Xk9pw-2026" not in (folder / INCIDENT_FILE).read_text()
    assert "Xk9pw-2026" not in (folder / "journal.jsonl").read_text()


@pytest.mark.parametrize("severity", ["P4", "p1", "critical", ""])
def test_invalid_severity_rejected(tmp_path: Path, severity: str) -> None:
    with pytest.raises(UsageError, match="invalid severity"):
        open_or_update(tmp_path, "INC-1", severity=severity)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("title", ["x" * 201, "two\nlines"])
def test_invalid_title_rejected(tmp_path: Path, title: str) -> None:
    with pytest.raises(UsageError, match="invalid incident title"):
        open_or_update(tmp_path, "INC-1", title=title)


def test_invalid_id_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="invalid incident id"):
        open_or_update(tmp_path, "../escape")
    assert list(tmp_path.iterdir()) == []


def test_updates_leave_no_temporary_files(tmp_path: Path) -> None:
    for severity in ("P3", "P2", "P1"):
        open_or_update(tmp_path, "INC-1", severity=severity)
    names = sorted(path.name for path in (tmp_path / "INC-1").iterdir())
    expected = ["incident.json", "incident.lock", "journal.head", "journal.jsonl"]
    assert names == sorted([*expected, "journal.lock", "runs"])


def test_incident_json_round_trip(tmp_path: Path) -> None:
    incident = Incident(
        "INC-1",
        "API down",
        "P1",
        "2026-12-04T16:15:30.000000Z",
        None,
        None,
        "2026-12-04T16:15:30.000000Z",
        [SeverityChange("2026-12-04T16:15:30.000000Z", "P1", None)],
    )
    assert Incident.from_dict(json.loads(json.dumps(incident.to_dict()))) == incident


def test_load_missing_incident(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        load_incident(tmp_path / "INC-404")


def test_load_malformed_incident(tmp_path: Path) -> None:
    (tmp_path / INCIDENT_FILE).write_text('{"id": "INC-1"}')
    with pytest.raises(JournalError, match="cannot be read"):
        load_incident(tmp_path)


def test_archive_root_prefers_explicit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ARCHIVE_ENV, str(tmp_path / "from-env"))
    assert archive_root(str(tmp_path / "explicit")) == tmp_path / "explicit"


def test_archive_root_reads_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ARCHIVE_ENV, str(tmp_path / "from-env"))
    assert archive_root(None) == tmp_path / "from-env"


def test_archive_root_defaults_to_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ARCHIVE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert archive_root(None) == tmp_path / "outputs"


def test_incident_dir_inside_archive(tmp_path: Path) -> None:
    assert incident_dir(tmp_path, "INC-1") == tmp_path.resolve() / "INC-1"


def test_incident_dir_rejects_symlink_escape(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (archive / "INC-1").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UsageError, match="outside the archive"):
        incident_dir(archive, "INC-1")


# Each worker process opens the same incident and sets its own title.
WORKER = """
import sys
from pathlib import Path
from veerunbook.incident import open_or_update

open_or_update(Path(sys.argv[1]), "INC-1", title="worker " + sys.argv[2])
"""


def test_concurrent_opens_create_one_incident(tmp_path: Path) -> None:
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), str(number)])
        for number in range(8)
    ]
    exit_codes = [worker.wait(timeout=300) for worker in workers]
    events = events_of(tmp_path / "INC-1")
    assert exit_codes == [0] * 8
    assert events.count("incident.opened") == 1
    assert events.count("incident.updated") == 7
    assert verify(tmp_path / "INC-1").ok


def test_reopen_clears_resolution(tmp_path: Path) -> None:
    open_or_update(tmp_path, "INC-1", resolve=True)
    incident = open_or_update(tmp_path, "INC-1", reopen=True)
    event = Journal(tmp_path / "INC-1").events()[-1]
    assert incident.resolved_at is None
    assert event["reopened_at"] == incident.updated_at
    assert event["previous_resolved_at"] is not None


def test_reopen_of_open_incident_changes_nothing(tmp_path: Path) -> None:
    open_or_update(tmp_path, "INC-1")
    events = len(Journal(tmp_path / "INC-1").events())
    open_or_update(tmp_path, "INC-1", reopen=True)
    assert len(Journal(tmp_path / "INC-1").events()) == events
