"""Direct checks of a SQLite database file: open, integrity, journal mode, write lock.

``check_sqlite`` opens the file read-only (``mode=ro``, which never creates it), times
the first read, runs ``PRAGMA quick_check`` (or ``integrity_check``) under a time
limit, reads the journal mode and checks whether a writer has the write lock. It
never raises for the file's content or state: every failure is a field of the
returned ``SqliteReport``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

LockState = Literal["free", "held", "unknown"]

# At most this many problems are listed by the integrity check.
MAX_INTEGRITY_ERRORS = 20
# The progress handler runs every this many virtual machine instructions.
_PROGRESS_STEPS = 10_000
# Attempts to take the write lock, this many seconds apart.
LOCK_ATTEMPTS = 3
LOCK_RETRY_SECONDS = 0.1


@dataclass
class SqliteReport:
    """Findings of a direct look at a SQLite file; sizes in bytes, times in seconds."""

    path: str
    ok: bool = False
    seconds: float | None = None
    sqlite_version: str = sqlite3.sqlite_version
    error: str | None = None
    journal_mode: str | None = None
    integrity_check: str = "quick_check"
    integrity: list[str] = field(default_factory=list)
    integrity_ok: bool | None = None
    integrity_seconds: float | None = None
    lock: LockState = "unknown"
    lock_detail: str = ""
    file_bytes: int | None = None
    wal_bytes: int | None = None

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
    if not path.is_file():
        report.error = f"file not found: {path}"
        return report
    report.file_bytes = _size(path)
    report.wal_bytes = _size(path.with_name(path.name + "-wal"))

    started = time.monotonic()
    try:
        with _read_only(path, timeout_s) as connection:
            # Opening is lazy: the first read parses the header and the schema.
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            report.seconds = round(time.monotonic() - started, 4)
            report.ok = True
            (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
            report.journal_mode = str(mode).lower()
            _check_integrity(connection, report, timeout_s, max_errors)
    except sqlite3.Error as exc:
        report.error = _describe(exc)
        if _is_corruption(exc):
            report.integrity = [report.error]
            report.integrity_ok = False
        return report
    report.lock, report.lock_detail = probe_write_lock(path, report.journal_mode)
    return report


@contextlib.contextmanager
def _read_only(path: Path, timeout_s: float) -> Iterator[sqlite3.Connection]:
    uri = f"{path.resolve().as_uri()}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=timeout_s)
    try:
        yield connection
    finally:
        connection.close()


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


def probe_write_lock(path: Path, journal_mode: str | None) -> tuple[LockState, str]:
    """Find out whether another connection holds the write lock of ``path``.

    A separate read-write connection with busy timeout 0 runs ``BEGIN IMMEDIATE``
    and, if that succeeds, ``ROLLBACK`` at once. This changes no data: ``BEGIN
    IMMEDIATE`` only takes the write lock (RESERVED in rollback-journal mode, the WAL
    write lock in WAL mode) and writes no page, and rolling back a transaction
    without writes writes nothing. When this is the last connection to a WAL
    database, closing it checkpoints the WAL into the main file, which moves
    committed pages and changes no row. A ``-journal`` or ``-wal`` file alone proves
    nothing, because it exists whenever a write happened recently or the database
    is in WAL mode.
    """
    journal = path.with_name(path.name + "-journal")
    if journal_mode != "wal" and journal.is_file() and journal.stat().st_size > 0:
        # With no writer holding the lock, that journal is hot, and the next
        # connection that can write rolls it back: ours must not be the one.
        return "unknown", (
            "a rollback journal exists: a writer is mid-transaction or a crash left "
            "it; not probed, because opening the file for writing would roll it back"
        )
    uri = f"{path.resolve().as_uri()}?mode=rw"
    # A busy service takes the lock for each short write, so one SQLITE_BUSY proves
    # little: the lock counts as held only when every attempt finds it taken.
    for attempt in range(LOCK_ATTEMPTS):
        if attempt:
            time.sleep(LOCK_RETRY_SECONDS)
        state, detail = _try_write_lock(uri)
        if state != "held":
            return state, detail
    waited = (LOCK_ATTEMPTS - 1) * LOCK_RETRY_SECONDS
    return "held", (
        f"another connection held the write lock in {LOCK_ATTEMPTS} attempts over "
        f"{waited:g} s: BEGIN IMMEDIATE failed at once with SQLITE_BUSY each time"
    )


def _try_write_lock(uri: str) -> tuple[LockState, str]:
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None)
    except sqlite3.Error as exc:
        return "unknown", f"cannot open the file for writing: {_describe(exc)}"
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorname.startswith("SQLITE_BUSY"):
            return "held", "BEGIN IMMEDIATE failed at once with SQLITE_BUSY"
        return "unknown", f"BEGIN IMMEDIATE failed: {_describe(exc)}"
    finally:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        connection.close()
    return (
        "free",
        "no writer holds the lock: BEGIN IMMEDIATE succeeded and was rolled back",
    )


def _size(path: Path) -> int | None:
    """Return the size of ``path`` in bytes, or None when it cannot be read."""
    try:
        return path.stat().st_size
    except OSError:
        return None


def _is_corruption(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", None) or ""
    return name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB"


def _describe(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None)
    return f"{exc} ({name})" if name else str(exc)
