"""Backup manifests: what a database backup contained, so that it can be verified.

A backup called NAME is two files in a backup folder: the backup itself,
``NAME.sqlite3`` (a SQLite database) or ``NAME.dump`` (a ``pg_dump -Fc`` archive),
and its manifest ``NAME.json``. The manifest records the UTC time the backup was
made, the file's size and SHA-256, and per table the row count and a SHA-256 over the
rows. Its keys are the ones the demo service's ``db-backup`` operation writes
(``name``, ``createdAt``, ``file``, ``sizeBytes``, ``sha256``, ``tables``), so the
procedure and the demo read each other's manifests. Two optional keys record which
database engine made the backup (``engine``) and whether the data passed the
application's validation when it was backed up (``dataValid``). The demo writes
the second key as ``paymentsValid``.

A table's digest is the SHA-256 of one line per row in a fixed order. Each line is
the row's values as a JSON array, with blobs as hex text, and a newline.
``veerunbook.backup_sqlite`` and ``veerunbook.backup_pg`` say how each engine orders
the rows.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from veerunbook.errors import UsageError
from veerunbook.journal import write_atomic

MANIFEST_SUFFIX = ".json"
BACKUP_SUFFIXES = {"sqlite": ".sqlite3", "postgresql": ".dump"}
EMERGENCY_PREFIX = "emergency_"
# The runbook's name: emergency_$(date +%Y%m%d_%H%M%S), in UTC here.
EMERGENCY_FORMAT = EMERGENCY_PREFIX + "%Y%m%d_%H%M%S"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CHUNK_BYTES = 1 << 16

# Per table: {"rows": int, "sha256": hex digest}.
TableDigests = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Manifest:
    """The content of one backup at the time it was made.

    ``data_valid`` is None when the backup recorded no validation result. Raises
    UsageError when ``file`` is not a plain file name.
    """

    name: str
    created_at: str
    file: str
    size_bytes: int
    sha256: str
    tables: TableDigests
    engine: str | None = None
    data_valid: bool | None = None

    def __post_init__(self) -> None:
        # Verification and restore read ``folder / file``, so it must stay inside.
        check_file_name(self.file)

    def to_json(self) -> dict[str, Any]:
        """Render the manifest as stored in ``NAME.json``."""
        data: dict[str, Any] = {
            "name": self.name,
            "createdAt": self.created_at,
            "file": self.file,
            "sizeBytes": self.size_bytes,
            "sha256": self.sha256,
            "tables": self.tables,
            "engine": self.engine,
        }
        if self.data_valid is not None:
            data["dataValid"] = self.data_valid
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        """Read a stored manifest.

        Raises KeyError, TypeError or ValueError when a field is missing or invalid.
        """
        tables = data["tables"]
        if not isinstance(tables, dict):
            raise TypeError("tables is not an object")
        name = str(data["name"])
        valid = data.get("dataValid", data.get("paymentsValid"))
        file = str(data.get("file") or "")
        engine = data.get("engine") or engine_of(file)
        return cls(
            name=name,
            created_at=str(data["createdAt"]),
            file=file or f"{name}{BACKUP_SUFFIXES['sqlite']}",
            size_bytes=int(data["sizeBytes"]),
            sha256=str(data["sha256"]),
            tables=tables,
            engine=None if engine is None else str(engine),
            data_valid=None if valid is None else bool(valid),
        )

    @property
    def created(self) -> datetime | None:
        """The creation time as an aware UTC datetime, or None if unreadable."""
        return parse_time(self.created_at)


def engine_of(file_name: str) -> str | None:
    """Return the engine a backup file's suffix names, or None."""
    for engine, suffix in BACKUP_SUFFIXES.items():
        if file_name.endswith(suffix):
            return engine
    return None


def check_backup_name(name: str) -> str:
    """Return ``name`` if it is a valid backup name; raise UsageError otherwise."""
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"invalid backup name {name!r}: use 1 to 64 letters, digits, '_', '.' "
            "or '-', starting with a letter or digit"
        )
    return name


