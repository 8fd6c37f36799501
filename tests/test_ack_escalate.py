"""Tests for acknowledging and escalating an incident, in the library and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from veerunbook.cli import main
from veerunbook.errors import UsageError
from veerunbook.incident import escalate, load_incident, open_or_update
from veerunbook.journal import Journal
from veerunbook.verify import verify


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    open_or_update(tmp_path, "INC-1", title="checkout failing", severity="P1")
    return tmp_path


def last_event(archive: Path) -> dict[str, object]:
    return Journal(archive / "INC-1").events()[-1]


def test_acknowledged_by_is_journaled(archive: Path) -> None:
    open_or_update(archive, "INC-1", acknowledge=True, acknowledged_by="ana")
    event = last_event(archive)
    assert event["acknowledged_by"] == "ana"
    assert event["acknowledged_at"] is not None


def test_repeated_ack_journals_person(archive: Path) -> None:
    first = open_or_update(archive, "INC-1", acknowledge=True, acknowledged_by="ana")
    count = len(Journal(archive / "INC-1").events())
    again = open_or_update(archive, "INC-1", acknowledge=True, acknowledged_by="bo")
    events = Journal(archive / "INC-1").events()
    assert len(events) == count + 1
    assert events[-1]["acknowledged_by"] == "bo"
    # incident.json keeps the first acknowledgement's time.
    assert again.acknowledged_at == first.acknowledged_at


def test_ack_after_automatic_journals_person(archive: Path) -> None:
    open_or_update(archive, "INC-1", acknowledge=True)
    open_or_update(archive, "INC-1", acknowledge=True, acknowledged_by="ana")
    assert last_event(archive)["acknowledged_by"] == "ana"


def test_escalate_journals_role_and_responder(archive: Path) -> None:
    escalate(archive, "INC-1", "security", by="ana")
    event = last_event(archive)
    assert event["event"] == "incident.updated"
    assert event["escalated_to"] == "security"
    assert event["escalated_by"] == "ana"


def test_escalate_keeps_journal_verifiable(archive: Path) -> None:
    escalate(archive, "INC-1", "infrastructure", by="ana")
    assert verify(archive / "INC-1").ok


def test_escalate_rejects_unknown_role(archive: Path) -> None:
    with pytest.raises(UsageError, match="unknown escalation role"):
        escalate(archive, "INC-1", "ceo", by="ana")


def test_escalate_rejects_unknown_incident(archive: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        escalate(archive, "INC-2", "security", by="ana")
    assert not (archive / "INC-2").exists()


def test_escalate_rejects_multiline_name(archive: Path) -> None:
    with pytest.raises(UsageError, match="responder name"):
        escalate(archive, "INC-1", "security", by="ana\nbo")


def test_cli_ack_prints_delay_and_status(
    archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["ack", "INC-1", "--by", "ana", "--archive", str(archive)])
    output = capsys.readouterr().out
    assert code == 0
    assert output.startswith("INC-1 acknowledged by ana at ")
    assert "60 min target: met" in output


def test_cli_ack_defaults_to_os_user(
    archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "oncall-7")
    monkeypatch.setenv("LOGNAME", "oncall-7")
    assert main(["ack", "INC-1", "--archive", str(archive)]) == 0
    assert load_incident(archive / "INC-1").acknowledged_at is not None
    assert last_event(archive)["acknowledged_by"] == "oncall-7"


def test_cli_ack_again_names_first(
    archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["ack", "INC-1", "--by", "ana", "--archive", str(archive)])
    main(["ack", "INC-1", "--by", "bo", "--archive", str(archive)])
    output = capsys.readouterr().out.splitlines()[-1]
    assert output.startswith("INC-1 acknowledged by bo; first acknowledged by ana at ")


def test_cli_resolve_records_person(
    archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["resolve", "INC-1", "--by", "ana", "--archive", str(archive)]) == 0
    assert last_event(archive)["resolved_by"] == "ana"
    assert capsys.readouterr().out.startswith("INC-1 resolved at ")


def test_cli_resolve_unknown_incident_exits_2(
    archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["resolve", "INC-9", "--archive", str(archive)]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1
    assert not (archive / "INC-9").exists()


def test_cli_ack_unknown_incident_exits_2(
    archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ack", "INC-9", "--archive", str(archive)]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1
    assert not (archive / "INC-9").exists()


def test_cli_escalate_prints_contact(
    archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["escalate", "INC-1", "--to", "security", "--by", "ana"]
    assert main([*args, "--archive", str(archive)]) == 0
    output = capsys.readouterr().out
    assert output.startswith(
        "INC-1 escalated to security ([security not configured]) by ana at "
    )


def test_cli_escalate_unknown_role_exits_2(
    archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["escalate", "INC-1", "--to", "ceo", "--archive", str(archive)]
    assert main(args) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1
    assert "escalated_to" not in last_event(archive)
