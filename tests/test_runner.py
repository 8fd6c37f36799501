"""Tests of whole runs: real papermill kernels on the notebooks in ``notebooks/``.

Each run starts a kernel, so each test runs one short notebook.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from veerunbook.errors import ParameterError, UsageError
from veerunbook.journal import Journal, sha256_file
from veerunbook.params import read_parameters, resolve_parameters
from veerunbook.redact import Redactor
from veerunbook.runner import RunOutcome, run_procedure

NOTEBOOKS = Path(__file__).parent / "notebooks"
FAKE_DSN = (
    "postgresql+psycopg2://runbook:Xk9%23vQ2%21rb-2026@db.veefore.internal:5432/veefore"
)
FAKE_TOKEN = "vbtok_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
FAKE_PASSWORD = "Xk9#vQ2!rb-2026"
LEAKED_FORMS = [
    "Xk9#vQ2!rb-2026",
    "Xk9%23vQ2%21rb-2026",
    "vbtok_9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "c210cF9wYXNzd29yZDogIlhrOSN2UTIhcmItMjAyNiIK",
]


@pytest.fixture(autouse=True)
def fixture_notebooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VEERUNBOOK_NOTEBOOKS", str(NOTEBOOKS))


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return tmp_path / "archive"


def _run(name: str, archive: Path, **options: Any) -> RunOutcome:
    options.setdefault("params", {})
    options.setdefault("redactor", Redactor())
    return run_procedure(
        name, incident="INC-TEST", target="demo", archive=archive, **options
    )


def _notebook(outcome: RunOutcome) -> dict[str, Any]:
    nb = json.loads(outcome.notebook.read_text(encoding="utf-8"))
    assert isinstance(nb, dict)
    return nb


def _stdout(nb: dict[str, Any]) -> str:
    texts = []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                texts.append("".join(output["text"]))
    return "".join(texts)


def _events(archive: Path, event: str) -> list[dict[str, Any]]:
    journal = Journal(archive / "INC-TEST")
    return [record for record in journal.events() if record["event"] == event]


def _files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def test_run_ok(archive: Path) -> None:
    outcome = _run("ok", archive, params={"owner": "Zoë Ångström"})
    assert outcome.status == "ok"
    assert outcome.exit_code == 0
    assert outcome.counts["pass"] == 1
    assert outcome.notebook.parent == archive / "INC-TEST" / "runs"
    assert outcome.notebook.name.endswith("Z-ok.ipynb")


def test_run_journaled_with_hash(archive: Path) -> None:
    outcome = _run("ok", archive)
    started = _events(archive, "run.started")[0]
    finished = _events(archive, "run.finished")[0]
    assert started["run"] == outcome.run_id
    assert started["procedure"] == "ok"
    assert started["pid"] == os.getpid()
    assert finished["status"] == "ok"
    assert finished["notebook"] == f"runs/{outcome.notebook.name}"
    assert finished["notebook_sha256"] == sha256_file(outcome.notebook)


def test_kernel_checks_attach_to_run(archive: Path) -> None:
    outcome = _run("ok", archive)
    checks = _events(archive, "check")
    assert [check["run"] for check in checks] == [outcome.run_id]


def test_kernel_runs_this_interpreter(archive: Path) -> None:
    stdout = _stdout(_notebook(_run("ok", archive)))
    assert f"executable: {sys.executable}\n" in stdout


def test_kernel_without_debugger_or_history(archive: Path) -> None:
    stdout = _stdout(_notebook(_run("ok", archive)))
    assert "debugger loaded: False\n" in stdout
    assert "history enabled: False\n" in stdout


def test_connection_file_private_and_removed(archive: Path) -> None:
    stdout = _stdout(_notebook(_run("ok", archive)))
    runtime_dir = Path(stdout.split("runtime dir: ")[1].splitlines()[0])
    assert runtime_dir.name == "runtime"
    assert runtime_dir.parent.name.startswith("veerunbook-")
    assert "runtime files: ['kernel-" in stdout
    assert "runtime mode: 0o700" in stdout
    assert not runtime_dir.parent.exists()


def test_kernel_on_unix_sockets(archive: Path) -> None:
    stdout = _stdout(_notebook(_run("ok", archive)))
    files = stdout.split("runtime files: ")[1].splitlines()[0]
    for channel in range(1, 6):
        assert f"'sock-{channel}'" in files


def test_long_tmpdir_falls_back_to_tcp(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_tmp = tmp_path / ("t" * 60)
    long_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long_tmp))
    outcome = _run("ok", archive)
    files = _stdout(_notebook(outcome)).split("runtime files: ")[1].splitlines()[0]
    assert outcome.status == "ok"
    assert "sock-" not in files


def test_metadata_block_and_strict_json(archive: Path) -> None:
    outcome = _run("ok", archive)
    text = outcome.notebook.read_text(encoding="utf-8")
    nb = json.loads(text, parse_constant=_reject_constant)
    block = nb["metadata"]["veerunbook"]
    assert block["run_id"] == outcome.run_id
    assert block["status"] == "ok"
    assert block["incident"] == "INC-TEST"
    assert block["versions"]["papermill"] == "2.7.0"
    assert nb["metadata"]["papermill"]["parameters"]["incident"] == "INC-TEST"
    assert nb["metadata"]["papermill"]["output_path"] == str(outcome.notebook)


def _reject_constant(constant: str) -> Any:
    raise ValueError(f"not strict JSON: {constant}")


def test_run_findings(archive: Path) -> None:
    outcome = _run("findings", archive)
    assert outcome.status == "findings"
    assert outcome.exit_code == 1
    assert outcome.counts == {"pass": 1, "warn": 0, "fail": 1, "error": 0, "skip": 0}


def test_cell_error_fails_run(archive: Path) -> None:
    outcome = _run("cell_error", archive)
    assert outcome.status == "failed"
    assert outcome.exit_code == 3
    assert (
        outcome.reason == "cell raised ValueError: step 2: status page returned no JSON"
    )
    nb = _notebook(outcome)
    failing = nb["cells"][outcome.failing_cell or 0]
    assert failing["metadata"]["papermill"]["status"] == "failed"
    assert nb["cells"][-1]["metadata"]["papermill"]["status"] == "not executed"


def test_kernel_death_keeps_partial_notebook(archive: Path) -> None:
    outcome = _run("kernel_dies", archive)
    assert outcome.status == "failed"
    assert outcome.exit_code == 3
    assert outcome.reason == "kernel died"
    nb = _notebook(outcome)
    assert "step 1: probing http://192.0.2.10:5000" in _stdout(nb)
    assert nb["metadata"]["veerunbook"]["failing_cell"]["index"] == 4
    assert nb["cells"][4]["metadata"]["papermill"]["status"] == "failed"
    assert nb["cells"][5]["metadata"]["papermill"]["status"] == "not executed"
    assert _events(archive, "run.finished")[0]["reason"] == "kernel died"


def test_cell_timeout_keeps_partial_stdout(archive: Path) -> None:
    outcome = _run("hangs", archive, cell_timeout=1)
    assert outcome.status == "failed"
    assert outcome.exit_code == 3
    assert outcome.reason == "cell timed out after 1 s"
    assert outcome.failing_cell == 4
    stdout = _stdout(_notebook(outcome))
    assert "step 2: GET http://192.0.2.10:5000/readyz" in stdout
    assert "step 3" not in stdout


def test_run_timeout_fails_run(archive: Path) -> None:
    outcome = _run("hangs", archive, timeout=4)
    assert outcome.status == "failed"
    assert outcome.exit_code == 3
    assert outcome.reason == "run timed out after 4 s"
    assert "step 3" not in _stdout(_notebook(outcome))


def test_log_archived_beside_notebook(archive: Path) -> None:
    outcome = _run("kernel_dies", archive)
    log = outcome.notebook.with_suffix(".log").read_text(encoding="utf-8")
    assert "Kernel died while waiting for execute reply." in log
    assert "--- kernel stderr ---" in log
    files = list(_events(archive, "run.finished")[0]["files"])
    assert files[1].endswith(".log")


_RUNNER_SCRIPT = """
import json, sys
from pathlib import Path
from veerunbook.redact import Redactor
from veerunbook.runner import run_procedure

