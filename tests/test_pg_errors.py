"""Tests of veerunbook.pg_errors: classification of error wordings and SQLSTATEs."""

from __future__ import annotations

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
    classify_error,
    is_sqlstate,
)


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
