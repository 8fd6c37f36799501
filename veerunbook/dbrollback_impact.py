"""The data a restore replaces: the backup's age and the live rows per table.

A restore replaces every table with the backup's copy, so whatever was written after
the backup was made is lost. The backup is chosen as the newest one made before the
corruption began, and ``corrupted_since`` defaults to the run's start, so the plan
states that assumption and, per table, the live row count against the manifest's.
Row counts and digests show added, dropped and changed data, but not which rows:
a table with equal counts and a different digest has changed rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from veerunbook.backup_manifest import Manifest, TableDigests, parse_time
from veerunbook.dbrollback_db import Database
from veerunbook.redact import Redactor
from veerunbook.text import counted


def assumption_line(corrupted_since: str, since: datetime) -> str:
    """Return the time the corruption is taken to have begun, and where it is from."""
    moment = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    if corrupted_since:
        return f"corruption start: {moment} (-p corrupted_since)"
    return (
        f"corruption start assumed: now ({moment}), because corrupted_since is empty; "
        "give -p corrupted_since TIME to choose a backup from before the damage"
    )


def age_text(created_at: str, now: datetime) -> str:
    """Return the age of a backup made at ``created_at``, such as ``3 h 5 min``."""
    made = parse_time(created_at)
    if made is None:
        return f"unknown (invalid time {created_at!r})"
    minutes = max(0, int((now - made).total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def count_impact(
    database: Database | None, manifest: Manifest, timeout_s: float, redactor: Redactor
) -> tuple[list[dict[str, Any]], str]:
    """Count the live rows against ``manifest``; return the rows and one line."""
    if database is None:
        return [], (
            "the live rows were not counted: no database URL is usable, so what "
            "the restore drops is unknown"
        )
    try:
        live = database.digests(timeout_s)
    except Exception as exc:
        # A database that cannot be read leaves the impact unknown, not the run failed.
        problem = redactor.mask(f"{type(exc).__name__}: {exc}")
        return [], f"the live rows were not counted: {problem}"
    rows = impact_rows(live, manifest)
    return rows, impact_line(rows)


def impact_rows(live: TableDigests, manifest: Manifest) -> list[dict[str, Any]]:
    """Return per table the live rows, the backup's rows and what the restore does."""
    rows = []
    for table in sorted(set(live) | set(manifest.tables)):
        found, recorded = live.get(table), manifest.tables.get(table)
        live_rows = found.get("rows") if found else None
        backup_rows = recorded.get("rows") if recorded else None
        rows.append(
            {
                "table": table,
                "live rows": live_rows,
                "backup rows": backup_rows,
                "restore": _effect(found, recorded),
            }
        )
    return rows


def impact_line(rows: list[dict[str, Any]]) -> str:
    """Return the tables that the restore changes in one line, or that none change."""
    changed = [row for row in rows if row["restore"] != "unchanged"]
    if not changed:
        return f"the restore changes none of the {len(rows)} tables"
    parts = [
        f"{row['table']}: {row['restore']} (live {row['live rows']},"
        f" backup {row['backup rows']})"
        for row in changed
    ]
    return "the restore changes " + "; ".join(parts)


def _effect(found: dict[str, Any] | None, recorded: dict[str, Any] | None) -> str:
    if found is None:
        return "adds the table"
    if recorded is None:
        return "not in the backup: SQLite's restore drops it, pg_restore keeps it"
    live_rows, backup_rows = found.get("rows"), recorded.get("rows")
    if not isinstance(live_rows, int) or not isinstance(backup_rows, int):
        return "unknown (no row count)"
    if live_rows > backup_rows:
        return f"drops {counted(live_rows - backup_rows, 'row')}"
    if live_rows < backup_rows:
        return f"adds {counted(backup_rows - live_rows, 'row')}"
    if found.get("sha256") != recorded.get("sha256"):
        return "same row count, changed rows"
    return "unchanged"
