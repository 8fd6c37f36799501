"""``veerunbook run`` with several procedures: one incident, forked runs, one report.

The runs are real: a subprocess runs ``veerunbook run A B ...`` against the embedded
target on a loopback port, with the minimum windows (window_seconds 1, samples 2).
Exit codes, signals and ordering use the small fixture notebooks of
``tests/notebooks``, which finish in about a second.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from veerunbook.simulator import start_target
from veerunbook.verify import verify

FIXTURE_NOTEBOOKS = Path(__file__).parent / "notebooks"
READ_ONLY = ["triage", "high-error-rate", "performance-degradation"]

# A cell that kills the runner process, the kernel's parent, as the OOM killer
# would, and then ends the kernel so that nothing is left running.
KILL_RUNNER_SOURCE = (
    "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos._exit(0)\n"
)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    target = start_target("healthy")
    try:
        yield target.base_url
    finally:
        target.stop()


def environment(archive: Path, notebooks: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "VEERUNBOOK_ARCHIVE": str(archive)}
    for name in ("VEEFORE_ADMIN_TOKEN", "DATABASE_URL", "VEERUNBOOK_CONFIG"):
        env.pop(name, None)
    if notebooks is not None:
        env["VEERUNBOOK_NOTEBOOKS"] = str(notebooks)
    return env


def run_cli(
    *args: str, archive: Path, notebooks: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "veerunbook.cli", *args],
        capture_output=True,
        text=True,
        env=environment(archive, notebooks),
        timeout=240,
    )


def only_incident(archive: Path) -> Path:
    folders = [path for path in archive.iterdir() if path.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


def journal_events(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "journal.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def events_of(events: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Return the events of one kind by procedure name."""
    return {e["procedure"]: e for e in events if e["event"] == kind}


@dataclass
class Group:
    done: subprocess.CompletedProcess[str]
    folder: Path
    events: list[dict[str, Any]]


@pytest.fixture(scope="module")
def group(base_url: str, tmp_path_factory: pytest.TempPathFactory) -> Group:
    archive = tmp_path_factory.mktemp("group")
    done = run_cli(
        "run", *READ_ONLY, "--target", base_url,
        "-p", "window_seconds", "1", "-p", "samples", "2",
        archive=archive,
    )  # fmt: skip
    folder = only_incident(archive)
    return Group(done, folder, journal_events(folder))


