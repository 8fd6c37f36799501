"""Tests of veerunbook.pg_activity on the pg-connection-exhaustion snapshot:
capacity, sessions per state and sessions idle in transaction.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.pgsnapshots import backend, exhaustion_snapshot, snapshot_of
from veerunbook.pg_activity import by_state, capacity, idle_in_transaction
from veerunbook.pg_snapshot import Snapshot, format_age


@pytest.fixture(scope="module")
def snap() -> Snapshot:
    return exhaustion_snapshot()


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


def test_frames_have_one_row_per_item(snap: Snapshot) -> None:
    assert len(idle_in_transaction(snap).frame()) == 2
    assert len(idle_in_transaction(snap).sessions_frame()) == 47
    assert len(by_state(snap).frame()) == 4
    assert capacity(snap).frame().set_index("quantity")["value"]["usable"] == 97


def test_superusers_fill_the_limit() -> None:
    admins = [backend(pid, state="idle", superuser=True) for pid in range(1, 18)]
    cap = capacity(snapshot_of(*admins))
    assert cap.app_backends == 0
    assert cap.full
