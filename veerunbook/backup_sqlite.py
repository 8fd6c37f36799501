"""SQLite backups: an online copy with its manifest, its verification, the restore.

``backup_sqlite`` copies the live database with SQLite's online backup API
(``sqlite3.Connection.backup``), which copies a consistent snapshot while the
application keeps its own connections open. The copy is written to a temporary file
in the backup folder and renamed into place, so a failed backup leaves no file under
the backup's name. It is switched to the rollback journal, which makes it one
self-contained file.

``verify_sqlite_backup`` checks a backup against its manifest: a size above zero,
the size and SHA-256, ``PRAGMA integrity_check`` and every table's digest.
``restore_sqlite`` verifies the backup, then copies it over the live file with the
same API in one step, so readers see either the old or the restored database.

Rows are digested in rowid order, as the demo service's own backups do, so the two
kinds of manifest compare. A ``WITHOUT ROWID`` table is read in primary key order.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from veerunbook.backup_manifest import (
    BACKUP_SUFFIXES,
    Manifest,
    TableDigests,
    check_backup_name,
    compare_tables,
    digest_rows,
    file_digest,
    file_problems,
    utc_text,
    write_manifest,
)
from veerunbook.errors import BackupError, UsageError
from veerunbook.sqlite_files import open_read_only

ENGINE = "sqlite"
SUFFIX = BACKUP_SUFFIXES[ENGINE]


def table_names(connection: sqlite3.Connection) -> list[str]:
    """Return the names of the database's own tables, sorted."""
    rows = connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        " AND name NOT LIKE 'sqlite_%' ORDER BY name"
    )
    return [str(name) for (name,) in rows]


def sqlite_digests(connection: sqlite3.Connection) -> TableDigests:
    """Return the row count and row digest of every table of ``connection``."""
    digests = {}
    for table in table_names(connection):
        quoted = '"' + table.replace('"', '""') + '"'
        try:
            rows = connection.execute(f"SELECT * FROM {quoted} ORDER BY rowid")
        except sqlite3.OperationalError as exc:
            if "rowid" not in str(exc):
                raise
            # A WITHOUT ROWID table has no rowid and is scanned in key order.
            rows = connection.execute(f"SELECT * FROM {quoted}")
        digests[table] = digest_rows(rows)
    return digests


def integrity_problems(connection: sqlite3.Connection) -> list[str]:
    """Run ``PRAGMA integrity_check``; return its findings, empty when ``ok``."""
    rows = [str(row[0]) for row in connection.execute("PRAGMA integrity_check")]
    return [] if rows == ["ok"] else rows


def live_digests(database: Path, timeout_s: float) -> TableDigests:
    """Digest the tables of the live database, opened read-only."""
    with open_read_only(database, timeout_s) as connection:
        return sqlite_digests(connection)


def live_integrity(database: Path, timeout_s: float) -> list[str]:
    """Run ``PRAGMA integrity_check`` on the live database, opened read-only."""
    with open_read_only(database, timeout_s) as connection:
        return integrity_problems(connection)


def backup_sqlite(
    database: Path,
    folder: Path,
    name: str,
    *,
    timeout_s: float,
    data_valid: bool | None = None,
) -> Manifest:
    """Back ``database`` up as ``folder/NAME.sqlite3`` and write its manifest.

    The live database is read through a read-only connection (see
    ``veerunbook.sqlite_files.open_read_only``), so its files, ``-wal`` included,
    keep their bytes. ``timeout_s`` bounds each wait for a lock. Raises UsageError
    when the name is invalid or taken, and OSError or ``sqlite3.Error`` when the
    copy fails; then nothing is left under the backup's name.
    """
    target = folder / f"{check_backup_name(name)}{SUFFIX}"
    if target.exists() or (folder / f"{name}.json").exists():
        raise UsageError(f"backup {name!r} already exists in {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary_name = tempfile.mkstemp(
        dir=folder, prefix=f".{name}.", suffix=".tmp"
    )
    os.close(handle)
    temporary = Path(temporary_name)
    try:
        tables = _copy(database, temporary, timeout_s)
        size, digest = file_digest(temporary)
        os.replace(temporary, target)
        created = utc_text(datetime.now(UTC))
        manifest = Manifest(
            name, created, target.name, size, digest, tables, ENGINE, data_valid
        )
        try:
            write_manifest(folder, manifest)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
    finally:
        temporary.unlink(missing_ok=True)
    return manifest


def describe_file(
    path: Path, name: str, created_at: str, data_valid: bool | None = None
) -> Manifest:
    """Build the manifest of an existing backup file that came without one.

    Raises ``sqlite3.Error`` when the file is no readable SQLite database.
    """
    size, digest = file_digest(path)
    with contextlib.closing(_open_backup(path)) as connection:
        tables = sqlite_digests(connection)
    return Manifest(
        name, created_at, path.name, size, digest, tables, ENGINE, data_valid
    )


def verify_sqlite_backup(folder: Path, manifest: Manifest) -> list[str]:
    """Check the backup of ``manifest`` against it; return the problems found."""
    path = folder / manifest.file
    problems = file_problems(path, manifest)
    if problems:
        return problems
    try:
        with contextlib.closing(_open_backup(path)) as connection:
            problems += [
                f"integrity_check: {row}" for row in integrity_problems(connection)
            ]
            problems += compare_tables(sqlite_digests(connection), manifest.tables)
    except sqlite3.Error as exc:
        problems.append(f"the backup cannot be read as SQLite: {exc}")
    return problems


def restore_sqlite(
    database: Path, folder: Path, manifest: Manifest, *, timeout_s: float
) -> None:
    """Verify the backup of ``manifest``, then copy it over the live ``database``.

    Raises BackupError when the backup does not match its manifest (nothing is
    changed then), and OSError or ``sqlite3.Error`` when the copy fails.
    """
    problems = verify_sqlite_backup(folder, manifest)
    if problems:
        raise BackupError(
            f"backup {manifest.name!r} rejected: {'; '.join(problems)}; "
            "choose another backup"
        )
    source = _open_backup(folder / manifest.file)
    try:
        live = _open_live(database, timeout_s)
        try:
            source.backup(live)
        finally:
            live.close()
    finally:
        source.close()


def _copy(database: Path, target: Path, timeout_s: float) -> TableDigests:
    # A read-only source never checkpoints a WAL file when it closes, so the live
    # files keep their bytes whether the backup succeeds or fails.
    with (
        open_read_only(database, timeout_s) as source,
        contextlib.closing(sqlite3.connect(target)) as copy,
    ):
        source.backup(copy)
        # The live file may be in WAL mode; a copy in rollback mode is one file.
        copy.execute("PRAGMA journal_mode=DELETE")
        return sqlite_digests(copy)


def _open_live(database: Path, timeout_s: float) -> sqlite3.Connection:
    # mode=rw never creates a database that is missing.
    uri = f"{database.resolve().as_uri()}?mode=rw"
    return sqlite3.connect(uri, uri=True, timeout=timeout_s)


def _open_backup(path: Path) -> sqlite3.Connection:
    # A backup is in rollback-journal mode, so a read-only reader creates no file.
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
