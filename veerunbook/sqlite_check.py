"""Direct checks of a SQLite database file: open, integrity, journal mode, write lock.

``check_sqlite`` first inspects the path with ``stat`` alone
(``veerunbook.sqlite_files``): anything but a regular file, such as a directory, a
FIFO or a device, is reported and never opened. A child process
(``veerunbook.sqlite_peek``) then reads the header and looks for a write lock. The
file is opened in a read-only mode that creates and changes no file beside it, and
the check times the first read, runs ``PRAGMA quick_check`` (or
``integrity_check``) under a time limit and reads the journal mode. It never
raises for the file's content or state: every failure is a field of the returned
``SqliteReport``.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from veerunbook.sqlite_files import (
    OpenPlan,
    SqliteFile,
    changes_since,
    connect_read_only,
    inspect_sqlite_file,
    plan_read_only,
)
from veerunbook.sqlite_peek import Peek, peek_database

LockState = Literal["free", "held", "unknown"]

# At most this many problems are listed by the integrity check.
MAX_INTEGRITY_ERRORS = 20
# The progress handler runs every this many virtual machine instructions.
_PROGRESS_STEPS = 10_000
# The write lock's holder is looked for this many times, this many seconds apart.
LOCK_ATTEMPTS = 3
LOCK_RETRY_SECONDS = 0.1


@dataclass
class SqliteReport:
    """Findings of a direct look at a SQLite file; sizes in bytes, times in seconds.

    ``opened`` is False when the path or a file beside it made opening unsafe, or
    when the header could not be read. ``error`` then gives the reason, and the later
    checks are skipped with that reason. ``open_mode`` is the URI query used, and
    ``notes`` lists a symlink that was followed and any change seen beside the
    file while it was read.
    """

    path: str
    ok: bool = False
    seconds: float | None = None
    sqlite_version: str = sqlite3.sqlite_version
    error: str | None = None
    resolved_path: str | None = None
    opened: bool = False
    open_mode: str | None = None
    journal_mode: str | None = None
    integrity_check: str = "quick_check"
    integrity: list[str] = field(default_factory=list)
    integrity_ok: bool | None = None
    integrity_seconds: float | None = None
    lock: LockState = "unknown"
    lock_detail: str = ""
    file_bytes: int | None = None
    wal_bytes: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON values."""
        return asdict(self)


def check_sqlite(
    path: Path,
    *,
    timeout_s: float = 5.0,
    full: bool = False,
    max_errors: int = MAX_INTEGRITY_ERRORS,
) -> SqliteReport:
    """Open ``path`` read-only and check its integrity, journal mode and write lock.

    ``timeout_s`` bounds the busy wait when opening and, separately, the integrity
    check. ``full`` runs ``integrity_check`` (which also compares every index with
    its table) instead of ``quick_check``.
    """
    report = SqliteReport(str(path))
    report.integrity_check = "integrity_check" if full else "quick_check"
    file = inspect_sqlite_file(path)
    report.resolved_path = str(file.resolved)
    if file.symlink:
        report.notes.append(f"{file.path} is a symlink to {file.resolved}")
    if file.problem or file.state is None:
        report.error = file.problem
        return report
    report.file_bytes = file.state.size
    wal = file.sidecars.get("-wal")
    report.wal_bytes = wal.size if wal else None

    # The header decides the open mode; the lock is looked for at the same time.
    waited = LOCK_ATTEMPTS * LOCK_RETRY_SECONDS
    peek = peek_database(
        file.resolved,
        attempts=LOCK_ATTEMPTS,
        interval_s=LOCK_RETRY_SECONDS,
        timeout_s=timeout_s + waited,
    )
    if peek.error:
        report.error = peek.error
        return report
    try:
        plan = plan_read_only(file, peek.header)
    except OSError as exc:
        report.error = str(exc)
        return report
    report.open_mode = plan.query
    report.opened = True

    read = _read(report, file, plan, timeout_s, max_errors)
    report.notes.extend(changes_since(file, plan))
    if read:
        report.lock, report.lock_detail = _lock_state(file, report.journal_mode, peek)
    return report


