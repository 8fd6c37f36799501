"""Backups of the simulated database, each with a manifest that restore checks.

``DIR/backups/NAME.sqlite3`` is a copy made with SQLite's online backup API, which
copies a consistent snapshot while the service keeps writing. ``NAME.json`` records
the UTC time, the file's size and SHA-256, the row count and a SHA-256 of the rows of
every table, and whether the payments passed validation. A restore recomputes all of
these and rejects a backup that does not match its manifest. It then copies the
backup into the live file with the same API in one step, so readers see either the
old or the restored database.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from veerunbook.errors import UsageError
from veerunbook.journal import write_atomic
from veerunbook.simulator.integrity import find_invalid_payments
from veerunbook.simulator.seed import iso

BACKUPS_DIRNAME = "backups"
BUSY_TIMEOUT_SECONDS = 10.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Manifest:
    """The contents of a backup at the time it was made."""

    name: str
    created_at: str
    size_bytes: int
    sha256: str
    tables: dict[str, dict[str, Any]]
    payments_valid: bool

    def to_json(self) -> dict[str, Any]:
        """Render the manifest as stored in ``NAME.json``."""
        return {
            "name": self.name,
            "createdAt": self.created_at,
            "file": f"{self.name}.sqlite3",
            "sizeBytes": self.size_bytes,
            "sha256": self.sha256,
            "tables": self.tables,
            "paymentsValid": self.payments_valid,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        """Read a stored manifest; raise KeyError or TypeError when fields are bad."""
        tables = data["tables"]
        if not isinstance(tables, dict):
            raise TypeError("tables is not an object")
        return cls(
            name=str(data["name"]),
            created_at=str(data["createdAt"]),
            size_bytes=int(data["sizeBytes"]),
            sha256=str(data["sha256"]),
            tables=tables,
            payments_valid=bool(data["paymentsValid"]),
        )


def backups_dir(database: Path) -> Path:
    """Return the folder that contains the backups of ``database``."""
    return database.parent / BACKUPS_DIRNAME


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid backup name; raise UsageError otherwise."""
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"invalid backup name {name!r}: use 1 to 64 letters, digits, '_', '.' "
            "or '-', starting with a letter or digit"
        )
    return name


def create_backup(database: Path, name: str) -> Manifest:
    """Back up ``database`` as ``name``; raise UsageError if that name is taken."""
    folder = backups_dir(database)
    target, manifest_path = _paths(folder, check_name(name))
    if target.exists() or manifest_path.exists():
        raise UsageError(
            f"backup {name!r} already exists in {folder}; choose a new name"
        )
    folder.mkdir(parents=True, exist_ok=True)

    handle, temporary_name = tempfile.mkstemp(
        dir=folder, prefix=f".{name}.", suffix=".tmp"
    )
    os.close(handle)
    temporary = Path(temporary_name)
    try:
        tables, payments_valid = _copy(database, temporary)
        size, digest = _file_digest(temporary)
        os.replace(temporary, target)
        created = iso(datetime.now(UTC))
        manifest = Manifest(name, created, size, digest, tables, payments_valid)
        try:
            write_atomic(manifest_path, _dump(manifest))
        except BaseException:
            target.unlink(missing_ok=True)
            raise
    finally:
        temporary.unlink(missing_ok=True)
    return manifest


def verify_backup(database: Path, name: str) -> Manifest:
    """Check backup ``name`` against its manifest; raise UsageError on any mismatch."""
    target, manifest_path = _paths(backups_dir(database), check_name(name))
    if not target.is_file() or not manifest_path.is_file():
        raise UsageError(
            f"backup {name!r} not found: {target.name} and {manifest_path.name} are "
            f"both needed in {target.parent}"
        )
    try:
        manifest = Manifest.from_json(json.loads(manifest_path.read_text("utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"backup {name!r} rejected: invalid manifest ({exc})"
        ) from None

    size, digest = _file_digest(target)
    problems = []
    if size != manifest.size_bytes:
        problems.append(f"size {size} bytes, manifest {manifest.size_bytes}")
    if digest != manifest.sha256:
        problems.append("file SHA-256 differs from the manifest")
    if not problems:
        with contextlib.closing(_open_read_only(target)) as connection:
            problems.extend(_table_differences(_digest_tables(connection), manifest))
    if problems:
        raise UsageError(
            f"backup {name!r} rejected: it does not match its manifest "
            f"({'; '.join(problems)}); choose another backup"
        )
    return manifest


def restore_backup(database: Path, name: str) -> Manifest:
    """Verify backup ``name``, then copy it over the live ``database``."""
    manifest = verify_backup(database, name)
    source = _open_read_only(backups_dir(database) / f"{name}.sqlite3")
    live = sqlite3.connect(database, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        source.backup(live)
    finally:
        live.close()
        source.close()
    return manifest


def list_backups(database: Path) -> list[Manifest]:
    """Return the readable manifests, newest first; unreadable ones are skipped."""
    manifests = []
    for path in backups_dir(database).glob("*.json"):
        try:
            manifests.append(Manifest.from_json(json.loads(path.read_text("utf-8"))))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return sorted(manifests, key=lambda manifest: manifest.created_at, reverse=True)


def ensure_baseline_backup(database: Path) -> str | None:
    """Back up ``database`` as ``baseline_<UTC time>`` unless a backup exists.

    Returns the new backup's name, or None when there was one already. The baseline
    gives a restore something to use in a fresh data directory.
    """
    if list_backups(database):
        return None
    name = datetime.now(UTC).strftime("baseline_%Y%m%d_%H%M%S")
    create_backup(database, name)
    return name


def _paths(folder: Path, name: str) -> tuple[Path, Path]:
    return folder / f"{name}.sqlite3", folder / f"{name}.json"


def _copy(database: Path, target: Path) -> tuple[dict[str, dict[str, Any]], bool]:
    source = sqlite3.connect(database, timeout=BUSY_TIMEOUT_SECONDS)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
        # The live file is in WAL mode; a backup in rollback mode is one file.
        copy.execute("PRAGMA journal_mode=DELETE")
        tables = _digest_tables(copy)
        payments_valid = not find_invalid_payments(copy)
    finally:
        copy.close()
        source.close()
    return tables, payments_valid


def _open_read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _digest_tables(connection: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    names = [
        str(row[0])
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    tables = {}
    for table in names:
        digest, rows = hashlib.sha256(), 0
        for row in connection.execute(f'SELECT * FROM "{table}" ORDER BY rowid'):
            values = [
                value.hex() if isinstance(value, bytes) else value for value in row
            ]
            digest.update(json.dumps(values).encode() + b"\n")
            rows += 1
        tables[table] = {"rows": rows, "sha256": digest.hexdigest()}
    return tables


def _table_differences(
    actual: dict[str, dict[str, Any]], manifest: Manifest
) -> list[str]:
    differences = []
    for table in sorted(set(actual) | set(manifest.tables)):
        found, recorded = actual.get(table), manifest.tables.get(table)
        if found is None or recorded is None:
            where = "manifest" if found is None else "file"
            differences.append(f"table {table} missing from the {where}")
        elif found.get("rows") != recorded.get("rows"):
            differences.append(
                f"table {table} has {found['rows']} rows, "
                f"manifest {recorded.get('rows')}"
            )
        elif found != recorded:
            differences.append(f"table {table} rows differ from the manifest SHA-256")
    return differences


def _file_digest(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _dump(manifest: Manifest) -> bytes:
    return (json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n").encode()
