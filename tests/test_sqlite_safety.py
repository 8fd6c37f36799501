"""Tests that the SQLite checks never block on a path and never change its folder.

Paths that are no regular file (FIFO, directory, socket, device, dangling symlink)
are reported and never opened. The cases cover rollback-journal and WAL databases
with no writer, an idle writer, a writer holding the write lock and a writer killed
in the middle of a transaction. In each, the folder's listing (names, sizes,
modification times) is the same before and after every SQLite step. Writers run in
child processes, as an application would.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from veerunbook.db_migrations import sqlite_migrations
from veerunbook.dbconn import DatabaseConnection
from veerunbook.journal import Journal
from veerunbook.session import Session, begin
from veerunbook.sqlite_check import check_sqlite, probe_write_lock
from veerunbook.sqlite_files import OpenPlan, changes_since, inspect_sqlite_file

# A writer as an application runs it: two committed migrations, then optionally an
# open transaction that holds the write lock. wal_autocheckpoint=0 keeps the
# committed frames in the -wal file, so reading them needs the -shm file.
WRITER = """
import sqlite3, sys
path, state = sys.argv[1], sys.argv[2]
connection = sqlite3.connect(path, isolation_level=None)
connection.execute("PRAGMA wal_autocheckpoint=0")
for version in ("20250102", "20250103"):
    connection.execute("INSERT INTO schema_migrations VALUES (?)", (version,))