outcome = run_procedure(
    "hangs", incident="INC-TEST", target="demo", archive=Path(sys.argv[1]),
    params={"pid_file": sys.argv[2]}, redactor=Redactor(),
)
print(json.dumps({"status": outcome.status, "reason": outcome.reason}))
sys.exit(outcome.exit_code)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_aborts_and_cleans_up(
    archive: Path, tmp_path: Path, signum: signal.Signals
) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    pid_file = tmp_path / "kernel.pid"
    env = {**os.environ, "TMPDIR": str(private_tmp)}
    command = [sys.executable, "-c", _RUNNER_SCRIPT, str(archive), str(pid_file)]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE) as runner:
        kernel_pid = _wait_for_pid(pid_file, runner)
        runner.send_signal(signum)
        stdout, _ = runner.communicate(timeout=120)

    assert runner.returncode == 3
    assert json.loads(stdout) == {
        "status": "aborted",
        "reason": f"interrupted by {signum.name}",
    }
    assert not _running(kernel_pid)
    assert list(private_tmp.iterdir()) == []
    finished = _events(archive, "run.finished")[0]
    assert finished["status"] == "aborted"
    nb = json.loads((archive / "INC-TEST" / finished["notebook"]).read_text())
    assert "step 1: probing" in _stdout(nb)
    assert nb["cells"][4]["metadata"]["papermill"]["status"] == "interrupted"
    assert nb["cells"][5]["metadata"]["papermill"]["status"] == "not executed"


