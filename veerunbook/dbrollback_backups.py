"""Backups for the database-rollback procedure: the candidates and the new backup.

``list_candidates`` reads every manifest of the backup folder and chooses the backup
to restore. An explicitly requested backup is chosen when it matches its manifest.
Otherwise the newest backup is chosen that matches its manifest and that is neither
an emergency backup nor marked as failing validation when it was made, nor made
after the corruption began. Candidates are verified newest first, and the search
stops at the first that verifies, so older backups are not read in vain.

``make_backup`` takes the emergency backup with the target's ``db_backup`` command
when one is configured, else directly. A command that writes no manifest gets one
written here (see ``manifest_after_command``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from veerunbook.backup_manifest import (
    BACKUP_SUFFIXES,
    EMERGENCY_PREFIX,
    Manifest,
    file_digest,
    list_manifests,
    read_manifest,
    utc_text,
    write_manifest,
)
from veerunbook.backup_sqlite import describe_file
from veerunbook.dbrollback_db import Database, verify_backup
from veerunbook.errors import BackupError, UsageError
from veerunbook.session import Session
from veerunbook.shell import configured_command, run_command


@dataclass
class Candidate:
    """One backup of the folder and what is known about it.

    ``excluded`` gives the reason the automatic choice skips it, and ``problems``
    lists its differences from its manifest (None when it was not checked).
    """

    manifest: Manifest
    excluded: str | None = None
    problems: list[str] | None = None
    chosen: bool = False

    def row(self) -> dict[str, Any]:
        """Return the candidate as a table row."""
        manifest = self.manifest
        valid = {True: "yes", False: "no", None: "-"}[manifest.data_valid]
        if self.problems is None:
            check = "not checked"
        else:
            check = "; ".join(self.problems) if self.problems else "ok"
        return {
            "backup": manifest.name,
            "created (UTC)": manifest.created_at,
            "size (bytes)": manifest.size_bytes,
            "engine": manifest.engine or "-",
            "valid when made": valid,
            "skipped because": self.excluded or "",
            "manifest check": check,
            "chosen": "yes" if self.chosen else "",
        }


@dataclass
class Choice:
    """The candidates, the chosen one (or None) and why none was chosen."""

    candidates: list[Candidate] = field(default_factory=list)
    chosen: Candidate | None = None
    reason: str = ""
    unreadable: list[str] = field(default_factory=list)


def list_candidates(
    session: Session,
    folder: Path,
    *,
    corrupted_since: datetime,
    requested: str,
    timeout_s: float,
) -> Choice:
    """Read the folder's manifests and choose the backup to restore."""
    manifests, unreadable = list_manifests(folder)
    candidates = [Candidate(m, _exclusion(m, corrupted_since)) for m in manifests]
    choice = Choice(candidates, unreadable=unreadable)
    if requested:
        pool = [c for c in candidates if c.manifest.name == requested]
        if not pool:
            choice.reason = f"backup {requested!r} not found in {folder}"
            return choice
    else:
        pool = [c for c in candidates if c.excluded is None]
    for candidate in pool:
        candidate.problems = verify_backup(
            folder, candidate.manifest, timeout_s=timeout_s, redactor=session.redactor
        )
        if not candidate.problems:
            candidate.chosen = True
            choice.chosen = candidate
            return choice
    choice.reason = _no_choice(folder, requested, candidates)
    return choice


def backup_folder(parameter: str, database: Database | None) -> Path | None:
    """Return the backup folder: the parameter, else ``backups/`` beside SQLite."""
    if parameter:
        return Path(parameter).expanduser().absolute()
    return None if database is None else database.default_backup_dir()