def notebooks_with(tmp_path: Path, **copies: str) -> Path:
    """Make a procedure folder: each name is a copy of a fixture notebook."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name, fixture in copies.items():
        shutil.copy(FIXTURE_NOTEBOOKS / f"{fixture}.ipynb", folder / f"{name}.ipynb")
    return folder


def test_group_exits_ok(group: Group) -> None:
    assert group.done.returncode == 0, group.done.stderr[-2000:]


def test_group_opens_one_incident(group: Group) -> None:
    opened = [e for e in group.events if e["event"] == "incident.opened"]
    assert len(opened) == 1


def test_group_finishes_every_run(group: Group) -> None:
    finished = events_of(group.events, "run.finished")
    assert sorted(finished) == sorted(READ_ONLY)
    assert {e["status"] for e in finished.values()} == {"ok"}


def test_group_runs_overlap(group: Group) -> None:
    # With the default --jobs every run starts before the first one finishes.
    kinds = [e["event"] for e in group.events if e["event"].startswith("run.")]
    assert kinds[:3] == ["run.started"] * 3


def test_group_verifies(group: Group) -> None:
    assert verify(group.folder).ok
    archive = group.folder.parent
    verified = run_cli("verify", group.folder.name, archive=archive)
    assert verified.returncode == 0, verified.stdout


def test_group_prints_block_per_run(group: Group) -> None:
    for procedure in READ_ONLY:
        assert f"({procedure}) ok in" in group.done.stdout


def test_group_prints_table(group: Group) -> None:
    lines = group.done.stdout.splitlines()
    header = [line for line in lines if line.startswith("procedure ")]
    assert len(header) == 1
    rows = lines[lines.index(header[0]) + 1 :]
    assert sorted(row.split()[0] for row in rows) == sorted(READ_ONLY)
    assert all(row.split()[1] == "ok" for row in rows)


def test_group_no_progress_without_tty(group: Group) -> None:
    assert "done:" not in group.done.stdout


def test_samples_only_to_declarers(group: Group) -> None:
    started = events_of(group.events, "run.started")
    assert "samples" not in started["triage"]["parameters"]
    assert started["high-error-rate"]["parameters"]["samples"] == 2
    assert started["performance-degradation"]["parameters"]["samples"] == 2


def test_window_to_every_procedure(group: Group) -> None:
    started = events_of(group.events, "run.started")
    windows = {name: e["parameters"]["window_seconds"] for name, e in started.items()}
    assert windows == dict.fromkeys(READ_ONLY, 1.0)


def test_parameter_sources_kept(group: Group) -> None:
    started = events_of(group.events, "run.started")
    sources = started["high-error-rate"]["parameter_sources"]
    assert sources["samples"] == {"source": "-p", "overrides": []}
    assert "samples" not in started["triage"]["parameter_sources"]


def test_undeclared_parameter_rejected(base_url: str, tmp_path: Path) -> None:
    done = run_cli(
        "run", "triage", "database-connection", "--target", base_url,
        "-p", "samples", "2",
        archive=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "'samples' is declared by none" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_file_value_checked_per_procedure(base_url: str, tmp_path: Path) -> None:
    parameters = tmp_path / "parameters.yaml"
    parameters.write_text("samples: 2\nwindow_seconds: 0.5\n")
    archive = tmp_path / "archive"
    done = run_cli(
        "run", "triage", "high-error-rate", "--target", base_url,
        "-f", str(parameters),
        archive=archive,
    )  # fmt: skip
    assert done.returncode == 2
    assert "procedure 'triage'" in done.stderr
    assert "outside its range [1..3600]" in done.stderr
    assert not archive.exists() or list(archive.iterdir()) == []


def test_file_parameter_to_declarer(base_url: str, tmp_path: Path) -> None:
    # Only the fixture "ok" declares owner, so "findings" runs without it.
    notebooks = notebooks_with(tmp_path, ok="ok", findings="findings")
    parameters = tmp_path / "parameters.yaml"
    parameters.write_text("owner: alice\n")
    archive = tmp_path / "archive"
    done = run_cli(
        "run", "ok", "findings", "--target", base_url, "-f", str(parameters),
        archive=archive, notebooks=notebooks,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    started = events_of(journal_events(only_incident(archive)), "run.started")
    assert started["ok"]["parameters"] == {"owner": "alice"}
    assert started["ok"]["parameter_sources"]["owner"]["source"] == f"-f {parameters}"
    assert started["findings"]["parameters"] == {}


def test_confirm_rejected(base_url: str, tmp_path: Path) -> None:
    done = run_cli(
        "run", "triage", "database-rollback", "--target", base_url,
        "--incident", "INC-CONFIRM", "-p", "confirm", "INC-CONFIRM",
        archive=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "confirmed actions run one procedure at a time" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_duplicate_procedure_rejected(base_url: str, tmp_path: Path) -> None:
    done = run_cli(
        "run", "triage", "high-error-rate", "triage", "--target", base_url,
        archive=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "procedure 'triage' is named more than once" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_unknown_procedure_suggests(base_url: str, tmp_path: Path) -> None:
    done = run_cli(
        "run", "triage", "high-eror-rate", "--target", base_url, archive=tmp_path
    )
    assert done.returncode == 2
    assert "Did you mean 'high-error-rate'?" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_jobs_zero_rejected(base_url: str, tmp_path: Path) -> None:
    done = run_cli(
        "run", "triage", "high-error-rate", "--jobs", "0", "--target", base_url,
        archive=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--jobs must be 1 or more" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_exit_code_is_worst(base_url: str, tmp_path: Path) -> None:
    notebooks = notebooks_with(tmp_path, ok="ok", findings="findings")
    archive = tmp_path / "archive"
    done = run_cli(
        "run", "ok", "findings", "--target", base_url,
        archive=archive, notebooks=notebooks,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    finished = events_of(journal_events(only_incident(archive)), "run.finished")
    assert finished["ok"]["status"] == "ok"
    assert finished["findings"]["status"] == "findings"


def test_failed_run_wins(base_url: str, tmp_path: Path) -> None:
    notebooks = notebooks_with(
        tmp_path, ok="ok", findings="findings", broken="cell_error"
    )
    archive = tmp_path / "archive"
    done = run_cli(
        "run", "ok", "findings", "broken", "--target", base_url,
        archive=archive, notebooks=notebooks,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr[-2000:]
    finished = events_of(journal_events(only_incident(archive)), "run.finished")
    assert finished["broken"]["status"] == "failed"


def test_jobs_one_runs_in_turn(base_url: str, tmp_path: Path) -> None:
    notebooks = notebooks_with(tmp_path, first="ok", second="findings")
    archive = tmp_path / "archive"
    done = run_cli(
        "run", "first", "second", "--jobs", "1", "--target", base_url,
        archive=archive, notebooks=notebooks,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    events = journal_events(only_incident(archive))
    started = events_of(events, "run.started")
    finished = events_of(events, "run.finished")
    assert finished["first"]["seq"] < started["second"]["seq"]
    assert finished["first"]["time"] <= started["second"]["time"]


def test_given_incident_shared(base_url: str, tmp_path: Path) -> None:
    notebooks = notebooks_with(tmp_path, first="ok", second="ok")
    archive = tmp_path / "archive"
    done = run_cli(
        "run", "first", "second", "--incident", "INC-GIVEN", "--target", base_url,
        archive=archive, notebooks=notebooks,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert only_incident(archive).name == "INC-GIVEN"
    assert done.stdout.count("incident:  INC-GIVEN (new incident)") == 2


def test_killed_runner_reported(base_url: str, tmp_path: Path) -> None:
    notebooks = notebooks_with(tmp_path, ok="ok")
    killer = json.loads((FIXTURE_NOTEBOOKS / "kernel_dies.ipynb").read_text())
    killer["cells"][2]["source"] = KILL_RUNNER_SOURCE
    (notebooks / "killer.ipynb").write_text(json.dumps(killer))
    archive = tmp_path / "archive"
    done = run_cli(
        "run", "ok", "killer", "--target", base_url,
        archive=archive, notebooks=notebooks,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr[-2000:]
    assert "was killed by SIGKILL before it reported" in done.stdout
    folder = only_incident(archive)
    events = journal_events(folder)
    started = events_of(events, "run.started")
    finished = events_of(events, "run.finished")
    assert sorted(started) == ["killer", "ok"]
    assert sorted(finished) == ["ok"]
    assert f"{started['killer']['run']} is recorded as started" in done.stdout
    assert verify(folder).ok


def wait_for_starts(archive: Path, count: int, process: subprocess.Popen[str]) -> Path:
    """Wait until ``count`` runs are journaled as started, and return the folder."""
    while process.poll() is None:
        folders = [path for path in archive.iterdir() if path.is_dir()]
        journal = folders[0] / "journal.jsonl" if folders else None
        if journal is not None and journal.is_file():
            kinds = [e["event"] for e in journal_events(folders[0])]
            if kinds.count("run.started") >= count:
                return folders[0]
        time.sleep(0.05)
    raise AssertionError(f"the group ended early: {process.communicate()}")


def test_sigterm_aborts_runs(base_url: str, tmp_path: Path) -> None:
    notebooks = notebooks_with(tmp_path, one="hangs", two="hangs", three="ok")
    archive = tmp_path / "archive"
    archive.mkdir()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "veerunbook.cli", "run", "one", "two", "three",
            "--jobs", "2", "--target", base_url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(archive, notebooks),
    )  # fmt: skip
    folder = wait_for_starts(archive, 2, process)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 3, stderr[-2000:]
    events = journal_events(folder)
    finished = events_of(events, "run.finished")
    assert finished["one"]["status"] == "aborted"
    assert finished["two"]["status"] == "aborted"
    assert (folder / finished["one"]["notebook"]).is_file()
    assert "three" not in events_of(events, "run.started")
    rows = [line.split() for line in stdout.splitlines()]
    assert ["three", "not", "started", "-", "-", "-"] in rows
    assert verify(folder).ok


def test_progress_on_terminal(base_url: str, tmp_path: Path) -> None:
    notebooks = notebooks_with(tmp_path, first="ok", second="findings")
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "veerunbook.cli", "run", "first", "second",
            "--target", base_url,
        ],
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env=environment(tmp_path / "archive", notebooks),
    )  # fmt: skip
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO once the terminal has no writer left
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(timeout=120) == 1
    text = output.decode()
    assert "0/2 done" in text
    assert "2/2 done: " in text
