"""Tests of veerunbook.pg_diagnose: findings and recommended actions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.pgsnapshots import (
    TAKEN_AT,
    backend,
    exhaustion_snapshot,
    hidden_backend,
    snapshot_of,
)
from veerunbook.pg_actions import recommendations
from veerunbook.pg_activity import capacity
from veerunbook.pg_diagnose import Finding, diagnose
from veerunbook.pg_snapshot import Backend, Snapshot

HIDDEN_NOTE = (
    "unknown: 9 of 14 sessions are hidden from role veefore_app; grant pg_monitor "
    "(GRANT pg_monitor TO veefore_app) to see them"
)


@pytest.fixture(scope="module")
def snap() -> Snapshot:
    return exhaustion_snapshot()


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


def blind_snapshot(*extra: Backend) -> Snapshot:
    """Read as veefore_app without pg_monitor: 3 of its own sessions are visible,
    9 sessions of role billing and 2 background processes are hidden.
    """
    visible = [backend(pid, state="idle") for pid in (1, 2, 3)]
    hidden = [hidden_backend(pid) for pid in range(10, 19)]
    background = [hidden_backend(pid, usename=None) for pid in (90, 91)]
    return snapshot_of(*visible, *hidden, *background, *extra, role="veefore_app")


def findings_of(snap: Snapshot) -> dict[str, Finding]:
    return {finding.name: finding for finding in diagnose(snap)}


@pytest.mark.parametrize(
    "name",
    [
        "connection limit",
        "idle in transaction",
        "long-running queries",
        "recommended actions",
    ],
)
def test_hidden_sessions_never_pass(name: str) -> None:
    finding = findings_of(blind_snapshot())[name]
    assert finding.status == "warn"
    assert finding.summary.startswith(HIDDEN_NOTE)


def test_hidden_capacity_range() -> None:
    summary = findings_of(blind_snapshot())["connection limit"].summary
    assert "lists all 14 sessions to every role" in summary
    assert "3 to 12 of them are client backends" in summary


def test_hidden_capacity_may_be_full() -> None:
    more = [hidden_backend(pid) for pid in range(20, 26)]
    summary = findings_of(blind_snapshot(*more))["connection limit"].summary
    assert summary.endswith("; the limit may be reached.")


def test_hidden_capacity_full_fails() -> None:
    visible = [backend(pid, state="idle") for pid in range(1, 18)]
    snap = snapshot_of(*visible, hidden_backend(30), role="veefore_app")
    assert findings_of(snap)["connection limit"].status == "fail"


def test_hidden_idle_leak_still_fails() -> None:
    old = TAKEN_AT - timedelta(minutes=20)
    leaked = backend(4, state="idle in transaction", state_change=old)
    assert findings_of(blind_snapshot(leaked))["idle in transaction"].status == "fail"


def test_hidden_lock_graph_passes() -> None:
    finding = findings_of(blind_snapshot())["lock blocking"]
    assert finding.status == "pass"
    assert "pg_blocking_pids covers the 9 sessions" in finding.summary


def test_hidden_waiter_wait_unknown() -> None:
    holder = backend(4, state="idle in transaction")
    waiter = hidden_backend(40, blocked_by=(4,))
    finding = findings_of(blind_snapshot(holder, waiter))["lock blocking"]
    assert finding.status == "warn"
    assert finding.evidence["wait_unknown"] == 1
    assert "How long 1 of them have waited is unknown" in finding.summary


def test_hidden_root_state() -> None:
    waiter = backend(4, blocked_by=(12,))
    finding = findings_of(blind_snapshot(waiter))["lock blocking"]
    assert "pid 12 (billing, state hidden)" in finding.summary


def test_all_visible_has_no_note() -> None:
    snap = snapshot_of(backend(1, state="idle"), role="veefore_app")
    assert snap.hidden_note() is None
