"""The migration step of the database-connection procedure, journaled as checks.

With a ``db_status`` command in the target's configuration, that command is run
(bounded and masked by ``veerunbook.migration_command``) because it is what the team
already uses. Without one, the migration tables are read directly and read-only
(``veerunbook.db_migrations``), from SQLite or PostgreSQL. A SQLite path that is
no regular file, or a file beside it that makes reading unsafe, is not opened: the
step skips with that reason.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from veerunbook.db_migrations import Migrations, postgres_migrations, sqlite_migrations
from veerunbook.migration_command import read_status_output, run_command

if TYPE_CHECKING:
    from veerunbook.dbcheck import DatabaseUrl
    from veerunbook.session import Session

STATUS_COMMAND = "db_status"
# Output journaled as evidence: the end of it, where tools print their summary.
EVIDENCE_CHARS = 4000


def read_migration_status(
    session: Session, url: DatabaseUrl | None, timeout_s: float
) -> list[Migrations]:
    """Return and journal the migration status from the command or the tables."""
    command = session.target.commands.get(STATUS_COMMAND)
    if command:
        found = [_from_command(session, command, timeout_s)]
    elif url is not None and url.usable:
        found = _from_tables(session, url, timeout_s)
    else:
        reason = url.problem if url else "the database URL was not read"
        session.run.check(
            "migrations",
            "skip",
            summary=f"no {STATUS_COMMAND} command configured and {reason}",
        )
        return []
    for migrations in found:
        _check(session, migrations)
    return found


def _from_command(session: Session, command: str, timeout_s: float) -> Migrations:
    result = run_command(command, timeout_s=timeout_s, redactor=session.redactor)
    session.run.note(
        f"{STATUS_COMMAND} exited with {result.exit_code} in {result.seconds:g} s",
        command=result.to_dict() | {"output": result.output[-EVIDENCE_CHARS:]},
    )
    return read_status_output(result)


def _from_tables(
    session: Session, url: DatabaseUrl, timeout_s: float
) -> list[Migrations]:
    import psycopg

    try:
        if url.sqlite_path is not None:
            found = sqlite_migrations(url.sqlite_path, timeout_s=timeout_s)
        else:
            found = postgres_migrations(url.dsn, timeout_s=timeout_s)
    except OSError as exc:
        # sqlite_migrations raises it before opening anything: the path (or a file
        # beside it) is no regular file, or its header could not be read.
        reason = session.redactor.mask(str(exc))
        session.run.check(
            "migrations", "skip", summary=f"migration tables not read: {reason}"
        )
        return []
    except (sqlite3.Error, psycopg.Error) as exc:
        reason = session.redactor.mask(str(exc).strip().splitlines()[0])
        session.run.check(
            "migrations", "error", summary=f"migration tables unreadable: {reason}"
        )
        return []
    if not found:
        session.run.check(
            "migrations",
            "skip",
            summary="no migration table of drizzle, prisma, knex, golang-migrate, "
            "Rails, Sequelize, TypeORM, Flyway or Alembic in the database",
        )
    return found


def _check(session: Session, migrations: Migrations) -> None:
    problems = [*migrations.failed, *migrations.warnings]
    counts = f"{migrations.applied} applied" if migrations.applied is not None else ""
    if migrations.pending is not None:
        counts += f", {migrations.pending} pending"
    latest = f"latest {migrations.latest}" if migrations.latest else "latest unknown"
    if migrations.latest_applied_at:
        latest += f" at {migrations.latest_applied_at}"
    summary = ", ".join(part for part in (counts.strip(", "), latest) if part)
    if problems:
        summary += "; " + "; ".join(problems[:3])
    session.run.check(
        f"migrations ({migrations.tool})",
        migrations.status,
        observed=migrations.applied,
        unit="applied",
        evidence=migrations.to_dict(),
        summary=session.redactor.mask(summary),
    )
