"""Operations on a simulator's data directory, the runbook's npm scripts in Python.

    python -m veerunbook.simulator.ops --data-dir DIR OPERATION [ARGUMENT]

They act on the SQLite file of a running or stopped simulator, and a running
service reads their changes on its next request. Each one replaces an npm script
of the runbook:

    db-status              npm run db:status           migrations applied and pending
    deploy-rollback VER    npm run deploy:rollback     make version VER current again
    db-backup NAME         npm run db:backup           online backup with a manifest
    db-restore NAME        npm run db:restore          restore a backup that matches
    db-validate            npm run db:validate         integrity_check and payments
    security-audit         npm run security:audit      blocked IPs, high-severity events
    db-backups             (none)                      list the backups, newest first
    traffic MODE           (none)                      stopped, health-only,
                                                       read-only or full

Exit codes: 0 done and nothing found; 1 findings (invalid rows, privilege escalation
attempts); 2 invalid usage or a rejected request, nothing changed; 3 the operation
failed on a database or file error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from veerunbook.errors import UsageError
from veerunbook.simulator import backups, releases
from veerunbook.simulator.integrity import (
    count_payments,
    find_invalid_payments,
    summarise_findings,
)
from veerunbook.simulator.maintenance import write_mode
from veerunbook.simulator.migrations import migration_status
from veerunbook.simulator.seed import iso
from veerunbook.simulator.state import DATABASE_FILENAME

BUSY_TIMEOUT_SECONDS = 10.0
RECENT_EVENTS = 20

# Each operation takes the database path and its argument, empty when it has none.
Operation = Callable[[Path, str], int]


def _require_database(database: Path) -> None:
    if not database.is_file():
        raise UsageError(
            f"no simulator database at {database}: start the simulator with this "
            "data directory first"
        )


def _connect(database: Path) -> sqlite3.Connection:
    _require_database(database)
    # mode=rw never creates a missing file.
    uri = f"{database.resolve().as_uri()}?mode=rw"
    return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS)


def db_status(database: Path, argument: str) -> int:
    """Print the applied and pending migrations and the current version."""
    with contextlib.closing(_connect(database)) as connection:
        status = migration_status(connection)
        version = releases.current_version(connection)
    print(f"Migrations: {len(status.applied)} applied, {len(status.pending)} pending")
    for name, applied_at in status.applied:
        print(f"  applied  {name}  {applied_at}")
    for name in status.pending:
        print(f"  pending  {name}")
    print(f"Current version: {version}")
    return 0


def deploy_rollback(database: Path, version: str) -> int:
    """Make ``version`` the current version again."""
    with contextlib.closing(_connect(database)) as connection:
        result = releases.rollback(connection, version)
    if result.changed:
        print(f"Rolled back from {result.previous} to {result.current}.")
    else:
        print(f"{version} is the current version already; nothing changed.")
    return 0


def db_backup(database: Path, name: str) -> int:
    """Back the database up as ``name`` with its manifest."""
    _require_database(database)
    manifest = backups.create_backup(database, name)
    folder = backups.backups_dir(database)
    valid = "pass" if manifest.payments_valid else "fail"
    print(
        f"Backup {name} written to {folder / (name + '.sqlite3')} "
        f"({manifest.size_bytes} bytes, SHA-256 {manifest.sha256[:12]}); "
        f"payments validation: {valid}."
    )
    return 0


def db_restore(database: Path, name: str) -> int:
    """Restore backup ``name`` after checking it against its manifest."""
    _require_database(database)
    manifest = backups.restore_backup(database, name)
    print(f"Restored backup {name} made at {manifest.created_at} into {database}.")
    return 0


def db_validate(database: Path, argument: str) -> int:
    """Run ``PRAGMA integrity_check`` and validate the payments rows."""
    with contextlib.closing(_connect(database)) as connection:
        problems = [str(row[0]) for row in connection.execute("PRAGMA integrity_check")]
        findings = find_invalid_payments(connection)
        checked = count_payments(connection)
    print(f"integrity_check: {'; '.join(problems)}")
    print(f"payments: {summarise_findings(findings, checked)}")
    for finding in findings:
        print(
            f"  payment {finding.payment_id}: amount_cents {finding.amount_cents}, "
            f"{', '.join(finding.problems)}"
        )
    return 0 if problems == ["ok"] and not findings else 1


def security_audit(database: Path, argument: str) -> int:
    """Print blocked IPs and high-severity events as JSON; 1 on escalation attempts."""
    with contextlib.closing(_connect(database)) as connection:
        connection.row_factory = sqlite3.Row
        summary = _security_summary(connection)
    print(json.dumps(summary, indent=2))
    return 1 if summary["privilegeEscalationAttempts"] else 0


def _security_summary(connection: sqlite3.Connection) -> dict[str, Any]:
    blocked = [
        {"ip": row["ip"], "reason": row["reason"], "blockedAt": row["blocked_at"]}
        for row in connection.execute(
            "SELECT ip, reason, blocked_at FROM blocked_ips ORDER BY blocked_at"
        )
    ]
    minute_ago = iso(datetime.now(UTC) - timedelta(minutes=1))
    events = [
        dict(row)
        for row in connection.execute(
            "SELECT time, type, ip, severity, detail FROM security_events"
            " WHERE severity = 'high' ORDER BY time DESC, id DESC"
        )
    ]
    by_type: dict[str, int] = {}
    for event in events:
        by_type[event["type"]] = by_type.get(event["type"], 0) + 1
    escalations = [e for e in events if e["type"] == "privilege_escalation_attempt"]
    return {
        "blockedIps": {
            "total": len(blocked),
            "lastMinute": sum(entry["blockedAt"] >= minute_ago for entry in blocked),
            "addresses": blocked,
        },
        "highSeverityEvents": {
            "total": len(events),
            "byType": by_type,
            "latest": events[:RECENT_EVENTS],
        },
        "privilegeEscalationAttempts": escalations,
    }


def db_backups(database: Path, argument: str) -> int:
    """Print the backups' names, times, sizes and validation results as JSON."""
    _require_database(database)
    listed = [
        {
            "name": manifest.name,
            "createdAt": manifest.created_at,
            "sizeBytes": manifest.size_bytes,
            "paymentsValid": manifest.payments_valid,
        }
        for manifest in backups.list_backups(database)
    ]
    print(json.dumps(listed, indent=2))
    return 0


