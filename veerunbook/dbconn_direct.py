"""A direct, timed connection to the target's database, journaled as checks.

PostgreSQL is reached through ``veerunbook.pg_collect.connect_timing``. A SQLite
file is opened read-only by ``veerunbook.sqlite_check``, which also checks its
integrity and whether a writer holds its lock. A SQLite path that is no regular
file is never opened, and the integrity and lock checks skip with its reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from veerunbook.errors import UsageError
from veerunbook.sqlite_check import SqliteReport, check_sqlite

if TYPE_CHECKING:
    from veerunbook.dbcheck import DatabaseUrl
    from veerunbook.pg_collect import ConnectResult
    from veerunbook.session import Session


def connect_postgres(
    session: Session, url: DatabaseUrl, timeout_s: float
) -> ConnectResult:
    """Connect, run ``SELECT 1`` and disconnect, timed; journal the outcome."""
    from veerunbook.pg_collect import ConnectResult, connect_timing

    try:
        result = connect_timing(url.dsn, timeout_s)
    except UsageError as exc:
        # The URL was parsed before, so this is unexpected; record it, do not raise.
        error = session.redactor.mask(str(exc))
        result = ConnectResult(ok=False, seconds=0.0, target=url.shown, error=error)
    milliseconds = round(result.seconds * 1000, 1)
    if result.ok:
        summary = (
            f"connected to {result.target} in {milliseconds:.0f} ms "
            f"(PostgreSQL {result.server_version})"
        )
    else:
        summary = (
            f"connecting to {result.target} failed after {milliseconds:.0f} ms "
            f"({result.kind}): {result.error}"
        )
    session.run.check(
        "direct connection",
        "pass" if result.ok else "fail",
        observed=milliseconds,
        unit="ms",
        evidence=result.to_dict(),
        summary=session.redactor.mask(summary),
    )
    return result


def check_sqlite_file(session: Session, path: Path, timeout_s: float) -> SqliteReport:
    """Open the SQLite file read-only, timed; check its integrity and write lock."""
    report = check_sqlite(path, timeout_s=timeout_s)
    run = session.run
    milliseconds = None if report.seconds is None else round(report.seconds * 1000, 2)
    if report.ok:
        summary = (
            f"opened {report.path} read-only in {milliseconds} ms (SQLite "
            f"{report.sqlite_version}, journal mode {report.journal_mode})"
        )
    else:
        summary = f"cannot read {report.path}: {report.error}"
    if report.notes:
        summary += "; " + "; ".join(report.notes)
    run.check(
        "direct connection",
        "pass" if report.ok else "fail",
        observed=milliseconds,
        unit="ms",
        evidence=report.to_dict(),
        summary=summary,
    )
    if not report.opened:
        reason = f"not run, because the file was not opened: {report.error}"
        run.check(f"sqlite {report.integrity_check}", "skip", summary=reason)
        run.check("sqlite write lock", "skip", summary=reason)
        return report
    if report.integrity_ok is not None:
        run.check(
            f"sqlite {report.integrity_check}",
            "pass" if report.integrity_ok else "fail",
            observed=len(report.integrity) if not report.integrity_ok else 0,
            unit="problems",
            evidence=report.integrity,
            summary="ok" if report.integrity_ok else "; ".join(report.integrity[:3]),
        )
    if report.ok:
        run.check(
            "sqlite write lock",
            {"free": "pass", "held": "warn"}.get(report.lock, "skip"),
            observed=report.lock,
            summary=report.lock_detail,
        )
    return report
