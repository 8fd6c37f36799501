"""Deploys of the simulated service: the current version, new releases, rollbacks.

The ``deploys`` table is the deploy history. The current version is the newest
``succeeded`` row. A rollback marks that row ``rolled_back`` and records a new
``succeeded`` row for the older version with the note ``rolled back from X``, so the
history keeps both events.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from veerunbook.errors import UsageError
from veerunbook.simulator.migrations import write_transaction
from veerunbook.simulator.seed import iso

NO_VERSION = "0.0.0"
_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)")

CURRENT_QUERY = (
    "SELECT id, version, commit_sha FROM deploys WHERE status = 'succeeded'"
    " ORDER BY deployed_at DESC, id DESC LIMIT 1"
)


@dataclass(frozen=True)
class Rollback:
    """The outcome of a rollback: the versions before and after it."""

    previous: str
    current: str

    @property
    def changed(self) -> bool:
        """Whether the rollback switched versions; False when already current."""
        return self.previous != self.current


def current_version(connection: sqlite3.Connection) -> str:
    """Return the version of the newest succeeded deploy, or ``"0.0.0"``."""
    row = connection.execute(CURRENT_QUERY).fetchone()
    return str(row[1]) if row else NO_VERSION


def next_minor_version(version: str) -> str:
    """Return the next minor version: ``1.4.2`` becomes ``1.5.0``."""
    match = _SEMVER.fullmatch(version)
    if match is None:
        raise ValueError(f"invalid version {version!r}: use MAJOR.MINOR.PATCH")
    major, minor, _ = (int(part) for part in match.groups())
    return f"{major}.{minor + 1}.0"


def record_deploy(
    connection: sqlite3.Connection, version: str, commit_sha: str, note: str | None
) -> None:
    """Insert a succeeded deploy of ``version`` at the current time."""
    with write_transaction(connection):
        _insert_deploy(connection, version, commit_sha, note)


def rollback(connection: sqlite3.Connection, version: str) -> Rollback:
    """Make ``version`` current again; raise UsageError if it was never deployed.

    Rolling back to the current version changes nothing.
    """
    with write_transaction(connection):
        current = connection.execute(CURRENT_QUERY).fetchone()
        target = connection.execute(
            "SELECT commit_sha FROM deploys WHERE version = ?"
            " ORDER BY deployed_at DESC, id DESC LIMIT 1",
            (version,),
        ).fetchone()
        if target is None:
            known = ", ".join(_versions(connection)) or "none"
            raise UsageError(
                f"unknown version {version!r}: it was never deployed; "
                f"deployed versions are {known}"
            )
        previous = str(current[1]) if current else NO_VERSION
        if previous == version:
            return Rollback(previous, version)
        if current is not None:
            connection.execute(
                "UPDATE deploys SET status = 'rolled_back' WHERE id = ?", (current[0],)
            )
        note = f"rolled back from {previous}"
        _insert_deploy(connection, version, str(target[0]), note)
    return Rollback(previous, version)


def _insert_deploy(
    connection: sqlite3.Connection, version: str, commit_sha: str, note: str | None
) -> None:
    connection.execute(
        "INSERT INTO deploys (version, commit_sha, deployed_at, status, note)"
        " VALUES (?, ?, ?, 'succeeded', ?)",
        (version, commit_sha, iso(datetime.now(UTC)), note),
    )


def _versions(connection: sqlite3.Connection) -> list[str]:
    rows = connection.execute(
        "SELECT DISTINCT version FROM deploys ORDER BY version"
    ).fetchall()
    return [str(row[0]) for row in rows]
