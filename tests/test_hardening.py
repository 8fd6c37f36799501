"""Damage and hostile input that a run must survive, found by trying to break it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from veerunbook.journal import HEAD_FILE, JOURNAL_FILE, Journal
from veerunbook.record import start_run
from veerunbook.redact import Redactor
from veerunbook.runner import OWNER_FILE, PRIVATE_PREFIX, remove_orphaned_private_dirs
from veerunbook.verify import verify

NOTEBOOKS = Path(__file__).parent / "notebooks"


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def journal_with_lines(folder: Path, count: int) -> None:
    folder.mkdir()
    journal = Journal(folder)
    for index in range(count):
        journal.append("note", text=f"line {index}")


def test_verify_rejects_truncation_without_head(tmp_path: Path) -> None:
    folder = tmp_path / "INC-1"
    journal_with_lines(folder, 3)
    lines = (folder / JOURNAL_FILE).read_bytes().splitlines(keepends=True)
    (folder / JOURNAL_FILE).write_bytes(lines[0])
    (folder / HEAD_FILE).unlink()
    result = verify(folder)
    assert not result.ok
    assert result.path == HEAD_FILE


def test_verify_rejects_emptied_journal(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("VEERUNBOOK_ARCHIVE", str(tmp_path))
    run = start_run("probe", incident="INC-EMPTY", redactor=Redactor())
    run.finish()
    folder = tmp_path / "INC-EMPTY"
    (folder / JOURNAL_FILE).write_bytes(b"")
    (folder / HEAD_FILE).unlink()
    result = verify(folder)
    assert not result.ok
    assert "incident.opened" in (result.problem or "")


def test_huge_evidence_journaled_as_excerpt(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("VEERUNBOOK_ARCHIVE", str(tmp_path))
    secret = "Sx7-secret-value-42"
    run = start_run("probe", incident="INC-BIG", redactor=Redactor([secret]))
    evidence = {"body": "y" * 3_000_000 + secret}
    deep: list[object] = []
    cursor = deep
    for _ in range(900):
        cursor.append([])
        cursor = cursor[0]  # type: ignore[assignment]
    big = run.check("huge body", "fail", evidence=evidence)
    nested = run.check("deep body", "fail", evidence=deep)
    run.finish()
    text = (tmp_path / "INC-BIG" / JOURNAL_FILE).read_text()
    assert big.evidence["omitted_bytes"] > 3_000_000
    assert "omitted" in nested.evidence
    assert secret not in text
    assert verify(tmp_path / "INC-BIG").ok


def test_orphaned_private_dir_removed() -> None:
    orphan = Path(tempfile.mkdtemp(prefix=PRIVATE_PREFIX))
    (orphan / OWNER_FILE).write_text(str(dead_pid()))
    (orphan / "output.ipynb").write_text("unmasked")
    alive = Path(tempfile.mkdtemp(prefix=PRIVATE_PREFIX))
    (alive / OWNER_FILE).write_text(str(os.getppid()))
    try:
        removed = remove_orphaned_private_dirs()
        assert orphan in removed
        assert not orphan.exists()
        assert alive.exists()
    finally:
        for folder in (orphan, alive):
            if folder.exists():
                for child in folder.iterdir():
                    child.unlink()
                folder.rmdir()


def test_damaged_journal_line_keeps_run(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "VEERUNBOOK_ARCHIVE": str(tmp_path),
        "VEERUNBOOK_NOTEBOOKS": str(NOTEBOOKS),
    }
    command = [sys.executable, "-m", "veerunbook.cli", "run", "ok"]
    command += ["--incident", "INC-DAMAGED", "--target", "http://127.0.0.1:9"]
    first = subprocess.run(command, env=env, capture_output=True, text=True)
    journal = tmp_path / "INC-DAMAGED" / JOURNAL_FILE
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1][5:]
    journal.write_bytes(b"".join(lines))
    second = subprocess.run(command, env=env, capture_output=True, text=True)
    events = []
    for line in journal.read_bytes().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    finished = [event for event in events if event["event"] == "run.finished"]
    assert first.returncode == 0
    assert second.returncode == 0, second.stderr[-1500:]
    assert len(finished) == 2
    assert not verify(tmp_path / "INC-DAMAGED").ok
