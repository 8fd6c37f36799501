"""Tests of veerunbook.pg_snapshot: reading settings and backends, and format_age."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.pgsnapshots import SETTINGS, exhaustion_snapshot, hidden_backend, snapshot_of
from veerunbook.pg_snapshot import (
    PgSettings,
    Snapshot,
    backends_from_rows,
    format_age,
)


@pytest.fixture(scope="module")
def snap() -> Snapshot:
    return exhaustion_snapshot()


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


HIDDEN_ROW = {"pid": "7", "usename": "billing", "query": "<insufficient privilege>"}


def test_hidden_row_from_csv() -> None:
    assert backends_from_rows([HIDDEN_ROW])[0].hidden


def test_hidden_row_with_database_counts() -> None:
    row = HIDDEN_ROW | {"datname": "veefore"}
    snap = snapshot_of(*backends_from_rows([row]))
    assert len(snap.hidden_clients()) == 1


def test_hidden_row_without_datname_column_counts() -> None:
    snap = snapshot_of(*backends_from_rows([HIDDEN_ROW]))
    assert len(snap.hidden_clients()) == 1


def test_hidden_launcher_is_background() -> None:
    # The logical replication launcher runs as the bootstrap superuser, in no database.
    row = HIDDEN_ROW | {"usename": "postgres", "datname": ""}
    snap = snapshot_of(*backends_from_rows([row]))
    assert snap.hidden_clients() == []


def test_hidden_without_role_is_background() -> None:
    snap = snapshot_of(hidden_backend(90, usename=None))
    assert snap.hidden_clients() == []
    assert snap.hidden_note() is None


def test_hidden_note_quotes_role() -> None:
    snap = snapshot_of(hidden_backend(5), role="App-Role")
    assert snap.hidden_note() == (
        "unknown: 1 of 1 sessions are hidden from role App-Role; grant pg_monitor "
        '(GRANT pg_monitor TO "App-Role") to see them'
    )


def test_hidden_note_without_role() -> None:
    note = snapshot_of(hidden_backend(5)).hidden_note()
    assert note is not None
    assert "hidden from the role that read them" in note