def _wait_for_pid(path: Path, runner: subprocess.Popen[bytes]) -> int:
    """Wait until the kernel has written its pid; fail if the runner exits first."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and runner.poll() is None:
        if path.is_file() and path.read_text():
            return int(path.read_text())
        time.sleep(0.05)
    pytest.fail(f"the kernel wrote no pid to {path}; runner exit code {runner.poll()}")


def _running(pid: int) -> bool:
    """Tell whether a process exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_bad_parameter_writes_nothing(archive: Path) -> None:
    with pytest.raises(ParameterError, match="'threshold_pct' from the caller"):
        _run("ok", archive, params={"threshold_pct": "7.5"})
    assert not archive.exists()


def test_secret_parameter_writes_nothing(archive: Path) -> None:
    with pytest.raises(ParameterError, match="'api_token' looks like a secret"):
        _run("ok", archive, params={"api_token": FAKE_TOKEN})
    assert not archive.exists()


def test_bad_incident_writes_nothing(archive: Path) -> None:
    with pytest.raises(UsageError, match="invalid incident id"):
        run_procedure(
            "ok",
            incident="../elsewhere",
            target="demo",
            params={},
            archive=archive,
            redactor=Redactor(),
        )
    assert not archive.exists()


@pytest.mark.parametrize(
    ("name", "expected"),
    [("two_parameter_cells", "2 cells tagged"), ("nope", "unknown procedure")],
)
def test_bad_procedure_writes_nothing(archive: Path, name: str, expected: str) -> None:
    with pytest.raises(UsageError, match=expected):
        _run(name, archive)
    assert not archive.exists()


def test_non_positive_timeout_rejected(archive: Path) -> None:
    with pytest.raises(ValueError, match="cell_timeout must be a positive number"):
        _run("ok", archive, cell_timeout=0)
    assert not archive.exists()


def test_new_incident_when_none(archive: Path) -> None:
    outcome = run_procedure(
        "ok",
        incident=None,
        target="demo",
        params={},
        archive=archive,
        redactor=Redactor(),
    )
    assert outcome.incident.startswith("INC-")
    assert (archive / outcome.incident / "incident.json").is_file()


