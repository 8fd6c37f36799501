"""Snapshots shared by the tests of the pg_* analyses.

``exhaustion_snapshot`` reads the pg-connection-exhaustion case. That snapshot was
taken at 2026-12-04 14:50:00 UTC by the runbook's own superuser session (pid 43290,
role postgres) on a PostgreSQL 16 server with max_connections 100. The expected
numbers in the tests were counted in the fixture's CSV files.

``backend`` and ``snapshot_of`` build small hand-made snapshots for edge cases.
``hidden_backend`` builds a row as PostgreSQL 15 shows another role's session to a
role without pg_monitor: pid, role, application_name and pg_blocking_pids only.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from veerunbook.pg_snapshot import (
    INSUFFICIENT_PRIVILEGE,
    Backend,
    PgSettings,
    Snapshot,
    backends_from_rows,
)

FIXTURES = Path(__file__).parent / "fixtures" / "pg-connection-exhaustion"
TAKEN_AT = datetime(2026, 12, 4, 14, 50, tzinfo=UTC)
OWN_PID = 43290

# Settings of the hand-made snapshots: PostgreSQL 15, max_connections 20, 3 reserved.
SETTINGS = PgSettings("15.18", 20, 3)


def read_csv(name: str) -> list[dict[str, str]]:
    with (FIXTURES / name).open(newline="") as stream:
        return list(csv.DictReader(stream))


def exhaustion_snapshot() -> Snapshot:
    """Read the pg-connection-exhaustion snapshot from its CSV files."""
    settings = PgSettings.from_rows(read_csv("settings.csv"))
    backends = backends_from_rows(
        read_csv("pg_stat_activity.csv"), superuser_roles={"postgres"}
    )
    return Snapshot(TAKEN_AT, settings, tuple(backends), own_pid=OWN_PID)


def backend(pid: int, blocked_by: tuple[int, ...] = (), **fields: Any) -> Backend:
    start = TAKEN_AT - timedelta(minutes=2)
    values: dict[str, Any] = {
        "pid": pid,
        "usename": "veefore_app",
        "application_name": "veefore-api",
        "client_addr": "192.0.2.11",
        "backend_type": "client backend",
        "state": "active" if blocked_by else "idle in transaction",
        "backend_start": start,
        "xact_start": start,
        "query_start": start,
        "state_change": start,
        "wait_event_type": "Lock" if blocked_by else "Client",
        "wait_event": "transactionid" if blocked_by else "ClientRead",
        "blocked_by": blocked_by,
        "query": "UPDATE workspaces SET credits = credits - 1",
        "superuser": False,
    }
    values.update(fields)
    return Backend(**values)


def hidden_backend(
    pid: int, blocked_by: tuple[int, ...] = (), usename: str | None = "billing"
) -> Backend:
    return Backend(
        pid=pid,
        usename=usename,
        application_name="",
        client_addr=None,
        backend_type="",
        state=None,
        backend_start=None,
        xact_start=None,
        query_start=None,
        state_change=None,
        wait_event_type=None,
        wait_event=None,
        blocked_by=blocked_by,
        query=INSUFFICIENT_PRIVILEGE,
        superuser=False if usename else None,
    )


def snapshot_of(*backends: Backend, role: str | None = None) -> Snapshot:
    return Snapshot(TAKEN_AT, SETTINGS, backends, role=role)