def check_file_name(file: str) -> str:
    """Return ``file`` when it is a plain file name, and raise UsageError otherwise.

    An absolute path, a folder part or ``..`` would make verification and restore
    read a file outside the backup folder.
    """
    if file in ("", ".", "..") or any(char in file for char in "/\\\0"):
        raise UsageError(
            f"invalid backup file {file!r}: give a plain file name inside the "
            "backup folder, such as NAME.sqlite3 or NAME.dump"
        )
    return file


def emergency_name(now: datetime | None = None) -> str:
    """Return the name of an emergency backup made at ``now`` (default: now, UTC)."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime(EMERGENCY_FORMAT)


def utc_text(moment: datetime) -> str:
    """Format ``moment`` in UTC with milliseconds and a ``Z``, as manifests do."""
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def parse_time(text: str) -> datetime | None:
    """Parse an ISO 8601 time; a time without an offset counts as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def file_digest(path: Path) -> tuple[int, str]:
    """Return the size in bytes and the SHA-256 of the file at ``path``."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def file_problems(path: Path, manifest: Manifest) -> list[str]:
    """Compare a backup file's size and SHA-256 with its manifest; return the
    problems found, or an empty list."""
    if not path.is_file():
        return [f"backup file {path} not found"]
    size, digest = file_digest(path)
    if size == 0:
        return [f"backup file {path} is empty"]
    problems = []
    if size != manifest.size_bytes:
        problems.append(f"size {size} bytes, the manifest {manifest.size_bytes}")
    if digest != manifest.sha256:
        problems.append("the file's SHA-256 differs from the manifest")
    return problems


def digest_rows(rows: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """Return the row count and the SHA-256 of ``rows``, in the order given."""
    digest, count = hashlib.sha256(), 0
    for row in rows:
        values = [value.hex() if isinstance(value, bytes) else value for value in row]
        digest.update(json.dumps(values).encode() + b"\n")
        count += 1
    return {"rows": count, "sha256": digest.hexdigest()}


def compare_tables(actual: TableDigests, recorded: TableDigests) -> list[str]:
    """Return each difference between two sets of table digests, in words."""
    differences = []
    for table in sorted(set(actual) | set(recorded)):
        found, expected = actual.get(table), recorded.get(table)
        if found is None or expected is None:
            where = "the database" if found is None else "the manifest"
            differences.append(f"table {table} is missing from {where}")
        elif found.get("rows") != expected.get("rows"):
            differences.append(
                f"table {table} has {found.get('rows')} rows, the manifest "
                f"{expected.get('rows')}"
            )
        elif found.get("sha256") != expected.get("sha256"):
            differences.append(f"table {table} rows differ from the manifest SHA-256")
    return differences


def manifest_path(folder: Path, name: str) -> Path:
    """Return the path of backup ``name``'s manifest in ``folder``."""
    return folder / f"{check_backup_name(name)}{MANIFEST_SUFFIX}"


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write ``manifest`` beside its backup, atomically; return its path."""
    path = manifest_path(folder, manifest.name)
    text = json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n"
    write_atomic(path, text.encode())
    return path


def read_manifest(folder: Path, name: str) -> Manifest:
    """Read backup ``name``'s manifest; raise UsageError when missing or invalid."""
    path = manifest_path(folder, name)
    try:
        return Manifest.from_json(json.loads(path.read_text("utf-8")))
    except FileNotFoundError:
        raise UsageError(f"backup {name!r} has no manifest {path}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"backup {name!r}: invalid manifest {path} ({exc})") from None


def list_manifests(folder: Path) -> tuple[list[Manifest], list[str]]:
    """Return the readable manifests of ``folder``, newest first, and the problems.

    Each unreadable manifest gives one problem line instead of a manifest.
    """
    if not folder.is_dir():
        return [], []
    manifests, problems = [], []
    for path in sorted(folder.glob(f"*{MANIFEST_SUFFIX}")):
        try:
            manifests.append(read_manifest(folder, path.stem))
        except UsageError as exc:
            problems.append(str(exc))
    manifests.sort(key=_sort_time, reverse=True)
    return manifests, problems


def _sort_time(manifest: Manifest) -> datetime:
    return manifest.created or datetime.min.replace(tzinfo=UTC)
