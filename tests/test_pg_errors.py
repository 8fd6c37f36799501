"""Tests of veerunbook.pg_errors: error wordings and the pg-connection-exhaustion logs.

The fixture logs come from a Node.js API on node-postgres. Its PostgreSQL 16 server
ran out of connection slots. The expected counts were taken from those files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from veerunbook.pg_errors import (
    AUTHENTICATION_FAILED,
    CLIENT_POOL_TIMEOUT,
    CONNECTION_LIMIT,
    CONNECTION_REFUSED,
    DEADLOCK,
    OTHER,
    POOLER_LIMIT,
    SERVER_STARTING_OR_STOPPING,
    TIMEOUT,
    LogScan,
    classify_error,
    is_sqlstate,
    scan_app_log,
    scan_server_log,
)

FIXTURES = Path(__file__).parent / "fixtures" / "pg-connection-exhaustion"


def read_lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


@pytest.fixture(scope="module")
def server_log() -> LogScan:
    return scan_server_log(read_lines("postgresql.log"))


@pytest.fixture(scope="module")
def app_log() -> LogScan:
    return scan_app_log(read_lines("app-errors.log"))


@pytest.mark.parametrize(
    "message",
    [
        "sorry, too many clients already",
        "remaining connection slots are reserved for roles with the SUPERUSER "
        "attribute",
        "remaining connection slots are reserved for roles with privileges of the "
        '"pg_use_reserved_connections" role',
        "remaining connection slots are reserved for non-replication superuser "
        "connections",
        'too many connections for role "veefore_worker"',
        'too many connections for database "veefore"',
    ],
)
def test_connection_limit_wordings(message: str) -> None:
    error = classify_error(f"FATAL:  {message}")
    assert error.kind == CONNECTION_LIMIT
    assert error.sqlstate == "53300"
    assert error.sqlstate_inferred
    assert error.sqlstate_class == "53"
    assert error.class_name == "Insufficient Resources"


def test_sqlstate_53300_alone_is_limit() -> None:
    assert classify_error("something new", "53300").kind == CONNECTION_LIMIT


def test_pg_pool_timeout_is_client_side() -> None:
    error = classify_error("timeout exceeded when trying to connect")
    assert error.kind == CLIENT_POOL_TIMEOUT
    assert error.sqlstate is None


def test_pgbouncer_limit_beats_its_sqlstate() -> None:
    error = classify_error("no more connections allowed (max_client_conn)", "08P01")
    assert error.kind == POOLER_LIMIT
    assert error.sqlstate == "08P01"
    assert error.class_name == "Connection Exception"


@pytest.mark.parametrize(
    ("message", "sqlstate", "kind", "code"),
    [
        (
            'password authentication failed for user "app"',
            None,
            AUTHENTICATION_FAILED,
            "28P01",
        ),
        (
            'no pg_hba.conf entry for host "192.0.2.7"',
            None,
            AUTHENTICATION_FAILED,
            "28000",
        ),
        ("anything", "28P01", AUTHENTICATION_FAILED, "28P01"),
        (
            "the database system is starting up",
            None,
            SERVER_STARTING_OR_STOPPING,
            "57P03",
        ),
        (
            "the database system is shutting down",
            None,
            SERVER_STARTING_OR_STOPPING,
            "57P03",
        ),
        (
            "terminating connection due to administrator command",
            None,
            SERVER_STARTING_OR_STOPPING,
            "57P01",
        ),
        ("canceling statement due to statement timeout", None, TIMEOUT, "57014"),
        ("connection timeout expired", None, TIMEOUT, None),
        ("connect ETIMEDOUT 192.0.2.10:5432", None, TIMEOUT, None),
        ("connect ECONNREFUSED 127.0.0.1:5432", None, CONNECTION_REFUSED, None),
        ("deadlock detected", "40P01", DEADLOCK, "40P01"),
        ('relation "users" does not exist', "42P01", OTHER, "42P01"),
        ("something else entirely", None, OTHER, None),
    ],
)
def test_other_kinds(
    message: str, sqlstate: str | None, kind: str, code: str | None
) -> None:
    error = classify_error(message, sqlstate)
    assert error.kind == kind
    assert error.sqlstate == code


def test_refused_connection_message() -> None:
    message = (
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
        "Connection refused\n\tIs the server running on that host and accepting "
        "TCP/IP connections?"
    )
    assert classify_error(message).kind == CONNECTION_REFUSED


def test_node_codes_are_not_sqlstates() -> None:
    assert not is_sqlstate("EPIPE")
    assert not is_sqlstate("ECONNREFUSED")
    assert is_sqlstate("53300")
    assert is_sqlstate("XX000")


def test_non_sqlstate_code_is_ignored() -> None:
    error = classify_error("write EPIPE", "EPIPE")
    assert error.sqlstate is None
    assert error.kind == OTHER


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
