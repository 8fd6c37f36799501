"""What the PostgreSQL checks report for roles with too few privileges, on a real
cluster on loopback.

The application role veefore_app is not a member of pg_monitor, so pg_stat_activity
hides the type, state and query of other roles' sessions from it. The role
veerunbook_monitor is a member of pg_monitor but has no SELECT on the migration
tables. Both must get "unknown" with the grant to run, never a pass.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.pgcluster import PgCluster
from veerunbook.db_migrations import Migrations, postgres_migrations
from veerunbook.dbconn_pg import analyse, idle_table, long_running_table
from veerunbook.pg_activity import by_state, capacity, idle_in_transaction
from veerunbook.pg_collect import collect
from veerunbook.pg_diagnose import Finding, diagnose
from veerunbook.pg_snapshot import Snapshot
from veerunbook.triage_tables import Nothing

Conn = psycopg.Connection[Any]

WORKER = "billing_worker"
MONITOR = "veerunbook_monitor"
HIDDEN_NOTE = re.compile(
    r"^unknown: \d+ of \d+ sessions are hidden from role veefore_app; grant "
    r"pg_monitor \(GRANT pg_monitor TO veefore_app\) to see them\. "
)


def role_dsn(pg_cluster: PgCluster, user: str, password: str, **extra: str) -> str:
    return make_conninfo(pg_cluster.app_dsn, user=user, password=password, **extra)


@pytest.fixture(scope="module")
def roles(pg_cluster: PgCluster) -> Iterator[dict[str, str]]:
    """DSNs of a worker role that opens sessions and of a pg_monitor member."""
    passwords = {WORKER: secrets.token_urlsafe(12), MONITOR: secrets.token_urlsafe(12)}
    with pg_cluster.open_admin() as admin:
        for role, password in passwords.items():
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
        admin.execute(f"GRANT SELECT, UPDATE ON workspaces TO {WORKER}")
        admin.execute(f"GRANT pg_monitor TO {MONITOR}")
    yield {role: role_dsn(pg_cluster, role, pw) for role, pw in passwords.items()}
    with pg_cluster.open_admin() as admin:
        admin.execute(f"REVOKE ALL ON workspaces FROM {WORKER}")
        for role in passwords:
            admin.execute(f"DROP ROLE {role}")


def sleep_in_thread(conn: Conn) -> threading.Thread:
    """Run a 60 s query on ``conn`` in a thread; a cancel ends it early."""

    def work() -> None:
        with suppress(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(60)")

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def snapshots(
    pg_cluster: PgCluster, roles: dict[str, str]
) -> Iterator[dict[str, Snapshot]]:
    """Snapshots read by veefore_app and by the pg_monitor member while the worker
    role has 3 sessions idle in transaction and runs one long query.
    """
    with pg_cluster.open_admin() as admin:
        assert pg_cluster.wait_until_quiet(admin)
    with ExitStack() as stack:
        for _ in range(3):
            idle = stack.enter_context(
                psycopg.connect(roles[WORKER], application_name="billing-idle")
            )
            idle.execute("SELECT credits FROM workspaces WHERE id = 'ws_1'")
        sleeper = stack.enter_context(
            psycopg.connect(
                roles[WORKER], application_name="billing-report", autocommit=True
            )
        )
        thread = sleep_in_thread(sleeper)
        assert pg_cluster.wait_for(
            "SELECT count(*) = 1 FROM pg_stat_activity"
            " WHERE application_name = 'billing-report' AND state = 'active'"
            " AND now() - query_start > interval '1 second'"
        )
        read = {
            "app": collect(pg_cluster.app_dsn),
            "monitor": collect(roles[MONITOR]),
        }
        sleeper.cancel_safe()
        thread.join(10)
    yield read


def findings(snap: Snapshot) -> dict[str, Finding]:
    return {finding.name: finding for finding in diagnose(snap)}


def worker_pids(snap: Snapshot) -> set[int]:
    return {b.pid for b in snap.backends if b.usename == WORKER}


def test_app_role_is_recorded(snapshots: dict[str, Snapshot]) -> None:
    assert snapshots["app"].role == "veefore_app"


def test_worker_sessions_hidden(snapshots: dict[str, Snapshot]) -> None:
    snap = snapshots["app"]
    hidden = {backend.pid for backend in snap.hidden_clients()}
    assert len(worker_pids(snap)) == 4
    assert worker_pids(snap) <= hidden


def test_own_session_visible(snapshots: dict[str, Snapshot]) -> None:
    snap = snapshots["app"]
    assert snap.own_pid not in {backend.pid for backend in snap.hidden()}


@pytest.mark.parametrize(
    "name",
    [
        "connection limit",
        "idle in transaction",
        "long-running queries",
        "recommended actions",
    ],
)
def test_blind_role_never_passes(snapshots: dict[str, Snapshot], name: str) -> None:
    finding = findings(snapshots["app"])[name]
    assert finding.status == "warn"
    assert HIDDEN_NOTE.match(finding.summary), finding.summary


def test_blind_capacity_counts_all_rows(snapshots: dict[str, Snapshot]) -> None:
    snap = snapshots["app"]
    cap = capacity(snap)
    assert cap.sessions == len(snap.backends)
    assert cap.client_backends == 1
    assert cap.hidden >= 4


def test_blind_lock_graph_passes(snapshots: dict[str, Snapshot]) -> None:
    finding = findings(snapshots["app"])["lock blocking"]
    assert finding.status == "pass"
    assert "pg_blocking_pids covers" in finding.summary


def test_blind_tables_say_unknown(snapshots: dict[str, Snapshot]) -> None:
    activity = analyse(snapshots["app"])
    for table in (idle_table(activity), long_running_table(activity)):
        assert isinstance(table, Nothing)
        assert table.message.startswith("among the visible sessions, no ")
        assert "grant pg_monitor (GRANT pg_monitor TO veefore_app)" in table.message


def test_monitor_sees_every_session(snapshots: dict[str, Snapshot]) -> None:
    snap = snapshots["monitor"]
    assert snap.hidden() == []
    assert snap.hidden_note() is None


def test_monitor_counts_worker_sessions(snapshots: dict[str, Snapshot]) -> None:
    snap = snapshots["monitor"]
    idle = idle_in_transaction(snap).application("billing-idle")
    assert idle is not None
    assert idle.count == 3
    assert by_state(snap).counts["idle in transaction"] == 3
    assert capacity(snap).client_backends == 5


@pytest.fixture(scope="module")
def migrations_db(pg_cluster: PgCluster, roles: dict[str, str]) -> Iterator[str]:
    """A database whose migration tables veerunbook_monitor may not read: a
    golang-migrate table without SELECT, and an alembic table in a schema without
    USAGE. Returns the monitor's DSN for it.
    """
    name = "privileges_check"
    with pg_cluster.open_admin() as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    admin_dsn = make_conninfo(pg_cluster.admin_dsn, dbname=name)
    with psycopg.connect(admin_dsn, autocommit=True) as db:
        db.execute(
            "CREATE TABLE schema_migrations (version bigint PRIMARY KEY,"
            " dirty boolean NOT NULL)"
        )
        db.execute("INSERT INTO schema_migrations VALUES (42, false)")
        db.execute("CREATE SCHEMA private")
        db.execute("CREATE TABLE private.alembic_version (version_num varchar(32))")
    yield make_conninfo(roles[MONITOR], dbname=name)
    with pg_cluster.open_admin() as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def by_source(found: list[Migrations]) -> dict[str, Migrations]:
    return {migrations.source: migrations for migrations in found}


def test_unreadable_table_is_found(migrations_db: str) -> None:
    found = by_source(postgres_migrations(migrations_db))
    assert sorted(found) == ["private.alembic_version", "public.schema_migrations"]


def test_unreadable_table_warns(migrations_db: str) -> None:
    found = by_source(postgres_migrations(migrations_db))["public.schema_migrations"]
    assert found.tool == "golang-migrate"
    assert found.status == "warn"
    assert found.latest is None
    assert found.warnings == (
        "permission denied on public.schema_migrations: role veerunbook_monitor "
        "lacks SELECT on it, so its state is unknown; run GRANT SELECT ON "
        "public.schema_migrations TO veerunbook_monitor",
    )


def test_schema_without_usage_warns(migrations_db: str) -> None:
    found = by_source(postgres_migrations(migrations_db))["private.alembic_version"]
    assert found.tool == "alembic"
    assert found.warnings == (
        "permission denied on private.alembic_version: role veerunbook_monitor "
        "lacks USAGE on its schema and SELECT on it, so its state is unknown; run "
        "GRANT USAGE ON SCHEMA private TO veerunbook_monitor; GRANT SELECT ON "
        "private.alembic_version TO veerunbook_monitor",
    )


def test_granted_table_is_read(pg_cluster: PgCluster, migrations_db: str) -> None:
    admin_dsn = make_conninfo(pg_cluster.admin_dsn, dbname="privileges_check")
    with psycopg.connect(admin_dsn, autocommit=True) as db:
        db.execute(f"GRANT SELECT ON public.schema_migrations TO {MONITOR}")
    try:
        found = by_source(postgres_migrations(migrations_db))
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as db:
            db.execute(f"REVOKE SELECT ON public.schema_migrations FROM {MONITOR}")
    assert found["public.schema_migrations"].latest == "42"
    assert found["public.schema_migrations"].status == "pass"
