"""Tests of veerunbook.pg_locks: lock chains, root blockers and long-running queries."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.pgsnapshots import OWN_PID, backend, exhaustion_snapshot, snapshot_of
from veerunbook.pg_locks import lock_waits, long_running
from veerunbook.pg_snapshot import Snapshot, format_age


@pytest.fixture(scope="module")
def snap() -> Snapshot:
    return exhaustion_snapshot()


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


def test_frames_have_one_row_per_item(snap: Snapshot) -> None:
    assert len(lock_waits(snap).frame()) == 1
    assert len(lock_waits(snap).waiters_frame()) == 14
    assert len(long_running(snap).frame()) == 15


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
