"""Tests of veerunbook.pg_collect against a real PostgreSQL cluster on loopback.

Each test creates its condition with real connections (threads for the sessions that
block), collects a snapshot as the superuser and checks what the analyses find. The
cluster has max_connections 20 and superuser_reserved_connections 3.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tests.pgcluster import PgCluster
from veerunbook.errors import DatabaseUnavailable, UsageError
from veerunbook.pg_activity import capacity, idle_in_transaction
from veerunbook.pg_collect import collect, connect_timing, slow_statements
from veerunbook.pg_diagnose import diagnose
from veerunbook.pg_errors import (
    AUTHENTICATION_FAILED,
    CONNECTION_LIMIT,
    CONNECTION_REFUSED,
    TIMEOUT,
)
from veerunbook.pg_locks import lock_waits, long_running

Conn = psycopg.Connection[Any]


@pytest.fixture
def quiet(pg_cluster: PgCluster) -> Iterator[Conn]:
    """A superuser session, returned once it is the only client backend left."""
    with pg_cluster.open_admin() as admin:
        assert pg_cluster.wait_until_quiet(admin)
        yield admin


def run_in_thread(conn: Conn, query: str) -> threading.Thread:
    """Run ``query`` on ``conn`` in a thread. An error, such as a cancel, ends it."""

    def work() -> None:
        try:
            conn.execute(query)
        except psycopg.Error:
            pass
        finally:
            conn.rollback()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_idle_in_transaction_sessions(pg_cluster: PgCluster, quiet: Conn) -> None:
    with ExitStack() as stack:
        for _ in range(3):
            conn = stack.enter_context(pg_cluster.open_app("veefore-api"))
            conn.execute("SELECT credits FROM workspaces WHERE id = 'ws_2'")
        time.sleep(1.2)
        snap = collect(pg_cluster.admin_dsn)

    idle = idle_in_transaction(snap, older_than=timedelta(seconds=1))
    api = idle.application("veefore-api")
    assert api is not None
    assert api.count == 3
    assert api.older == 3
    assert api.min_age is not None
    assert api.min_age >= timedelta(seconds=1.2)


def test_settings_and_own_session(pg_cluster: PgCluster, quiet: Conn) -> None:
    snap = collect(pg_cluster.admin_dsn, application_name="runbook-check")
    own = next(b for b in snap.backends if b.pid == snap.own_pid)
    assert snap.settings.max_connections == 20
    assert snap.settings.superuser_reserved_connections == 3
    assert snap.settings.reserved_connections == 0
    assert own.application_name == "runbook-check"
    assert own.superuser is True
    assert snap.taken_at.tzinfo is not None


def test_blocking_lock_chain(pg_cluster: PgCluster, quiet: Conn) -> None:
    update = "UPDATE workspaces SET credits = credits - 1 WHERE id = 'ws_1'"
    holder = pg_cluster.open_app("billing-admin")
    waiters: list[Conn] = []
    threads: list[threading.Thread] = []
    holder_pid = holder.info.backend_pid
    try:
        holder.execute(update)
        for _ in range(3):
            waiters.append(pg_cluster.open_app("veefore-api"))
            threads.append(run_in_thread(waiters[-1], update))
        assert pg_cluster.wait_for(
            "SELECT count(*) = 3 FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
            conn=quiet,
        )
        snap = collect(pg_cluster.admin_dsn)
    finally:
        # The rollback releases the row, so the waiting threads can finish.
        holder.rollback()
        for thread in threads:
            thread.join(10)
        for waiter in waiters:
            waiter.close()
        holder.close()

    locks = lock_waits(snap)
    assert len(locks.waiters) == 3
    assert [root.pid for root in locks.roots] == [holder_pid]
    assert locks.roots[0].application_name == "billing-admin"
    assert locks.roots[0].state == "idle in transaction"
    assert locks.roots[0].blocks_total == 3
    assert locks.roots[0].blocks_directly >= 1
    assert all(not thread.is_alive() for thread in threads)
    assert holder_pid not in {w.pid for w in locks.waiters}


def test_long_query_found(pg_cluster: PgCluster, quiet: Conn) -> None:
    with pg_cluster.open_app("metrics-worker", autocommit=True) as worker:
        thread = run_in_thread(worker, "SELECT pg_sleep(60)")
        try:
            assert pg_cluster.wait_for(
                "SELECT count(*) = 1 FROM pg_stat_activity"
                " WHERE application_name = 'metrics-worker'"
                " AND now() - query_start > interval '1 second'",
                conn=quiet,
            )
            snap = collect(pg_cluster.admin_dsn)
        finally:
            worker.cancel_safe()
            thread.join(10)

    queries = long_running(snap, min_duration=timedelta(seconds=1)).queries
    assert [query.application_name for query in queries] == ["metrics-worker"]
    assert queries[0].query == "SELECT pg_sleep(60)"
    assert snap.own_pid not in {query.pid for query in queries}


def open_app_when_free(pg_cluster: PgCluster) -> Conn:
    """Open an application session, retrying while a closed one still occupies a slot.

    A backend leaves its slot a moment after the client closes the connection.
    """
    deadline = time.monotonic() + 10
    while True:
        try:
            return pg_cluster.open_app("veefore-api")
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_connection_limit(pg_cluster: PgCluster, quiet: Conn) -> None:
    usable = pg_cluster.max_connections - pg_cluster.superuser_reserved
    with ExitStack() as stack:
        for _ in range(14):
            stack.enter_context(pg_cluster.open_app("veefore-api"))
        nearly = collect(pg_cluster.admin_dsn)
        # The quiet session takes a slot too: close it before taking the last ones.
        quiet.close()
        for _ in range(usable - 14):
            stack.enter_context(open_app_when_free(pg_cluster))
        rejected = connect_timing(pg_cluster.app_dsn)
        full = collect(pg_cluster.admin_dsn)

    assert diagnose(nearly)[0].status == "warn"
    assert rejected.ok is False
    assert rejected.kind == CONNECTION_LIMIT
    assert rejected.sqlstate == "53300"
    cap = capacity(full)
    assert cap.max_connections == 20
    assert cap.reserved == 3
    assert cap.usable == 17
    assert cap.app_backends == 17
    assert cap.superuser_backends == 1
    assert cap.client_backends == 18
    assert cap.utilisation == 1.0
    assert cap.full
    assert diagnose(full)[0].status == "fail"


def test_connect_timing_ok(pg_cluster: PgCluster) -> None:
    result = connect_timing(pg_cluster.app_dsn)
    assert result.ok
    assert result.kind is None
    assert result.server_version is not None
    assert result.seconds > 0


def test_wrong_password(
    pg_cluster: PgCluster, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-" + pg_cluster.app_password[::-1]
    dsn = pg_cluster.app_dsn.replace(pg_cluster.app_password, wrong)
    with caplog.at_level(logging.DEBUG, logger="veerunbook"):
        result = connect_timing(dsn)
        with pytest.raises(DatabaseUnavailable) as raised:
            collect(dsn)
    assert result.kind == AUTHENTICATION_FAILED
    assert result.sqlstate == "28P01"
    assert raised.value.error_class.kind == AUTHENTICATION_FAILED
    assert raised.value.__cause__ is None
    assert wrong not in repr(result)
    assert wrong not in str(raised.value)
    assert wrong not in caplog.text
    assert "veefore_app@127.0.0.1" in str(raised.value)


def test_invalid_dsn_is_masked() -> None:
    secret = "hunter22-not-real"
    with pytest.raises(UsageError) as raised:
        collect(f"postgresql://app:{secret}@[::1/veefore")
    assert secret not in str(raised.value)
    assert "invalid database DSN" in str(raised.value)


def test_closed_port_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    result = connect_timing(f"postgresql://app:pw-not-real@127.0.0.1:{port}/veefore")
    assert result.kind == CONNECTION_REFUSED
    assert result.ok is False


def test_silent_server_times_out() -> None:
    # The kernel completes the TCP handshake for the backlog, but the socket is never
    # accepted, so no PostgreSQL response ever comes.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        dsn = f"postgresql://app:pw-not-real@127.0.0.1:{port}/veefore"
        results = []
        thread = threading.Thread(target=lambda: results.append(connect_timing(dsn, 2)))
        thread.start()
        thread.join(30)  # a guard against a hang, far above the 2 s timeout
    assert not thread.is_alive()
    assert results[0].kind == TIMEOUT


def test_slow_statements(pg_cluster: PgCluster) -> None:
    assert pg_cluster.has_pg_stat_statements, "pg_stat_statements.so is missing"
    with pg_cluster.open_app("reports", autocommit=True) as conn:
        conn.execute("SELECT pg_sleep(0.05), count(*) FROM workspaces")
    found = slow_statements(pg_cluster.admin_dsn, limit=5)
    assert found.available
    assert len(found.statements) <= 5
    assert any("pg_sleep" in (s.query or "") for s in found.statements)


def test_slow_statements_without_extension(pg_cluster: PgCluster) -> None:
    dsn = pg_cluster.admin_dsn.rsplit("/", 1)[0] + "/postgres"
    found = slow_statements(dsn)
    assert not found.available
    assert found.statements == ()
    assert found.reason is not None
    assert "CREATE EXTENSION pg_stat_statements" in found.reason
