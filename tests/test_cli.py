"""The command line end to end: triage on the embedded target, verify, bad input.

Triage runs here are real: a subprocess runs ``veerunbook run``, which starts a Jupyter
kernel, which starts the embedded target on a free loopback port. The metrics window is
kept short (2 s) to bound the suite's time.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from veerunbook.cli import main
from veerunbook.simulator import start_target

WINDOW = "2"
PLANTED_PASSWORD = "Pl4nted-pw-7c1e"
PLANTED_TOKEN = "planted-admin-token-5b9d2f"


def run_cli(
    *args: str, archive: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``veerunbook`` in a subprocess with its own archive and clean secrets."""
    environment = {**os.environ, "VEERUNBOOK_ARCHIVE": str(archive)}
    for name in ("VEEFORE_ADMIN_TOKEN", "DATABASE_URL", "VEERUNBOOK_CONFIG"):
        environment.pop(name, None)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "veerunbook.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=240,
    )


def only_incident(archive: Path) -> Path:
    folders = [path for path in archive.iterdir() if path.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


@pytest.mark.parametrize(
    ("scenario", "exit_code", "classes"),
    [
        ("healthy", 0, {None, "P3"}),
        ("db-outage", 1, {"P0"}),
        ("error-spike", 1, {"P0", "P1"}),
    ],
)
def test_triage_classifies_scenario(
    tmp_path: Path, scenario: str, exit_code: int, classes: set[str | None]
) -> None:
    done = run_cli(
        "run", "triage", "--target", f"demo:{scenario}", "-p", "window_seconds", WINDOW,
        archive=tmp_path,
    )  # fmt: skip
    assert done.returncode == exit_code, done.stderr[-2000:]
    folder = only_incident(tmp_path)
    incident = json.loads((folder / "incident.json").read_text())
    assert incident["severity"] in classes
    assert incident["acknowledged_at"] is not None
    assert f"incident:  {folder.name}" in done.stdout
    notebooks = list((folder / "runs").glob("*-triage.ipynb"))
    assert len(notebooks) == 1
    verified = run_cli("verify", folder.name, archive=tmp_path)
    assert verified.returncode == 0, verified.stdout


def test_triage_db_outage_reasons(tmp_path: Path) -> None:
    done = run_cli(
        "run", "triage", "--target", "demo:db-outage", "-p", "window_seconds", WINDOW,
        archive=tmp_path,
    )  # fmt: skip
    folder = only_incident(tmp_path)
    lines = (folder / "journal.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    notes = [event for event in events if event["event"] == "note"]
    classified = [note for note in notes if "classification" in note]
    assert done.returncode == 1
    assert len(classified) == 1
    rules = {reason["rule"] for reason in classified[0]["classification"]["reasons"]}
    assert "database unavailable" in rules
    recommended = [note for note in notes if "recommended" in note]
    names = {row["procedure"] for row in recommended[0]["recommended"]}
    assert "database-connection" in names


def test_verify_detects_every_edited_byte(tmp_path: Path) -> None:
    done = run_cli(
        "run", "triage", "--target", "demo:healthy", "-p", "window_seconds", "1",
        archive=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    folder = only_incident(tmp_path)
    journal = folder / "journal.jsonl"
    original = journal.read_bytes()
    # Every byte of the first two lines, then every 37th byte of the rest.
    second_end = original.index(b"\n", original.index(b"\n") + 1) + 1
    positions = [*range(second_end), *range(second_end, len(original), 37)]
    archive = ["--archive", str(tmp_path)]
    undetected = []
    for position in positions:
        edited = bytearray(original)
        edited[position] = ord("#") if edited[position] != ord("#") else ord("$")
        journal.write_bytes(bytes(edited))
        if main(["verify", folder.name, *archive]) != 1:
            undetected.append(position)
    journal.write_bytes(original)
    assert undetected == []
    assert main(["verify", folder.name, *archive]) == 0


def test_verify_detects_changed_notebook(tmp_path: Path) -> None:
    done = run_cli(
        "run", "triage", "--target", "demo:healthy", "-p", "window_seconds", "1",
        archive=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0
    folder = only_incident(tmp_path)
    notebook = next((folder / "runs").glob("*.ipynb"))
    notebook.write_text(notebook.read_text().replace("healthy", "HEALTHY", 1))
    assert main(["verify", folder.name, "--archive", str(tmp_path)]) == 1


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("procedure", ["triage", "database-connection"])
def test_planted_secrets_never_archived(tmp_path: Path, procedure: str) -> None:
    # The database URL points at a loopback port where nothing listens, so the
    # direct connection fails and its error text passes through the masking too.
    port = closed_port()
    database_url = f"postgresql://veefore:{PLANTED_PASSWORD}@127.0.0.1:{port}/veefore"
    secrets = {"DATABASE_URL": database_url, "VEEFORE_ADMIN_TOKEN": PLANTED_TOKEN}
    running = start_target("error-spike")
    try:
        done = run_cli(
            "run", procedure, "--target", running.base_url,
            "-p", "window_seconds", "1", "--html", archive=tmp_path, env=secrets,
        )  # fmt: skip
    finally:
        running.stop()
    assert done.returncode == 1, done.stderr[-2000:]
    folder = only_incident(tmp_path)
    notebook = next((folder / "runs").glob("*.ipynb")).read_text()
    assert f"postgresql://veefore:***@127.0.0.1:{port}/veefore" in notebook
    for path in files_under(tmp_path):
        text = path.read_bytes().decode("utf-8", errors="replace")
        assert PLANTED_PASSWORD not in text, path
        assert PLANTED_TOKEN not in text, path
    assert PLANTED_PASSWORD not in done.stdout + done.stderr
    assert PLANTED_TOKEN not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["run", "triag"], "triag"),
        (["run", "triage", "-p", "window_secs", "5"], "window_secs"),
        (["run", "triage", "-p", "notify", "false"], "notify"),
        (["run", "triage", "-p", "window_seconds", "nan"], "window_seconds"),
        (["run", "triage", "-p", "window_seconds", "soon"], "window_seconds"),
        (["run", "triage", "-p", "api_token", "abc123"], "api_token"),
        (["run", "triage", "--incident", "../escape"], "../escape"),
        (["run", "triage", "--incident", "a/b"], "a/b"),
        (["run", "triage", "--target", "demo:meteor-strike"], "meteor-strike"),
        (["run", "triage", "--target", "nowhere"], "nowhere"),
        (["run", "triage", "-f", "missing.yaml"], "missing.yaml"),
        (["show", "no-such-procedure"], "no-such-procedure"),
        (["verify", "INC-does-not-exist"], "INC-does-not-exist"),
        (["frobnicate"], "frobnicate"),
        (["run", "triage", "--cell-timeout", "0"], "--cell-timeout"),
        (["run", "triage", "--cell-timeout", "nan"], "--cell-timeout"),
        (["run", "triage", "--timeout", "1e300"], "--timeout"),
        (["run", "triage", "--target", "http://[::1"], "http://[::1"),
        (["run", "triage", "-p", "title", "two\nlines"], "title"),
        (["run", "triage", "-p", "window_seconds", "1e400"], "window_seconds"),
    ],
)
def test_bad_input_exits_2_writing_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    named: str,
) -> None:
    archive = tmp_path / "archive"
    monkeypatch.setenv("VEERUNBOOK_ARCHIVE", str(archive))
    monkeypatch.chdir(tmp_path)
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2
    assert named in err
    assert err.count("\n") == 1
    assert err.startswith("veerunbook: error: ")
    assert not archive.exists()


