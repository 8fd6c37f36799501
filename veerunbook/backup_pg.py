"""PostgreSQL backups with pg_dump, their verification and the restore.

``dump_pg`` runs ``pg_dump -Fc`` while a read-only, repeatable-read transaction of
this process keeps open a snapshot it exported. pg_dump reads with that snapshot
(``--snapshot``), and the manifest's table digests are computed in the same
transaction, so the archive and its manifest describe the same moment.
``verify_pg_backup`` checks an archive against its manifest: a size above zero, the
size and SHA-256, and that ``pg_restore --list`` reads it and lists the data of every
table the manifest names. ``restore_pg`` verifies, then runs ``pg_restore --clean
--if-exists --single-transaction``, so the archive is restored whole or not at all.

The password never appears on a command line. The DSN is split into its libpq
keywords: the password goes into the ``PGPASSWORD`` environment variable of the
child alone, the other keywords into ``--dbname``.
"""

from __future__ import annotations

import glob
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from veerunbook.backup_manifest import (
    BACKUP_SUFFIXES,
    Manifest,
    check_backup_name,
    file_digest,
    file_problems,
    utc_text,
    write_manifest,
)
from veerunbook.errors import BackupError, UsageError
from veerunbook.pg_connect import parse_dsn
from veerunbook.pg_content import first_column, pg_digests, snapshot_session
from veerunbook.redact import Redactor
from veerunbook.shell import CommandResult, run_command

ENGINE = "postgresql"
SUFFIX = BACKUP_SUFFIXES[ENGINE]


@dataclass(frozen=True)
class PgLogin:
    """A DSN split for the client programs: ``--dbname`` text and the password."""

    conninfo: str
    password: str | None
    where: str

    def env(self) -> dict[str, str]:
        """Return the child's extra environment: the password, when there is one."""
        return {"PGPASSWORD": self.password} if self.password else {}


def split_dsn(dsn: str) -> PgLogin:
    """Split ``dsn`` into a conninfo without the password and the password.

    Raises UsageError for an invalid DSN or one with an ``sslpassword``, which no
    environment variable can carry.
    """
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    target = parse_dsn(dsn)
    parsed = conninfo_to_dict(dsn).items()
    params = {key: str(value) for key, value in parsed if value is not None}
    if "sslpassword" in params:
        raise UsageError(
            "the database URL sets sslpassword, which pg_dump could only get on its "
            "command line; use a client key without a passphrase for the backup"
        )
    password = params.pop("password", None)
    return PgLogin(make_conninfo("", **params), password, target.where)


def find_tool(name: str) -> str | None:
    """Return the path of a PostgreSQL client program, or None when none is found.

    The PATH comes first, then the newest ``/usr/lib/postgresql/*/bin`` (Debian).
    """
    found = shutil.which(name)
    if found:
        return found
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    if not candidates:
        return None
    return max(candidates, key=lambda path: int(Path(path).parts[-3]))


def dump_pg(
    dsn: str,
    folder: Path,
    name: str,
    *,
    timeout_s: float,
    redactor: Redactor,
    data_valid: bool | None = None,
) -> Manifest:
    """Dump the database as ``folder/NAME.dump`` and write its manifest.

    Raises UsageError for an invalid or taken name or a missing pg_dump,
    DatabaseUnavailable when the server cannot be reached, and BackupError when
    pg_dump fails. After any of these, no file is left under the backup's name.
    """
    program = _require_tool("pg_dump")
    target = folder / f"{check_backup_name(name)}{SUFFIX}"
    if target.exists() or (folder / f"{name}.json").exists():
        raise UsageError(f"backup {name!r} already exists in {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    login = split_dsn(dsn)
    with snapshot_session(dsn, timeout_s) as conn:
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        snapshot = str(first_column(row))
        tables = pg_digests(conn)
        result = run_command(
            "{program} --format=custom --file={file} --snapshot={snapshot}"
            " --dbname={conninfo}",
            values={
                "program": program,
                "file": str(target),
                "snapshot": snapshot,
                "conninfo": login.conninfo,
            },
            timeout_s=timeout_s,
            redactor=redactor,
            env=login.env(),
        )
    if not result.ok:
        target.unlink(missing_ok=True)
        raise BackupError(f"pg_dump {_failure(result)}")
    size, digest = file_digest(target)
    created = utc_text(datetime.now(UTC))
    manifest = Manifest(
        name, created, target.name, size, digest, tables, ENGINE, data_valid
    )
    try:
        write_manifest(folder, manifest)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return manifest


def verify_pg_backup(
    folder: Path, manifest: Manifest, *, timeout_s: float, redactor: Redactor
) -> list[str]:
    """Check the archive of ``manifest`` against it; return the problems found."""
    path = folder / manifest.file
    problems = file_problems(path, manifest)
    if problems:
        return problems

    program = find_tool("pg_restore")
    if program is None:
        return ["pg_restore not found, so the archive cannot be read"]
    result = run_command(
        "{program} --list {file}",
        values={"program": program, "file": str(path)},
        timeout_s=timeout_s,
        redactor=redactor,
    )
    if not result.ok:
        return [f"pg_restore --list {_failure(result)}"]
    listed = _table_data_entries(result.stdout)
    missing = sorted(table for table in manifest.tables if table not in listed)
    if missing and not result.stdout_dropped:
        problems.append(f"the archive lists no data for {', '.join(missing)}")
    return problems


def restore_pg(
    dsn: str,
    folder: Path,
    manifest: Manifest,
    *,
    timeout_s: float,
    redactor: Redactor,
) -> CommandResult:
    """Verify the archive of ``manifest``, then restore it into the database.

    Raises BackupError when the archive does not verify or pg_restore fails; with
    ``--single-transaction`` a failed restore leaves the database as it was.
    """
    problems = verify_pg_backup(
        folder, manifest, timeout_s=timeout_s, redactor=redactor
    )
    if problems:
        raise BackupError(
            f"backup {manifest.name!r} rejected: {'; '.join(problems)}; "
            "choose another backup"
        )
    login = split_dsn(dsn)
    result = run_command(
        "{program} --clean --if-exists --single-transaction --dbname={conninfo} {file}",
        values={
            "program": _require_tool("pg_restore"),
            "conninfo": login.conninfo,
            "file": str(folder / manifest.file),
        },
        timeout_s=timeout_s,
        redactor=redactor,
        env=login.env(),
    )
    if not result.ok:
        raise BackupError(f"pg_restore {_failure(result)}")
    return result


def _require_tool(name: str) -> str:
    program = find_tool(name)
    if program is None:
        raise UsageError(
            f"{name} not found on the PATH or under /usr/lib/postgresql; install "
            "the PostgreSQL client programs (Debian: postgresql-client)"
        )
    return program


def _table_data_entries(listing: str) -> set[str]:
    """Return ``schema.table`` of each TABLE DATA entry of ``pg_restore --list``."""
    entries = set()
    for line in listing.splitlines():
        if line.startswith(";") or " TABLE DATA " not in line:
            continue
        parts = line.split(" TABLE DATA ", 1)[1].split()
        if len(parts) >= 2:
            entries.add(f"{parts[0]}.{parts[1]}")
    return entries


def _failure(result: CommandResult) -> str:
    last = result.stderr.strip().splitlines()[-1:] or [""]
    return f"{result.summary()}: {last[0]}".rstrip(": ")