def _read(
    report: SqliteReport,
    file: SqliteFile,
    plan: OpenPlan,
    timeout_s: float,
    max_errors: int,
) -> bool:
    """Time the first read, then check integrity; return False when reading failed."""
    started = time.monotonic()
    try:
        with connect_read_only(file, plan, timeout_s) as connection:
            # Opening is lazy: the first read parses the header and the schema.
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            report.seconds = round(time.monotonic() - started, 4)
            report.ok = True
            (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
            # immutable=1 reads a WAL database as if it had no journal.
            report.journal_mode = "wal" if plan.immutable else str(mode).lower()
            _check_integrity(connection, report, timeout_s, max_errors)
    except sqlite3.Error as exc:
        report.error = _describe(exc)
        if _is_corruption(exc):
            report.integrity = [report.error]
            report.integrity_ok = False
        return False
    return True


def _check_integrity(
    connection: sqlite3.Connection,
    report: SqliteReport,
    timeout_s: float,
    max_errors: int,
) -> None:
    """Run the integrity pragma; stop it when ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    # A non-zero return from the handler interrupts the statement.
    connection.set_progress_handler(
        lambda: int(time.monotonic() > deadline), _PROGRESS_STEPS
    )
    started = time.monotonic()
    try:
        rows = connection.execute(
            f"PRAGMA {report.integrity_check}({int(max_errors)})"
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        if time.monotonic() <= deadline and not _is_corruption(exc):
            raise
        if _is_corruption(exc):
            report.integrity = [_describe(exc)]
            report.integrity_ok = False
        else:
            report.integrity = [f"stopped after {timeout_s:g} s: {exc}"]
        return
    finally:
        connection.set_progress_handler(None, 0)
        report.integrity_seconds = round(time.monotonic() - started, 4)
    # A limited check returns its problems as one row of newline-separated lines.
    lines = [line for (row,) in rows for line in str(row).splitlines()]
    report.integrity = lines[:max_errors]
    report.integrity_ok = lines == ["ok"]


def probe_write_lock(
    path: Path, journal_mode: str | None, *, timeout_s: float = 5.0
) -> tuple[LockState, str]:
    """Find out whether another connection holds the write lock of ``path``.

    A child process queries the kernel with ``fcntl(F_GETLK)`` for a write lock on
    SQLite's lock bytes, so this opens no connection, takes no lock and writes
    nothing, not even into the ``-shm`` file. A ``-journal`` or ``-wal`` file alone
    proves nothing, because it exists whenever a write happened recently or the
    database is in WAL mode. The child is killed after ``timeout_s`` seconds plus
    the time between attempts.
    """
    file = inspect_sqlite_file(path)
    if file.problem:
        return "unknown", file.problem
    peek = peek_database(
        file.resolved,
        attempts=LOCK_ATTEMPTS,
        interval_s=LOCK_RETRY_SECONDS,
        timeout_s=timeout_s + LOCK_ATTEMPTS * LOCK_RETRY_SECONDS,
    )
    return _lock_state(file, journal_mode, peek)


def _lock_state(
    file: SqliteFile, journal_mode: str | None, peek: Peek
) -> tuple[LockState, str]:
    error = peek.error or peek.lock_error
    if error:
        return "unknown", error
    # A busy service takes the lock for each short write, so one look proves
    # little: the lock counts as held only when every attempt finds it taken.
    if peek.holder is not None:
        waited = (peek.attempts - 1) * LOCK_RETRY_SECONDS
        return "held", (
            f"another connection held the write lock in {peek.attempts} attempts "
            f"over {waited:g} s; in the last, {peek.holder.describe()}"
        )
    journal = file.sidecars.get("-journal")
    if journal_mode != "wal" and journal is not None and journal.size > 0:
        return "unknown", (
            "a rollback journal exists and no connection holds the write lock: a "
            "crash left it (a hot journal), and the next connection that writes "
            "will roll it back"
        )
    return "free", (
        "no connection holds the write lock: fcntl(F_GETLK) found no write lock on "
        "SQLite's lock bytes"
    )


def _is_corruption(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", None) or ""
    return name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB"


def _describe(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None)
    return f"{exc} ({name})" if name else str(exc)