def test_secret_parameter_value_not_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VEERUNBOOK_ARCHIVE", str(tmp_path / "archive"))
    code = main(["run", "triage", "-p", "db_password", PLANTED_PASSWORD])
    err = capsys.readouterr().err
    assert code == 2
    assert PLANTED_PASSWORD not in err


def test_malformed_config_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "veerunbook.toml"
    config.write_text(
        '[targets.staging]\nbase_url = "http://127.0.0.1:8080"\nbase = 1\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VEERUNBOOK_ARCHIVE", str(tmp_path / "archive"))
    code = main(["run", "triage", "--target", "staging"])
    err = capsys.readouterr().err
    assert code == 2
    assert "veerunbook.toml" in err
    assert "targets.staging.base" in err
    assert not (tmp_path / "archive").exists()


def test_list_names_triage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert "triage" in names
    assert {"database-connection", "high-error-rate"} <= set(names)


def test_show_lists_parameters_with_units(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "triage"]) == 0
    out = capsys.readouterr().out
    assert "window_seconds" in out
    assert "float" in out
    assert "seconds between the two metrics scrapes" in out


class _WebhookHandler(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.received.append((self.path, self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


def test_triage_sends_notification_to_webhook(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _WebhookHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    secret_path = "/hooks/T000/B000/Zq8secretpathvalue"
    webhook = f"http://127.0.0.1:{server.server_port}{secret_path}"
    config = tmp_path / "veerunbook.toml"
    config.write_text('[notify]\nwebhook_url_env = "TEST_WEBHOOK_URL"\n')
    try:
        done = run_cli(
            "--config", str(config), "run", "triage", "--target", "demo:db-outage",
            "-p", "window_seconds", "1", "-p", "notify", "True",
            archive=tmp_path / "archive", env={"TEST_WEBHOOK_URL": webhook},
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 1, done.stderr[-2000:]
    assert len(_WebhookHandler.received) == 1
    path, body = _WebhookHandler.received[0]
    message = json.loads(body)
    folder = only_incident(tmp_path / "archive")
    assert path == secret_path
    assert message["text"].startswith(f"[P0] {folder.name}")
    for archived in files_under(tmp_path / "archive"):
        assert "Zq8secretpathvalue" not in archived.read_text(errors="replace")


def test_verify_detects_edited_incident_and_log(tmp_path: Path) -> None:
    done = run_cli(
        "run", "triage", "--target", "demo:db-outage", "-p", "window_seconds", "1",
        archive=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    folder = only_incident(tmp_path)
    archive = ["--archive", str(tmp_path)]
    incident_file = folder / "incident.json"
    original = incident_file.read_text()
    incident_file.write_text(original.replace('"P0"', '"P3"', 1))
    assert main(["verify", folder.name, *archive]) == 1
    incident_file.write_text(original)
    assert main(["verify", folder.name, *archive]) == 0
    log = next((folder / "runs").glob("*.log"))
    log.write_text(log.read_text() + "appended later\n")
    assert main(["verify", folder.name, *archive]) == 1


def test_run_summary_names_failing_checks(tmp_path: Path) -> None:
    done = run_cli(
        "run", "triage", "--target", "demo:db-outage", "-p", "window_seconds", "1",
        "--incident", "INC-SUMMARY", archive=tmp_path,
    )  # fmt: skip
    again = run_cli(
        "run", "triage", "--target", "demo:db-outage", "-p", "window_seconds", "1",
        "--incident", "INC-SUMMARY", archive=tmp_path,
    )  # fmt: skip
    assert "INC-SUMMARY (new incident)" in done.stdout
    assert "INC-SUMMARY (existing incident)" in again.stdout
    assert "  FAIL  database:" in done.stdout
    assert "class:     P0" in again.stdout
    assert (
        "next:      database-connection (database health check failing): "
        "veerunbook run database-connection --incident INC-SUMMARY "
        "--target demo:db-outage"
    ) in done.stdout


def summary_value(stdout: str, label: str) -> str:
    """Return the value after ``label:`` on the first summary line that has it."""
    prefix = f"{label}:"
    lines = [line for line in stdout.splitlines() if line.startswith(prefix)]
    assert lines, f"no {prefix!r} line in:\n{stdout}"
    return lines[0][len(prefix) :].strip()


def test_diagnostic_run_summary(tmp_path: Path) -> None:
    done = run_cli(
        "run", "high-error-rate", "--target", "demo:error-spike", "--incident",
        "INC-HER", "-p", "window_seconds", WINDOW, "-p", "samples", "2",
        archive=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    assert summary_value(done.stdout, "class") == (
        "not set (triage sets it: veerunbook run triage --incident INC-HER)"
    )
    assert "5xx" in summary_value(done.stdout, "diagnosis")
    assert summary_value(done.stdout, "action").startswith("1. ")
    assert " (because " in summary_value(done.stdout, "action")
    lines = done.stdout.splitlines()
    action = next(i for i, line in enumerate(lines) if line.startswith("action:"))
    assert lines[action + 1] == (
        "           none of the recovery options was carried out"
    )
    assert "next:" not in done.stdout


def test_main_restores_log_handlers(capsys: pytest.CaptureFixture[str]) -> None:
    # A handler left on the logger would keep writing to this test's captured
    # stderr after pytest closed it.
    logger = logging.getLogger("veerunbook")
    before = (list(logger.handlers), logger.level, logger.propagate)
    assert main(["list"]) == 0
    after_success = (list(logger.handlers), logger.level, logger.propagate)
    assert main(["-v", "verify", "INC-does-not-exist"]) == 2
    after_error = (list(logger.handlers), logger.level, logger.propagate)
    assert after_success == before
    assert after_error == before


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("window_seconds", "0"),
        ("window_seconds", "-5"),
        ("window_seconds", "3601"),
        ("log_window_minutes", "0"),
        ("change_lookback_hours", "200"),
    ],
)
def test_out_of_range_parameter_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    archive = tmp_path / "archive"
    code = main(["run", "triage", "--archive", str(archive), "-p", name, value])
    err = capsys.readouterr().err
    assert code == 2
    assert f"parameter {name!r}" in err
    assert "outside its range" in err
    assert not archive.exists()


def test_unusable_archive_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain_file = tmp_path / "not-a-folder"
    plain_file.write_text("")
    code = main(["run", "triage", "--archive", str(plain_file / "archive")])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot be used" in err
    assert err.count("\n") == 1


# A fixture procedure whose guarded action writes "changed" into its state_file.
FIXTURE_NOTEBOOKS = Path(__file__).parent / "notebooks"
UNUSED_TARGET = "http://127.0.0.1:9"


def test_dry_run_summary_confirm_command_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VEERUNBOOK_NOTEBOOKS", str(FIXTURE_NOTEBOOKS))
    state = tmp_path / "state"
    state.write_text("original")
    archive = tmp_path / "archive"
    dry_code = main([
        "run", "writes_when_confirmed", "--target", UNUSED_TARGET, "--incident",
        "INC-WRITER", "-p", "state_file", str(state), "--archive", str(archive),
    ])  # fmt: skip
    dry = capsys.readouterr().out
    assert dry_code == 0
    assert summary_value(dry, "actions") == "dry-run write-state"
    command = summary_value(dry, "confirm")
    assert command == (
        f"veerunbook run writes_when_confirmed --target {UNUSED_TARGET} "
        f"--archive {archive} --incident INC-WRITER -p confirm INC-WRITER "
        f"-p state_file {state}"
    )
    assert state.read_text() == "original"

    # The printed command, copied as it is, carries the action out.
    words = shlex.split(command)
    assert words[:2] == ["veerunbook", "run"]
    exit_code = main(words[1:])
    confirmed = capsys.readouterr().out
    assert exit_code == 0
    assert state.read_text() == "changed"
    assert summary_value(confirmed, "actions") == "executed write-state (verified)"
    assert "confirm:" not in confirmed
    assert "(existing incident)" in confirmed