def traffic(database: Path, mode: str) -> int:
    """Set the traffic mode: stopped, health-only, read-only or full."""
    _require_database(database)
    state = write_mode(database.parent, mode)
    print(f"Traffic mode {state.mode} since {state.since}.")
    return 0


# Operation name -> (function, name of its argument or None).
OPERATIONS: dict[str, tuple[Operation, str | None]] = {
    "db-status": (db_status, None),
    "deploy-rollback": (deploy_rollback, "version"),
    "db-backup": (db_backup, "name"),
    "db-restore": (db_restore, "name"),
    "db-validate": (db_validate, None),
    "security-audit": (security_audit, None),
    "db-backups": (db_backups, None),
    "traffic": (traffic, "mode"),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the parser: ``--data-dir`` and one subcommand per operation."""
    parser = argparse.ArgumentParser(
        prog="python -m veerunbook.simulator.ops",
        description="Operate on the simulated VeeFore service's data directory.",
    )
    parser.add_argument(
        "--data-dir",
        required=True,
        type=Path,
        help="Data directory the simulator was started with.",
    )
    commands = parser.add_subparsers(dest="operation", required=True)
    for name, (function, argument) in OPERATIONS.items():
        command = commands.add_parser(
            name, help=(function.__doc__ or "").split("\n")[0]
        )
        if argument is not None:
            command.add_argument(argument)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one operation and return its exit code."""
    args = build_parser().parse_args(argv)
    function, argument = OPERATIONS[args.operation]
    database = Path(args.data_dir) / DATABASE_FILENAME
    value = getattr(args, argument) if argument else ""
    try:
        return function(database, value)
    except UsageError as exc:
        print(f"{args.operation}: {exc}", file=sys.stderr)
        return 2
    except (sqlite3.Error, OSError) as exc:
        print(f"{args.operation} failed: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