if state != "idle":
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("INSERT INTO schema_migrations VALUES ('20250104')")
print("ready", flush=True)
sys.stdin.readline()
"""
WRITERS = ("none", "idle", "holding", "killed")
JOURNAL_MODES = ("delete", "wal")

Listing = dict[str, tuple[int, int]]


def _build(folder: Path, journal_mode: str) -> Path:
    path = folder / "app.db"
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA journal_mode={journal_mode}")
    connection.execute("CREATE TABLE schema_migrations (version TEXT PRIMARY KEY)")
    connection.execute("INSERT INTO schema_migrations VALUES ('20250101')")
    connection.commit()
    connection.close()
    return path


def _listing(folder: Path) -> Listing:
    listing = {}
    for entry in sorted(folder.iterdir()):
        result = entry.lstat()
        listing[entry.name] = (result.st_size, result.st_mtime_ns)
    return listing


@contextmanager
def _writer(path: Path, state: str) -> Iterator[None]:
    """Run a writer in a child process while the block runs ("none": no writer)."""
    if state == "none":
        yield
        return
    mode = "idle" if state == "idle" else "holding"
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        assert process.stdout.readline().strip() == "ready"
        if state == "killed":
            process.kill()
            process.wait()
        yield
    finally:
        if process.poll() is None:
            process.stdin.write("\n")
            process.stdin.flush()
            process.wait()
        process.stdin.close()
        process.stdout.close()


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """Yield a FIFO; fail the test, instead of hanging, if a reader opens it."""
    path = tmp_path / "app.db"
    os.mkfifo(path)
    finished = threading.Event()
    released: list[int] = []

    def release() -> None:
        # A reader blocked in open() returns once a writer opens the FIFO.
        if finished.wait(30):
            return
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return
        released.append(descriptor)
        os.close(descriptor)

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    yield path
    finished.set()
    thread.join()
    assert released == [], "a reader opened the FIFO and blocked"


def test_fifo_is_not_opened(fifo: Path) -> None:
    report = check_sqlite(fifo, timeout_s=1.0)
    assert not report.ok
    assert not report.opened
    assert report.error == f"not a regular file: {fifo} is a FIFO (named pipe)"
    assert report.integrity_ok is None
    assert report.lock == "unknown"


def test_fifo_migrations_raise(fifo: Path) -> None:
    with pytest.raises(OSError) as caught:
        sqlite_migrations(fifo, timeout_s=1.0)
    assert str(caught.value) == f"not a regular file: {fifo} is a FIFO (named pipe)"


def test_fifo_lock_is_unknown(fifo: Path) -> None:
    state, detail = probe_write_lock(fifo, None)
    assert state == "unknown"
    assert detail == f"not a regular file: {fifo} is a FIFO (named pipe)"


def test_directory_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    path.mkdir()
    report = check_sqlite(path)
    assert report.error == f"not a regular file: {path} is a directory"
    assert not report.opened
    assert list(path.iterdir()) == []


def test_socket_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        report = check_sqlite(path)
    assert report.error == f"not a regular file: {path} is a socket"


def test_symlink_to_device_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    path.symlink_to("/dev/null")
    report = check_sqlite(path)
    assert report.error == (
        f"not a regular file: {path} is a symlink to /dev/null, which is a "
        "character device"
    )
    assert report.resolved_path == "/dev/null"


def test_dangling_symlink_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    path.symlink_to(tmp_path / "gone.db")
    report = check_sqlite(path)
    assert report.error == (
        f"file not found: {path} is a symlink to {tmp_path / 'gone.db'}, which "
        "does not exist"
    )


def test_missing_file_is_reported(tmp_path: Path) -> None:
    file = inspect_sqlite_file(tmp_path / "absent.db")
    assert file.kind == "missing"
    assert file.problem == f"file not found: {tmp_path / 'absent.db'}"


def test_symlink_to_database_is_followed(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    target = _build(tmp_path / "data", "wal")
    link = tmp_path / "app.db"
    link.symlink_to(target)
    report = check_sqlite(link)
    assert report.ok
    assert report.resolved_path == str(target)
    assert report.notes == [f"{link} is a symlink to {target}"]
    assert list(_listing(tmp_path / "data")) == ["app.db"]


def test_fifo_journal_is_not_opened(tmp_path: Path) -> None:
    path = _build(tmp_path, "delete")
    journal = tmp_path / "app.db-journal"
    os.mkfifo(journal)
    report = check_sqlite(path, timeout_s=1.0)
    assert not report.opened
    assert report.error == (
        f"not opened: {journal} is a FIFO (named pipe), not a regular file"
    )


def test_symlinked_wal_is_not_opened(tmp_path: Path) -> None:
    path = _build(tmp_path, "wal")
    (tmp_path / "app.db-wal").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError) as caught:
        sqlite_migrations(path)
    assert str(caught.value) == (
        f"not opened: {tmp_path / 'app.db-wal'} is a symlink, not a regular file"
    )


def test_wal_without_shm_is_not_opened(tmp_path: Path) -> None:
    path = _build(tmp_path, "wal")
    with _writer(path, "killed"):
        (tmp_path / "app.db-shm").unlink()
        before = _listing(tmp_path)
        report = check_sqlite(path)
        after = _listing(tmp_path)
    assert not report.opened
    assert report.error == (
        f"not opened: {tmp_path / 'app.db-wal'} exists without "
        f"{tmp_path / 'app.db-shm'}, and SQLite would create "
        f"{tmp_path / 'app.db-shm'} to read it"
    )
    assert after == before


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("journal_mode", JOURNAL_MODES)
def test_folder_is_unchanged(tmp_path: Path, journal_mode: str, writer: str) -> None:
    path = _build(tmp_path, journal_mode)
    with _writer(path, writer):
        before = _listing(tmp_path)
        report = check_sqlite(path)
        after_check = _listing(tmp_path)
        sqlite_migrations(path)
        after_migrations = _listing(tmp_path)
        probe_write_lock(path, report.journal_mode)
        after_lock = _listing(tmp_path)
    assert report.ok
    assert report.notes == []
    assert after_check == before
    assert after_migrations == before
    assert after_lock == before


# The write lock each writer leaves: a killed rollback-journal writer leaves a hot
# journal, which this check reports and never rolls back.
EXPECTED_LOCKS = {
    ("delete", "none"): "free",
    ("delete", "idle"): "free",
    ("delete", "holding"): "held",
    ("delete", "killed"): "unknown",
    ("wal", "none"): "free",
    ("wal", "idle"): "free",
    ("wal", "holding"): "held",
    ("wal", "killed"): "free",
}


@pytest.mark.parametrize(("journal_mode", "writer"), list(EXPECTED_LOCKS))
def test_write_lock_state(tmp_path: Path, journal_mode: str, writer: str) -> None:
    path = _build(tmp_path, journal_mode)
    with _writer(path, writer):
        report = check_sqlite(path)
    assert report.lock == EXPECTED_LOCKS[journal_mode, writer]


def test_held_lock_names_the_writer(tmp_path: Path) -> None:
    path = _build(tmp_path, "wal")
    with _writer(path, "holding"):
        report = check_sqlite(path)
    assert report.lock_detail.startswith(
        "another connection held the write lock in 3 attempts over 0.2 s; in the "
        "last, process "
    )
    assert report.lock_detail.endswith(
        "holds a write lock on the WAL write-lock byte of app.db-shm"
    )


def test_held_rollback_lock_names_the_byte(tmp_path: Path) -> None:
    path = _build(tmp_path, "delete")
    with _writer(path, "holding"):
        state, detail = probe_write_lock(path, "delete")
    assert state == "held"
    assert detail.endswith("holds a write lock on the RESERVED byte of app.db")


# The open mode for each case, and the migrations each reader finds: committed rows
# in the -wal file count, the holding writer's open transaction does not.
OPEN_MODES = {
    ("delete", "none"): ("mode=ro", 1),
    ("delete", "idle"): ("mode=ro", 3),
    ("wal", "none"): ("mode=ro&immutable=1", 1),
    ("wal", "idle"): ("mode=ro&readonly_shm=1", 3),
    ("wal", "holding"): ("mode=ro&readonly_shm=1", 3),
    ("wal", "killed"): ("mode=ro&readonly_shm=1", 3),
}


@pytest.mark.parametrize(("journal_mode", "writer"), list(OPEN_MODES))
def test_open_mode_reads_committed_rows(
    tmp_path: Path, journal_mode: str, writer: str
) -> None:
    path = _build(tmp_path, journal_mode)
    with _writer(path, writer):
        report = check_sqlite(path)
        (found,) = sqlite_migrations(path)
    mode, applied = OPEN_MODES[journal_mode, writer]
    assert report.open_mode == mode
    assert report.journal_mode == journal_mode
    assert found.applied == applied


def test_new_wal_file_is_noted(tmp_path: Path) -> None:
    path = _build(tmp_path, "wal")
    file = inspect_sqlite_file(path)
    with _writer(path, "idle"):
        changes = changes_since(file, OpenPlan("mode=ro&immutable=1"))
    assert changes == [
        "app.db-wal appeared: another connection opened it",
        "app.db-shm appeared: another connection opened it",
    ]


def test_changed_main_file_is_noted(tmp_path: Path) -> None:
    path = _build(tmp_path, "delete")
    file = inspect_sqlite_file(path)
    with _writer(path, "idle"):
        changes = changes_since(file, OpenPlan("mode=ro&immutable=1"))
    assert changes == [
        "app.db changed while it was read without locks, so the findings may mix "
        "its old and new content"
    ]


@pytest.fixture
def steps_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[Path], DatabaseConnection]]:
    """Build the procedure's steps with DATABASE_URL pointing at a SQLite path.

    The target's base URL is never contacted: only the database steps run.
    """
    opened: list[Session] = []

    def build(path: Path) -> DatabaseConnection:
        config = tmp_path / "veerunbook.toml"
        config.write_text(
            '[targets.app]\nbase_url = "http://127.0.0.1:9"\n', encoding="utf-8"
        )
        monkeypatch.setenv("VEERUNBOOK_CONFIG", str(config))
        monkeypatch.delenv("VEERUNBOOK_RUN_ID", raising=False)
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
        session = begin(
            "database-connection", target="app", archive=str(tmp_path / "archive")
        )
        opened.append(session)
        return DatabaseConnection(session)

    yield build
    for session in opened:
        session.close()


def _checks(steps: DatabaseConnection) -> dict[str, dict[str, Any]]:
    events = Journal(steps.session.run.incident_dir).events()
    return {event["name"]: event for event in events if event["event"] == "check"}


def test_procedure_skips_after_fifo(
    fifo: Path, steps_for: Callable[[Path], DatabaseConnection]
) -> None:
    steps = steps_for(fifo)
    steps.check_database_url()
    steps.connect_directly(timeout_s=1.0)
    steps.migration_status(timeout_s=1.0)
    checks = _checks(steps)
    reason = f"not a regular file: {fifo} is a FIFO (named pipe)"
    skipped = f"not run, because the file was not opened: {reason}"
    assert checks["direct connection"]["status"] == "fail"
    assert checks["direct connection"]["summary"] == f"cannot read {fifo}: {reason}"
    assert checks["sqlite quick_check"]["status"] == "skip"
    assert checks["sqlite quick_check"]["summary"] == skipped
    assert checks["sqlite write lock"]["status"] == "skip"
    assert checks["sqlite write lock"]["summary"] == skipped
    assert checks["migrations"]["status"] == "skip"
    assert checks["migrations"]["summary"] == f"migration tables not read: {reason}"


def test_procedure_leaves_folder_unchanged(
    tmp_path: Path, steps_for: Callable[[Path], DatabaseConnection]
) -> None:
    (tmp_path / "data").mkdir()
    path = _build(tmp_path / "data", "wal")
    with _writer(path, "idle"):
        before = _listing(tmp_path / "data")
        steps = steps_for(path)
        steps.check_database_url()
        steps.connect_directly()
        steps.migration_status()
        after = _listing(tmp_path / "data")
    checks = _checks(steps)
    assert checks["direct connection"]["status"] == "pass"
    assert checks["sqlite quick_check"]["status"] == "pass"
    assert checks["sqlite write lock"]["status"] == "pass"
    assert checks["migrations (rails)"]["status"] == "pass"
    assert after == before
