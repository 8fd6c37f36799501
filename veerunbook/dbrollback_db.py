"""The database that the database-rollback procedure backs up, restores and checks.

``open_database`` reads the target's database URL. A SQLite file and a PostgreSQL
database give a ``Database`` with one interface for both engines: table digests,
the database's own integrity check, a backup with its manifest, and a restore.
Verifying a backup needs no live database, so ``verify_backup`` works from the
manifest alone, also for a backup that a configured command made.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from veerunbook import backup_pg, backup_sqlite, pg_content
from veerunbook.backup_manifest import (
    Manifest,
    TableDigests,
    compare_tables,
    engine_of,
)
from veerunbook.dbcheck import DatabaseUrl, read_database_url, secret_values
from veerunbook.errors import VeerunbookError
from veerunbook.redact import Redactor
from veerunbook.session import Session

BACKUPS_DIRNAME = "backups"


@dataclass(frozen=True)
class Database:
    """A usable database URL of the target: engine, masked form and raw DSN."""

    url: DatabaseUrl

    @property
    def engine(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return "sqlite" if self.url.sqlite_path is not None else "postgresql"

    @property
    def shown(self) -> str:
        """The URL rebuilt with its password masked."""
        return self.url.shown

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file; raises ValueError for a PostgreSQL database."""
        if self.url.sqlite_path is None:
            raise ValueError(f"{self.shown} is not a SQLite database")
        return self.url.sqlite_path

    def default_backup_dir(self) -> Path | None:
        """Return ``backups/`` beside a SQLite file; None for PostgreSQL."""
        if self.url.sqlite_path is None:
            return None
        return self.url.sqlite_path.absolute().parent / BACKUPS_DIRNAME

    def digests(self, timeout_s: float) -> TableDigests:
        """Return the row count and row digest of every table."""
        if self.url.sqlite_path is not None:
            return backup_sqlite.live_digests(self.url.sqlite_path, timeout_s)
        return pg_content.live_pg_digests(self.url.dsn, timeout_s)

    def own_check(self, timeout_s: float) -> tuple[str, str]:
        """Run the database's own check; return a check status and a summary.

        SQLite runs ``PRAGMA integrity_check``. PostgreSQL runs amcheck's B-tree
        check when the extension is installed, and skips with that reason otherwise.
        """
        if self.url.sqlite_path is not None:
            found = backup_sqlite.live_integrity(self.url.sqlite_path, timeout_s)
            if found:
                return "fail", f"integrity_check: {'; '.join(found[:5])}"
            return "pass", "integrity_check: ok"
        result = pg_content.amcheck(self.url.dsn, timeout_s)
        if not result.available:
            return "skip", result.detail
        if result.problems:
            return "fail", f"{result.detail}: {'; '.join(result.problems[:5])}"
        return "pass", f"{result.detail}: no problem found"

    def backup(
        self,
        folder: Path,
        name: str,
        *,
        timeout_s: float,
        redactor: Redactor,
        data_valid: bool | None,
    ) -> Manifest:
        """Back the database up as ``name`` in ``folder`` with its manifest."""
        if self.url.sqlite_path is not None:
            return backup_sqlite.backup_sqlite(
                self.url.sqlite_path,
                folder,
                name,
                timeout_s=timeout_s,
                data_valid=data_valid,
            )
        return backup_pg.dump_pg(
            self.url.dsn,
            folder,
            name,
            timeout_s=timeout_s,
            redactor=redactor,
            data_valid=data_valid,
        )

    def restore(
        self, folder: Path, manifest: Manifest, *, timeout_s: float, redactor: Redactor
    ) -> str:
        """Restore the backup of ``manifest``; return what was done."""
        if self.url.sqlite_path is not None:
            backup_sqlite.restore_sqlite(
                self.url.sqlite_path, folder, manifest, timeout_s=timeout_s
            )
            return f"copied {manifest.file} into {self.url.sqlite_path} (backup API)"
        result = backup_pg.restore_pg(
            self.url.dsn, folder, manifest, timeout_s=timeout_s, redactor=redactor
        )
        return f"pg_restore --clean --if-exists --single-transaction {result.summary()}"


def open_database(session: Session) -> tuple[Database | None, str]:
    """Read the target's database URL; return the database or why there is none.

    Every secret of the URL is added to the session's redactor before anything
    else happens with it.
    """
    url = read_database_url(session.target.database_url_env)
    for value in secret_values(url):
        session.redactor.add(value)
    if url.state not in ("sqlite", "postgresql") or not url.usable:
        return None, url.problem or f"{url.state} database URL"
    return Database(url), ""


def verify_backup(
    folder: Path, manifest: Manifest, *, timeout_s: float, redactor: Redactor
) -> list[str]:
    """Check a backup against its manifest; return the problems, empty when valid."""
    engine = manifest.engine or engine_of(manifest.file)
    if engine == "sqlite":
        return backup_sqlite.verify_sqlite_backup(folder, manifest)
    if engine == "postgresql":
        return backup_pg.verify_pg_backup(
            folder, manifest, timeout_s=timeout_s, redactor=redactor
        )
    return [f"unknown backup format of {manifest.file}: expected .sqlite3 or .dump"]


def verify_emergency_backup(
    database: Database | None,
    folder: Path,
    manifest: Manifest,
    *,
    timeout_s: float,
    redactor: Redactor,
) -> tuple[bool, str]:
    """Verify a new backup against its manifest, then against the live database.

    The traffic is stopped while the emergency backup is taken, so its tables must
    equal the live ones. A difference means that the backup contains other data,
    such as an older backup that a ``db_backup`` command copied under the new name.
    Returns whether the backup verified, and the detail.
    """
    import psycopg  # loaded here, not when the notebook's first cell imports this

    problems = verify_backup(folder, manifest, timeout_s=timeout_s, redactor=redactor)
    if problems:
        return False, f"backup {manifest.name}: {'; '.join(problems)}"
    described = describe_verification(manifest)
    if database is None:
        # NOTE: a backup made by a command is then checked against its own
        # manifest alone, so a stale copy with a matching manifest passes.
        return True, (
            f"{described}; not compared with the live database: no database URL "
            "is usable"
        )
    try:
        live = database.digests(timeout_s)
    except (OSError, sqlite3.Error, psycopg.Error, VeerunbookError) as exc:
        reason = redactor.mask(f"{type(exc).__name__}: {exc}")
        return False, (
            f"backup {manifest.name} not compared with the live database, which "
            f"could not be read: {reason}"
        )
    differences = compare_tables(live, manifest.tables)
    if differences:
        return False, (
            f"backup {manifest.name} does not match the live database "
            f"({'; '.join(differences[:5])}), so it does not keep the current "
            "state: check that nothing else writes to the database and that the "
            "backup reads the live database"
        )
    return True, f"{described}; the tables match the live database"


def describe_verification(manifest: Manifest) -> str:
    """Describe a verified backup in one line: size, SHA-256, tables, rows."""
    rows = sum(int(table.get("rows", 0)) for table in manifest.tables.values())
    restorable = (
        "opens and passes integrity_check"
        if manifest.engine == "sqlite"
        else "pg_restore --list reads it"
    )
    return (
        f"{manifest.file}: {manifest.size_bytes} bytes, SHA-256 "
        f"{manifest.sha256[:12]}, {len(manifest.tables)} tables with {rows} rows "
        f"match the manifest, {restorable}"
    )
