"""Tests of veerunbook.pg_activity on the pg-connection-exhaustion snapshot.

The snapshot was taken at 2026-12-04 14:50:00 UTC by the runbook's own superuser
session (pid 43290, role postgres) on a PostgreSQL 16 server with max_connections 100.
The expected numbers were counted in the fixture's CSV files.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from veerunbook.pg_activity import (
    Backend,
    PgSettings,
    Snapshot,
    backends_from_rows,
    by_state,
    capacity,
    diagnose,
    format_age,
    idle_in_transaction,
    lock_waits,
    long_running,
    recommendations,
)

FIXTURES = Path(__file__).parent / "fixtures" / "pg-connection-exhaustion"
TAKEN_AT = datetime(2026, 12, 4, 14, 50, tzinfo=UTC)
OWN_PID = 43290


def read_csv(name: str) -> list[dict[str, str]]:
    with (FIXTURES / name).open(newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope="module")
def snap() -> Snapshot:
    settings = PgSettings.from_rows(read_csv("settings.csv"))
    backends = backends_from_rows(
        read_csv("pg_stat_activity.csv"), superuser_roles={"postgres"}
    )
    return Snapshot(TAKEN_AT, settings, tuple(backends), own_pid=OWN_PID)


def test_settings_from_csv(snap: Snapshot) -> None:
    assert snap.settings == PgSettings(
        server_version="16.4",
        max_connections=100,
        superuser_reserved_connections=3,
        reserved_connections=0,
        idle_in_transaction_session_timeout_ms=0,
    )


def test_snapshot_row_count(snap: Snapshot) -> None:
    assert len(snap.backends) == 104


def test_capacity_counts_client_backends(snap: Snapshot) -> None:
    cap = capacity(snap)
    assert cap.client_backends == 98
    assert cap.max_connections == 100
    assert cap.reserved == 3
    assert cap.usable == 97
    assert cap.superuser_backends == 1
    assert cap.app_backends == 97
    assert cap.utilisation == 1.0
    assert cap.full


def test_states_of_client_backends(snap: Snapshot) -> None:
    states = by_state(snap)
    assert states.total == 98
    assert states.counts["idle in transaction"] == 47
    assert states.counts["active"] == 25
    assert states.counts["idle"] == 23
    assert states.counts["idle in transaction (aborted)"] == 3


def test_active_split_without_own(snap: Snapshot) -> None:
    states = by_state(snap)
    assert states.active == 25
    assert states.active_without_own == 24
    assert states.running == 10
    assert states.waiting_on_lock == 14


def test_sessions_inside_transaction(snap: Snapshot) -> None:
    states = by_state(snap)
    assert states.in_transaction == 50
    assert round(states.in_transaction_share * 100) == 51


def test_idle_in_transaction_api(snap: Snapshot) -> None:
    api = idle_in_transaction(snap).application("veefore-api")
    assert api is not None
    assert api.count == 46
    assert api.older == 41
    assert format_age(api.min_age) == "2 min 7 s"
    assert format_age(api.max_age) == "46 min 15 s"
    assert api.aborted == 3


def test_idle_in_transaction_order(snap: Snapshot) -> None:
    idle = idle_in_transaction(snap)
    assert [app.application_name for app in idle.by_application] == [
        "veefore-api",
        "psql",
    ]
    assert idle.count == 47
    assert idle.sessions[0].pid == 41109
    assert idle.sessions[-1].age == timedelta(minutes=2, seconds=7)


def test_idle_limit_is_a_parameter(snap: Snapshot) -> None:
    idle = idle_in_transaction(snap, older_than=timedelta(minutes=30))
    api = idle.application("veefore-api")
    assert api is not None
    assert api.older < 41


def test_lock_waiters(snap: Snapshot) -> None:
    locks = lock_waits(snap)
    assert len(locks.waiters) == 14
    assert {w.wait_event for w in locks.waiters} == {"transactionid"}
    assert format_age(locks.longest_wait) == "13 min 43 s"


def test_root_blocker(snap: Snapshot) -> None:
    roots = lock_waits(snap).roots
    assert [root.pid for root in roots] == [41109]
    root = roots[0]
    assert root.usename == "analyst"
    assert root.application_name == "psql"
    assert root.client_addr == "198.51.100.44"
    assert root.state == "idle in transaction"
    assert format_age(root.idle_in_transaction) == "3 h 11 min 58 s"
    assert format_age(root.transaction_age) == "3 h 12 min 19 s"
    assert root.query is not None
    assert root.query.startswith("UPDATE workspaces")
    assert root.blocks_directly == 14
    assert root.blocks_total == 14
    assert format_age(root.longest_wait) == "13 min 43 s"


def test_longest_running_query(snap: Snapshot) -> None:
    queries = long_running(snap).queries
    assert queries[0].pid == 42869
    assert queries[0].application_name == "metrics-worker"
    assert format_age(queries[0].age) == "23 min 5 s"
    assert queries[0].wait_event == "DataFileRead"


def test_long_running_leaves_out_non_clients(snap: Snapshot) -> None:
    pids = {query.pid for query in long_running(snap, timedelta(0)).queries}
    assert OWN_PID not in pids
    assert 41100 not in pids  # the autovacuum worker
    assert len(pids) == 24


def test_diagnose_statuses(snap: Snapshot) -> None:
    statuses = {finding.name: finding.status for finding in diagnose(snap)}
    assert statuses == {
        "connection limit": "fail",
        "idle in transaction": "fail",
        "lock blocking": "fail",
        "long-running queries": "warn",
        "recommended actions": "warn",
    }


def test_diagnose_evidence(snap: Snapshot) -> None:
    findings = {finding.name: finding for finding in diagnose(snap)}
    assert findings["connection limit"].evidence["app_backends"] == 97
    idle = findings["idle in transaction"].evidence
    assert idle["by_application"]["veefore-api"]["older"] == 41
    assert idle["idle_in_transaction_session_timeout_ms"] == 0
    assert findings["lock blocking"].evidence["roots"][0]["pid"] == 41109


def test_recommendations(snap: Snapshot) -> None:
    actions = recommendations(snap)
    assert "pg_terminate_backend(41109)" in actions[0]
    assert "blocks 14 sessions" in actions[0]
    assert (
        "ALTER ROLE veefore_app SET idle_in_transaction_session_timeout" in (actions[1])
    )
    assert actions[2].startswith("Fix the connection release path of veefore-api")
    assert "pg_cancel_backend(42869)" in actions[3]


def test_frames_have_one_row_per_item(snap: Snapshot) -> None:
    assert len(idle_in_transaction(snap).frame()) == 2
    assert len(idle_in_transaction(snap).sessions_frame()) == 47
    assert len(lock_waits(snap).frame()) == 1
    assert len(lock_waits(snap).waiters_frame()) == 14
    assert len(long_running(snap).frame()) == 15
    assert len(by_state(snap).frame()) == 4
    assert capacity(snap).frame().set_index("quantity")["value"]["usable"] == 97


@pytest.mark.parametrize(
    ("age", "text"),
    [
        (timedelta(hours=3, minutes=11, seconds=58), "3 h 11 min 58 s"),
        (timedelta(minutes=46, seconds=15, microseconds=900_000), "46 min 15 s"),
        (timedelta(minutes=2, seconds=7), "2 min 7 s"),
        (timedelta(minutes=5), "5 min"),
        (timedelta(hours=1, seconds=5), "1 h 0 min 5 s"),
        (timedelta(days=2, hours=3), "2 d 3 h"),
        (timedelta(0), "0 s"),
        (timedelta(seconds=-4), "0 s"),
        (None, ""),
    ],
)
def test_format_age(age: timedelta | None, text: str) -> None:
    assert format_age(age) == text


# Small hand-made snapshots for the lock graph's edge cases.

SETTINGS = PgSettings("15.18", 20, 3)


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


def snapshot_of(*backends: Backend) -> Snapshot:
    return Snapshot(TAKEN_AT, SETTINGS, backends)


def test_chain_root_is_transitive() -> None:
    locks = lock_waits(snapshot_of(backend(1), backend(2, (1,)), backend(3, (2,))))
    assert [root.pid for root in locks.roots] == [1]
    assert locks.roots[0].blocks_directly == 1
    assert locks.roots[0].blocks_total == 2
    assert {w.pid: w.roots for w in locks.waiters} == {2: (1,), 3: (1,)}


def test_cycle_members_become_roots() -> None:
    locks = lock_waits(
        snapshot_of(backend(1, (2,)), backend(2, (1,)), backend(3, (1,)))
    )
    assert [root.pid for root in locks.roots] == [1, 2]
    assert all(root.in_cycle for root in locks.roots)
    assert locks.roots[0].blocks_total == 2


def test_missing_blocker_is_a_root() -> None:
    locks = lock_waits(snapshot_of(backend(2, (77,))))
    assert [root.pid for root in locks.roots] == [77]
    assert not locks.roots[0].in_snapshot


def test_prepared_transaction_recommendation() -> None:
    actions = recommendations(snapshot_of(backend(2, (0,))))
    assert "pg_prepared_xacts" in actions[0]


def test_healthy_snapshot_passes() -> None:
    quiet = snapshot_of(backend(1, state="idle", wait_event_type="Client"))
    statuses = {finding.name: finding.status for finding in diagnose(quiet)}
    assert set(statuses.values()) == {"pass"}


def test_capacity_warns_at_80_percent() -> None:
    busy = [backend(pid, state="idle") for pid in range(1, 15)]
    findings = diagnose(snapshot_of(*busy))
    assert capacity(snapshot_of(*busy)).utilisation == 14 / 17
    assert findings[0].status == "warn"


def test_superusers_fill_the_limit() -> None:
    admins = [backend(pid, state="idle", superuser=True) for pid in range(1, 18)]
    cap = capacity(snapshot_of(*admins))
    assert cap.app_backends == 0
    assert cap.full


def test_blocked_by_text_and_list() -> None:
    rows: list[dict[str, Any]] = [
        {"pid": "5", "backend_type": "client backend", "blocked_by": "{1,2}"},
        {"pid": 6, "backend_type": "client backend", "blocked_by": [3]},
    ]
    assert [b.blocked_by for b in backends_from_rows(rows)] == [(1, 2), (3,)]


def test_superuser_flag_from_text() -> None:
    rows = [{"pid": "5", "usename": "x", "superuser": "t"}, {"pid": "6"}]
    assert [b.superuser for b in backends_from_rows(rows)] == [True, None]


def test_naive_time_is_rejected() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        backends_from_rows([{"pid": "5", "query_start": "2026-12-04 14:00:00"}])


def test_missing_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        PgSettings.from_rows([{"name": "superuser_reserved_connections", "setting": 3}])


def test_naive_snapshot_time_is_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        Snapshot(datetime(2026, 12, 4), SETTINGS, ())