def test_secrets_never_archived(
    archive: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DATABASE_URL", FAKE_DSN)
    monkeypatch.setenv("VEEFORE_ADMIN_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("SMTP_PASSWORD", FAKE_PASSWORD)
    names = ["DATABASE_URL", "VEEFORE_ADMIN_TOKEN", "SMTP_PASSWORD"]
    redactor = Redactor.from_environment(names)
    caplog.set_level("DEBUG")

    outcome = _run("prints_secret", archive, redactor=redactor, html=True)

    assert outcome.status == "failed"
    files = _files(archive)
    assert outcome.notebook.with_suffix(".html") in files
    page = outcome.notebook.with_suffix(".html").read_text(encoding="utf-8")
    # The archived copy must open offline: no script loaded from a CDN.
    assert "<script src=" not in page
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for secret in LEAKED_FORMS:
            assert secret not in text, f"{secret!r} in {path.name}"
    for secret in LEAKED_FORMS:
        assert secret not in caplog.text


def test_secret_output_masked_not_dropped(
    archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", FAKE_DSN)
    monkeypatch.setenv("VEEFORE_ADMIN_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("SMTP_PASSWORD", FAKE_PASSWORD)
    redactor = Redactor([FAKE_DSN, FAKE_TOKEN, FAKE_PASSWORD])
    stdout = _stdout(_notebook(_run("prints_secret", archive, redactor=redactor)))
    assert "GET http://192.0.2.10:5000/readyz {'Authorization': 'Bearer ***'" in stdout
    assert "DB check failed: invalid dsn" in stdout


def test_case_parameters_type_directed(archive: Path, tmp_path: Path) -> None:
    specs = read_parameters(json.loads((NOTEBOOKS / "param_types.ipynb").read_text()))
    overrides = tmp_path / "params.yaml"
    overrides.write_text(
        "error_rate_threshold_pct: 5\nservices: [api, worker]\n"
        "labels: {team: sre, severity: page}\n",
        encoding="utf-8",
    )
    cli = [
        ("service_version", "1.10"),
        ("incident_id", "0042"),
        ("allow_restart", "False"),
        ("error_rate_threshold_pct", "7.5"),
        ("notify_channel", "None"),
        ("region", "no"),
        ("ticket", "0042"),
        ("owner", "Zoë Ångström"),
    ]
    params = resolve_parameters(specs, cli, [overrides])

    outcome = _run("param_types", archive, params=params)

    nb = json.loads(
        outcome.notebook.read_text(encoding="utf-8"), parse_constant=_reject_constant
    )
    stdout = _stdout(nb)
    assert "service_version            str       '1.10'" in stdout
    assert "incident_id                str       '0042'" in stdout
    assert "error_rate_threshold_pct   float     7.5" in stdout
    assert "region                     str       'no'" in stdout
    assert "owner                      str       'Zoë Ångström'" in stdout
    assert "restart not allowed" in stdout
    assert "WOULD RESTART" not in stdout
    assert nb["metadata"]["papermill"]["parameters"]["owner"] == "Zoë Ångström"
    sources = _events(archive, "run.started")[0]["parameter_sources"]
    assert sources["error_rate_threshold_pct"] == {
        "source": "-p",
        "overrides": [f"-f {overrides}"],
    }
    assert nb["metadata"]["veerunbook"]["parameter_sources"] == sources


def test_tempdir_unchanged_after_run(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    _run("cell_error", archive)
    assert list(private_tmp.iterdir()) == []


# The notebook writes_when_confirmed writes its state file only when "confirm" is
# the incident id.
UNUSED_TARGET = "http://127.0.0.1:9"


def _run_writer(
    archive: Path, state_file: Path, incident: str | None, **params: str
) -> RunOutcome:
    state_file.write_text("original")
    return run_procedure(
        "writes_when_confirmed",
        incident=incident,
        target=UNUSED_TARGET,
        params={"state_file": str(state_file), **params},
        archive=archive,
        redactor=Redactor(),
    )


def test_confirm_mismatch_writes_nothing(archive: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with pytest.raises(ParameterError, match="'confirm' is 'INC-OTHER' but the"):
        _run_writer(archive, state, "INC-TEST", confirm="INC-OTHER")
    assert not archive.exists()
    assert state.read_text() == "original"


def test_confirm_without_incident_writes_nothing(archive: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with pytest.raises(ParameterError, match="given without --incident"):
        _run_writer(archive, state, None, confirm="INC-TEST")
    assert not archive.exists()
    assert state.read_text() == "original"


def test_writer_default_is_dry_run(archive: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    outcome = _run_writer(archive, state, "INC-TEST")
    stdout = _stdout(_notebook(outcome))
    assert outcome.status == "ok"
    assert state.read_text() == "original"
    assert [event["mode"] for event in _events(archive, "action")] == [
        "intent",
        "dry-run",
    ]
    assert "DRY-RUN: nothing will be changed; to carry out the actions run with " in (
        stdout
    )
    assert "-p confirm INC-TEST" in stdout


def test_writer_confirmed_executes(archive: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    outcome = _run_writer(archive, state, "INC-TEST", confirm="INC-TEST")
    assert outcome.status == "ok"
    assert state.read_text() == "changed"
    assert [event["mode"] for event in _events(archive, "action")] == [
        "intent",
        "executed",
    ]
    assert "mode: executed" in _stdout(_notebook(outcome))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["-p", "confirm", "INC-TEST"], "given without --incident"),
        (["--incident", "INC-TEST", "-p", "confirm", "INC-OTHER"], "but the incident"),
    ],
)
def test_cli_confirm_check_exits_2(
    archive: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    message: str,
) -> None:
    from veerunbook.cli import main

    state = tmp_path / "state"
    state.write_text("original")
    archive = tmp_path / "archive-root"
    arguments = ["run", "writes_when_confirmed", "--archive", str(archive), "--target"]
    arguments += [UNUSED_TARGET, "-p", "state_file", str(state), *options]
    exit_code = main(arguments)
    errors = capsys.readouterr().err.splitlines()
    assert exit_code == 2
    assert len(errors) == 1
    assert message in errors[0]
    assert not archive.exists()
    assert state.read_text() == "original"


def test_declared_status_sets_exit(archive: Path) -> None:
    outcome = _run("declares_ok", archive)
    assert outcome.status == "ok"
    assert outcome.exit_code == 0
    assert outcome.counts == {"pass": 1, "warn": 0, "fail": 1, "error": 0, "skip": 0}
    journal = archive / "INC-TEST" / "journal.jsonl"
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    notes = [event for event in events if event.get("end_status") == "ok"]
    assert len(notes) == 1
