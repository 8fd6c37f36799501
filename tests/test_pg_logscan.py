"""Tests of veerunbook.pg_logscan on the pg-connection-exhaustion logs.

The fixture logs come from a Node.js API on node-postgres. Its PostgreSQL 16 server
ran out of connection slots. The expected counts were taken from those files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from veerunbook.pg_errors import (
    CLIENT_POOL_TIMEOUT,
    CONNECTION_LIMIT,
    CONNECTION_REFUSED,
    DEADLOCK,
    POOLER_LIMIT,
    SERVER_STARTING_OR_STOPPING,
)
from veerunbook.pg_logscan import LogScan, scan_app_log, scan_server_log

FIXTURES = Path(__file__).parent / "fixtures" / "pg-connection-exhaustion"


def read_lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


@pytest.fixture(scope="module")
def server_log() -> LogScan:
    return scan_server_log(read_lines("postgresql.log"))


@pytest.fixture(scope="module")
def app_log() -> LogScan:
    return scan_app_log(read_lines("app-errors.log"))


def test_server_log_kinds(server_log: LogScan) -> None:
    assert server_log.by_kind() == {CONNECTION_LIMIT: 6}


def test_server_log_sqlstates(server_log: LogScan) -> None:
    assert server_log.by_sqlstate() == {"53300": 6}


def test_server_log_wordings(server_log: LogScan) -> None:
    assert server_log.by_rule() == {
        "reserved for SUPERUSER (16+)": 4,
        "too many clients": 2,
    }


def test_server_log_reads_every_line(server_log: LogScan) -> None:
    assert server_log.lines == 16
    assert server_log.unparsed == 0


def test_server_log_error_fields(server_log: LogScan) -> None:
    first = server_log.errors[0]
    assert first.pid == 51877
    assert first.user == "veefore_app"
    assert first.database == "veefore"
    assert first.severity == "FATAL"
    assert first.time is not None
    assert first.time.isoformat() == "2026-12-04T14:31:12.408000+00:00"


def test_server_log_lock_waits(server_log: LogScan) -> None:
    waits = server_log.lock_waits
    assert [wait.pid for wait in waits] == [41256, 41344]
    assert waits[0].mode == "ShareLock"
    assert waits[0].locked_object == "transaction 48213377"
    assert waits[0].waited_ms == 1000.087
    assert waits[1].queue == (41256, 41344)


def test_server_log_lock_holder(server_log: LogScan) -> None:
    assert server_log.lock_holders() == {41109: 2}


def test_app_log_kinds(app_log: LogScan) -> None:
    assert app_log.by_kind() == {
        CONNECTION_LIMIT: 5,
        CLIENT_POOL_TIMEOUT: 1,
        POOLER_LIMIT: 1,
    }


def test_app_log_sqlstates(app_log: LogScan) -> None:
    assert app_log.by_sqlstate() == {"53300": 5, "08P01": 1, "unknown": 1}


def test_app_log_wordings(app_log: LogScan) -> None:
    assert app_log.by_rule() == {
        "reserved for SUPERUSER (16+)": 1,
        "too many clients": 1,
        "pg-pool checkout timeout": 1,
        "reserved for superusers (before 16)": 1,
        "role limit": 1,
        "pgbouncer max_client_conn": 1,
        "reserved for pg_use_reserved_connections (16+)": 1,
    }


def test_app_log_error_fields(app_log: LogScan) -> None:
    replica = app_log.errors[3]
    assert replica.severity == "WARN"
    assert replica.pid == 7
    assert replica.time is not None
    assert replica.time.isoformat() == "2026-12-04T14:39:10.004000+00:00"


def test_app_log_tolerates_junk() -> None:
    lines = [
        "not json at all",
        "[1, 2]",
        "",
        '{"level": 30, "msg": "request completed"}',
        '{"level": 50, "err": {"message": "connect ECONNREFUSED 127.0.0.1:5432", '
        '"code": "ECONNREFUSED"}}',
        '{"level": 50, "err": "sorry, too many clients already"}',
        '{"level": 50, "err": {"message": 42}}',
    ]
    scan = scan_app_log(lines)
    assert scan.lines == 7
    assert scan.unparsed == 2
    assert scan.by_kind() == {CONNECTION_REFUSED: 1, CONNECTION_LIMIT: 1}


def test_server_log_background_lines() -> None:
    lines = [
        "2026-12-04 14:00:00.000 UTC [100] LOG:  checkpoint starting: time",
        "2026-12-04 14:00:01.000 UTC [101] FATAL:  the database system is shutting "
        "down",
        "2026-12-04 14:00:02.000 CET [102] app@db ERROR:  deadlock detected",
        "\tProcess 1 waits for ShareLock on transaction 5; blocked by process 2.",
        "garbage",
    ]
    scan = scan_server_log(lines)
    assert scan.by_kind() == {SERVER_STARTING_OR_STOPPING: 1, DEADLOCK: 1}
    assert scan.errors[0].user is None
    assert scan.errors[1].time is None
    assert scan.unparsed == 1
