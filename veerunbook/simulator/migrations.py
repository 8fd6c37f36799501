"""Schema migrations of the simulated database, and its write transactions.

``seed.SCHEMA`` creates the tables as the first seven migrations left them, and
``seed_database`` records those seven as applied. The migrations here come after
them. The service applies pending ones when it opens the file, as a deploy would,
and ``migration_status`` reports both kinds for the ``db-status`` operation.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from veerunbook.simulator.integrity import PAYMENT_COLUMNS, payment_checksum
from veerunbook.simulator.seed import MIGRATIONS as SEEDED_MIGRATIONS
from veerunbook.simulator.seed import iso


@contextmanager
def write_transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """Run the block in one ``BEGIN IMMEDIATE`` transaction; roll back on error.

    ``IMMEDIATE`` takes the write lock at the start, so a read followed by a write
    cannot interleave with another process's write, and waits for the connection's
    busy timeout instead of failing at once.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.rollback()
        raise
    connection.commit()


def _add_payments_checksum(connection: sqlite3.Connection) -> None:
    connection.execute("ALTER TABLE payments ADD COLUMN checksum TEXT")
    columns = ", ".join(PAYMENT_COLUMNS)
    rows = connection.execute(f"SELECT {columns} FROM payments").fetchall()
    for row in rows:
        connection.execute(
            "UPDATE payments SET checksum = ? WHERE id = ?",
            (payment_checksum(tuple(row)), row[0]),
        )


def _add_deploys_note(connection: sqlite3.Connection) -> None:
    connection.execute("ALTER TABLE deploys ADD COLUMN note TEXT")


def _create_security_tables(connection: sqlite3.Connection) -> None:
    connection.execute(
        "CREATE TABLE security_events (id INTEGER PRIMARY KEY, time TEXT NOT NULL,"
        " type TEXT NOT NULL, ip TEXT NOT NULL, severity TEXT NOT NULL,"
        " detail TEXT NOT NULL)"
    )
    connection.execute(
        "CREATE TABLE blocked_ips (ip TEXT PRIMARY KEY, reason TEXT NOT NULL,"
        " blocked_at TEXT NOT NULL)"
    )


LATER_MIGRATIONS: tuple[tuple[str, Callable[[sqlite3.Connection], None]], ...] = (
    ("0008_add_payments_checksum", _add_payments_checksum),
    ("0009_add_deploys_note", _add_deploys_note),
    ("0010_create_security_tables", _create_security_tables),
)

KNOWN_MIGRATIONS = (*SEEDED_MIGRATIONS, *(name for name, _ in LATER_MIGRATIONS))


@dataclass(frozen=True)
class MigrationStatus:
    """Applied migrations with their UTC times, and the known ones not yet applied."""

    applied: tuple[tuple[str, str], ...]
    pending: tuple[str, ...]


def migration_status(connection: sqlite3.Connection) -> MigrationStatus:
    """Read the ``migrations`` table and compare it with the known migrations."""
    rows = connection.execute(
        "SELECT name, applied_at FROM migrations ORDER BY name"
    ).fetchall()
    applied = tuple((str(name), str(applied_at)) for name, applied_at in rows)
    names = {name for name, _ in applied}
    pending = tuple(name for name in KNOWN_MIGRATIONS if name not in names)
    return MigrationStatus(applied, pending)


def apply_pending(connection: sqlite3.Connection) -> list[str]:
    """Apply the later migrations missing from the table, each in one transaction."""
    applied = []
    for name, migrate in LATER_MIGRATIONS:
        with write_transaction(connection):
            done = connection.execute(
                "SELECT 1 FROM migrations WHERE name = ?", (name,)
            ).fetchone()
            if done:
                continue
            migrate(connection)
            connection.execute(
                "INSERT INTO migrations (name, applied_at) VALUES (?, ?)",
                (name, iso(datetime.now(UTC))),
            )
        applied.append(name)
    return applied
