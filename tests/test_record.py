"""Tests for the run record that notebooks write into the archive."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest

from veerunbook.errors import JournalError, UsageError
from veerunbook.incident import ARCHIVE_ENV, open_or_update
from veerunbook.journal import JOURNAL_FILE, Journal
from veerunbook.record import INCIDENT_ENV, RUN_ID_ENV, RunContext, start_run
from veerunbook.redact import Redactor
from veerunbook.verify import verify

TOKEN = "vbtok_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
PASSWORD = "Xk9#vQ2!rb-2026"
DSN = "postgresql://veefore:Xk9%23vQ2%21rb-2026@198.51.100.7:5432/veefore"


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test outside a runner, with no configuration file and no secrets."""
    for name in (RUN_ID_ENV, INCIDENT_ENV, ARCHIVE_ENV, "VEERUNBOOK_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    for name in ("DATABASE_URL", "VEEFORE_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def start(tmp_path: Path, **options: Any) -> RunContext:
    options.setdefault("incident", "INC-1")
    return start_run("triage", archive=str(tmp_path / "archive"), **options)


def events_of(context: RunContext) -> list[dict[str, Any]]:
    return Journal(context.incident_dir).events()


@dataclass
class LatencyProbe:
    """The attributes of a probe result that ``record_probe`` reads."""

    name: str
    status: str
    latency_ms: float | None
    http_status: int | None

    def summary(self) -> str:
        return f"{self.name}: HTTP {self.http_status} in {self.latency_ms} ms"

    def to_dict(self) -> dict[str, Any]:
        return {"url": "http://127.0.0.1:8080/health", "body_excerpt": "ok"}


def test_standalone_journals_run_started(tmp_path: Path) -> None:
    context = start(tmp_path, params={"target": "demo", "window_s": 60})
    started = events_of(context)[-1]
    assert context.standalone
    assert started["event"] == "run.started"
    assert started["run"] == context.run_id
    assert started["procedure"] == "triage"
    assert started["params"] == {"target": "demo", "window_s": 60}
    assert started["mode"] == "standalone"
    assert started["operator"]
    assert started["host"]


def test_standalone_journals_run_finished(tmp_path: Path) -> None:
    context = start(tmp_path)
    context.check("health endpoint", "pass")
    context.check("error rate", "fail", observed=7.5, unit="%", expected="<= 5 %")
    status = context.finish()
    finished = events_of(context)[-1]
    assert status == "findings"
    assert finished["event"] == "run.finished"
    assert finished["status"] == "findings"
    assert finished["notebook"] is None
    assert finished["counts"] == {
        "pass": 1,
        "warn": 0,
        "fail": 1,
        "error": 0,
        "skip": 0,
    }
    assert verify(context.incident_dir).ok


def test_standalone_event_order(tmp_path: Path) -> None:
    context = start(tmp_path)
    context.check("health endpoint", "pass")
    context.note("restarted nothing")
    context.finish()
    assert [event["event"] for event in events_of(context)] == [
        "incident.opened",
        "run.started",
        "check",
        "note",
        "run.finished",
    ]


def test_standalone_creates_incident_id(tmp_path: Path) -> None:
    context = start(tmp_path, incident="")
    assert context.incident_id.startswith("INC-")
    assert context.incident_dir == (tmp_path / "archive" / context.incident_id)


def test_standalone_rejects_invalid_incident(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="invalid incident id"):
        start(tmp_path, incident="../INC-1")
    assert not (tmp_path / "archive").exists()


def attach(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    archive = tmp_path / "archive"
    open_or_update(archive, "INC-7")
    monkeypatch.setenv(RUN_ID_ENV, "RUN-20261204-161530-abcdef")
    monkeypatch.setenv(INCIDENT_ENV, "INC-7")
    monkeypatch.setenv(ARCHIVE_ENV, str(archive))
    return archive / "INC-7"


def test_attached_skips_run_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = attach(tmp_path, monkeypatch)
    context = start_run("triage")
    context.check("health endpoint", "pass")
    status = context.finish()
    events = Journal(folder).events()
    assert not context.standalone
    assert status == "ok"
    assert [event["event"] for event in events] == ["incident.opened", "check"]
    assert events[-1]["run"] == "RUN-20261204-161530-abcdef"


def test_attached_uses_runner_incident(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = attach(tmp_path, monkeypatch)
    context = start_run("triage", incident="INC-other", archive=str(tmp_path))
    assert context.incident_id == "INC-7"
    assert context.incident_dir == folder


def test_attached_needs_incident_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RUN_ID_ENV, "RUN-1")
    with pytest.raises(UsageError, match=INCIDENT_ENV):
        start_run("triage")


def test_attached_needs_opened_incident(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RUN_ID_ENV, "RUN-1")
    monkeypatch.setenv(INCIDENT_ENV, "INC-missing")
    monkeypatch.setenv(ARCHIVE_ENV, str(tmp_path))
    with pytest.raises(JournalError, match="has no incident"):
        start_run("triage")


def test_check_kept_as_written(tmp_path: Path) -> None:
    context = start(tmp_path)
    check = context.check("p95 latency", "warn", observed=2450.0, unit="ms")
    assert context.checks == [check]
    assert check.seq == events_of(context)[-1]["seq"]
    assert check.to_dict()["observed"] == 2450.0


def test_check_rejects_unknown_status(tmp_path: Path) -> None:
    context = start(tmp_path)
    with pytest.raises(UsageError, match="invalid check status 'ok'"):
        context.check("health endpoint", "ok")


def test_check_rejects_empty_name(tmp_path: Path) -> None:
    context = start(tmp_path)
    with pytest.raises(UsageError, match="check name"):
        context.check(" ", "pass")


def test_record_probe_journals_evidence(tmp_path: Path) -> None:
    context = start(tmp_path)
    check = context.record_probe(LatencyProbe("health", "pass", 12.5, 200))
    assert check.observed == 12.5
    assert check.unit == "ms"
    assert check.evidence["http_status"] == 200
    assert check.evidence["url"] == "http://127.0.0.1:8080/health"
    assert check.summary == "health: HTTP 200 in 12.5 ms"


def test_action_journals_mode(tmp_path: Path) -> None:
    context = start(tmp_path)
    record = context.action("restart service", "dry-run", command="pm2 restart all")
    assert record["mode"] == "dry-run"
    assert context.actions == [record]


def test_action_rejects_unknown_mode(tmp_path: Path) -> None:
    context = start(tmp_path)
    with pytest.raises(UsageError, match="invalid action mode"):
        context.action("restart service", "forced")


def test_note_rejects_run_field(tmp_path: Path) -> None:
    context = start(tmp_path)
    with pytest.raises(UsageError, match="reserved"):
        context.note("text", run="other")


def test_verdict_ok_with_warnings(tmp_path: Path) -> None:
    context = start(tmp_path)
    context.check("p95 latency", "warn")
    context.check("disk", "skip")
    assert context.verdict() == "ok"


def test_verdict_findings_on_error(tmp_path: Path) -> None:
    context = start(tmp_path)
    context.check("database", "error")
    assert context.verdict() == "findings"


def test_finish_twice_journals_once(tmp_path: Path) -> None:
    context = start(tmp_path)
    first = context.finish("aborted")
    second = context.finish()
    events = [event["event"] for event in events_of(context)]
    assert first == "aborted"
    assert second == "aborted"
    assert events.count("run.finished") == 1


def test_finish_rejects_unknown_status(tmp_path: Path) -> None:
    context = start(tmp_path)
    with pytest.raises(UsageError, match="invalid run status"):
        context.finish("done")


def test_check_after_finish_rejected(tmp_path: Path) -> None:
    context = start(tmp_path)
    context.finish()
    with pytest.raises(UsageError, match="already finished"):
        context.check("late", "pass")


def test_context_manager_marks_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), start(tmp_path) as context:
        raise RuntimeError("cell failed")
    assert context.status == "failed"
    assert events_of(context)[-1]["status"] == "failed"


def test_checks_frame_columns(tmp_path: Path) -> None:
    context = start(tmp_path)
    context.check("health endpoint", "pass", observed=12.0, unit="ms")
    context.check("error rate", "fail", observed=7.5, unit="%")
    frame = context.checks_frame()
    assert list(frame.columns) == [
        "name",
        "status",
        "observed",
        "unit",
        "expected",
        "summary",
        "time",
    ]
    assert list(frame["status"]) == ["pass", "fail"]


def test_secret_never_in_journal(tmp_path: Path) -> None:
    redactor = Redactor([TOKEN, DSN])
    params = {"target": "demo", "pg_dsn": DSN, "api_token": TOKEN}
    context = start(tmp_path, params=params, redactor=redactor)
    context.check(
        "database",
        "error",
        evidence={"error": f'missing "=" after "{DSN}" in connection info string'},
        summary=f"connection refused for {DSN}",
    )
    context.note(f"Authorization: Bearer {TOKEN}", header=f"Bearer {TOKEN}")
    context.action("rotate token", "refused", token=TOKEN)
    context.finish()
    data = (context.incident_dir / JOURNAL_FILE).read_bytes()
    assert TOKEN.encode() not in data
    assert PASSWORD.encode() not in data
    assert b"Xk9%23vQ2%21rb-2026" not in data
    assert b'"pg_dsn":"***"' in data  # the parameter's name stays readable


def test_secret_named_params_masked(tmp_path: Path) -> None:
    params = {"api_token": "not-known-to-the-redactor", "admin_token_env": "ADMIN"}
    context = start(tmp_path, params=params)
    started = events_of(context)[1]
    assert started["params"]["api_token"] == "***"
    assert started["params"]["admin_token_env"] == "ADMIN"


def test_default_redactor_masks_configured_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VEEFORE_ADMIN_TOKEN", TOKEN)
    context = start(tmp_path)
    context.note(f"sent token {TOKEN}")
    assert TOKEN.encode() not in (context.incident_dir / JOURNAL_FILE).read_bytes()


def write_notebook(path: Path) -> None:
    parameters = nbformat.v4.new_code_cell('incident = ""\narchive = ""')
    parameters.metadata["tags"] = ["parameters"]
    record = nbformat.v4.new_code_cell(
        "from veerunbook.record import start_run\n"
        'context = start_run("smoke", incident=incident, archive=archive)\n'
        'context.check("kernel alive", "pass")\n'
        "context.finish()"
    )
    notebook = nbformat.v4.new_notebook(cells=[parameters, record])
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python"}
    nbformat.write(notebook, path)


def test_papermill_run_records_standalone(tmp_path: Path) -> None:
    write_notebook(tmp_path / "smoke.ipynb")
    archive = tmp_path / "archive"
    papermill.execute_notebook(
        str(tmp_path / "smoke.ipynb"),
        str(tmp_path / "smoke-out.ipynb"),
        parameters={"incident": "INC-42", "archive": str(archive)},
        kernel_name="python3",
        progress_bar=False,
    )
    events = Journal(archive / "INC-42").events()
    assert [event["event"] for event in events] == [
        "incident.opened",
        "run.started",
        "check",
        "run.finished",
    ]
    assert events[-1]["status"] == "ok"
    assert verify(archive / "INC-42").ok