def folder_problem(folder: Path) -> str | None:
    """Return why backups cannot be written into ``folder``, or None."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def make_backup(
    session: Session,
    database: Database | None,
    folder: Path,
    name: str,
    *,
    timeout_s: float,
    data_valid: bool | None,
) -> tuple[Manifest, str]:
    """Back the database up as ``name``; return the manifest and what was done.

    Raises BackupError when the command fails or no way to back up exists, and
    passes on the errors of a direct backup (see ``Database.backup``).
    """
    template = configured_command(session, "db_backup")
    if template:
        result = run_command(
            template,
            values={"backup": name},
            timeout_s=timeout_s,
            redactor=session.redactor,
        )
        if not result.ok:
            last = result.stderr.strip().splitlines()[-1:] or [""]
            raise BackupError(f"db_backup command {result.summary()}: {last[0]}")
        manifest = manifest_after_command(folder, name, database, timeout_s, data_valid)
        return manifest, f"db_backup command {result.summary()}"
    if database is None:
        raise BackupError(
            "no db_backup command is configured and no database URL is usable"
        )
    manifest = database.backup(
        folder,
        name,
        timeout_s=timeout_s,
        redactor=session.redactor,
        data_valid=data_valid,
    )
    method = "SQLite online backup API" if database.engine == "sqlite" else "pg_dump"
    return manifest, f"{method} wrote {manifest.file}"


def manifest_after_command(
    folder: Path,
    name: str,
    database: Database | None,
    timeout_s: float,
    data_valid: bool | None,
) -> Manifest:
    """Return the manifest a backup command wrote, or write one for its file.

    A SQLite backup file is described from its own content. For a PostgreSQL
    archive the table digests come from the live database just after the command,
    and an archive with the bytes of an older backup of the folder is rejected.
    NOTE: the digests match the archive only when nothing wrote in between, which
    the stopped traffic is meant to ensure, and when the command dumped the live
    database, which only the check for a copied archive tests.
    """
    try:
        return read_manifest(folder, name)
    except UsageError:
        pass
    created = utc_text(datetime.now(UTC))
    for engine, suffix in BACKUP_SUFFIXES.items():
        path = folder / f"{name}{suffix}"
        if not path.is_file():
            continue
        if engine == "sqlite":
            manifest = describe_file(path, name, created, data_valid)
        elif database is not None and database.engine == "postgresql":
            size, digest = file_digest(path)
            _reject_copy(folder, path, digest)
            tables = database.digests(timeout_s)
            manifest = Manifest(
                name, created, path.name, size, digest, tables, engine, data_valid
            )
        else:
            raise BackupError(
                f"{path} has no manifest, and no PostgreSQL database URL is set "
                "to describe it"
            )
        write_manifest(folder, manifest)
        return manifest
    raise BackupError(
        f"the db_backup command wrote neither {name}.json nor {name}.sqlite3 or "
        f"{name}.dump into {folder}; set -p backup_dir to the folder it writes to"
    )


def _reject_copy(folder: Path, path: Path, digest: str) -> None:
    # pg_dump writes the time it started into the archive's header, so a new
    # archive never has the bytes of an older one.
    for manifest in list_manifests(folder)[0]:
        if manifest.sha256 == digest:
            raise BackupError(
                f"{path.name} has the same SHA-256 as backup {manifest.name}, so the "
                "db_backup command copied an older backup instead of dumping the "
                "live database"
            )


def _exclusion(manifest: Manifest, corrupted_since: datetime) -> str | None:
    if manifest.name.startswith(EMERGENCY_PREFIX):
        return "an emergency backup of damaged data"
    if manifest.data_valid is False:
        return "its data failed validation when it was made"
    created = manifest.created
    if created is None:
        return f"its creation time {manifest.created_at!r} is unreadable"
    if created >= corrupted_since:
        return f"made after the corruption began ({utc_text(corrupted_since)})"
    return None


def _no_choice(folder: Path, requested: str, candidates: list[Candidate]) -> str:
    if requested:
        return f"backup {requested!r} does not match its manifest"
    if not candidates:
        return f"no backup with a manifest in {folder}"
    checked = [c for c in candidates if c.problems is not None]
    if not checked:
        return (
            f"none of the {len(candidates)} backups in {folder} is from before "
            "the corruption"
        )
    return (
        f"none of the {len(checked)} backups from before the corruption matches "
        "its manifest"
    )
