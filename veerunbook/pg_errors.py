"""Classify PostgreSQL connection errors by message and SQLSTATE.

``classify_error`` maps an error message (and its SQLSTATE, when known) to a kind that
names what to fix. The connection-limit wordings differ by server version but all carry
SQLSTATE 53300. Two look-alikes are not the server's slot limit: the Node.js pg-pool
client timing out while it waits for a free client, and PgBouncer's ``max_client_conn``.
``veerunbook.pg_logscan`` counts the classified errors in server and application logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

CONNECTION_LIMIT = "connection limit"
CLIENT_POOL_TIMEOUT = "client pool timeout"
POOLER_LIMIT = "pooler limit"
CONNECTION_REFUSED = "connection refused"
AUTHENTICATION_FAILED = "authentication failed"
SERVER_STARTING_OR_STOPPING = "server starting or shutting down"
TIMEOUT = "timeout"
DEADLOCK = "deadlock"
OTHER = "other"

# SQLSTATE class names from the PostgreSQL documentation, appendix A "PostgreSQL Error
# Codes" (version 16).
SQLSTATE_CLASSES = {
    "00": "Successful Completion",
    "01": "Warning",
    "02": "No Data",
    "03": "SQL Statement Not Yet Complete",
    "08": "Connection Exception",
    "09": "Triggered Action Exception",
    "0A": "Feature Not Supported",
    "0B": "Invalid Transaction Initiation",
    "0F": "Locator Exception",
    "0L": "Invalid Grantor",
    "0P": "Invalid Role Specification",
    "0Z": "Diagnostics Exception",
    "20": "Case Not Found",
    "21": "Cardinality Violation",
    "22": "Data Exception",
    "23": "Integrity Constraint Violation",
    "24": "Invalid Cursor State",
    "25": "Invalid Transaction State",
    "26": "Invalid SQL Statement Name",
    "27": "Triggered Data Change Violation",
    "28": "Invalid Authorization Specification",
    "2B": "Dependent Privilege Descriptors Still Exist",
    "2D": "Invalid Transaction Termination",
    "2F": "SQL Routine Exception",
    "34": "Invalid Cursor Name",
    "38": "External Routine Exception",
    "39": "External Routine Invocation Exception",
    "3B": "Savepoint Exception",
    "3D": "Invalid Catalog Name",
    "3F": "Invalid Schema Name",
    "40": "Transaction Rollback",
    "42": "Syntax Error or Access Rule Violation",
    "44": "WITH CHECK OPTION Violation",
    "53": "Insufficient Resources",
    "54": "Program Limit Exceeded",
    "55": "Object Not In Prerequisite State",
    "57": "Operator Intervention",
    "58": "System Error (errors external to PostgreSQL itself)",
    "72": "Snapshot Failure",
    "F0": "Configuration File Error",
    "HV": "Foreign Data Wrapper Error (SQL/MED)",
    "P0": "PL/pgSQL Error",
    "XX": "Internal Error",
}

# SQLSTATEs whose kind follows from the code alone.
_KIND_BY_SQLSTATE = {
    "53300": CONNECTION_LIMIT,
    "28P01": AUTHENTICATION_FAILED,
    "28000": AUTHENTICATION_FAILED,
    "57P01": SERVER_STARTING_OR_STOPPING,
    "57P02": SERVER_STARTING_OR_STOPPING,
    "57P03": SERVER_STARTING_OR_STOPPING,
    "57014": TIMEOUT,
    "55P03": TIMEOUT,
    "40P01": DEADLOCK,
}


class _Rule(NamedTuple):
    """One recognised wording: its name, kind, the SQLSTATE the server sends with it
    (None for client-side errors) and a case-insensitive pattern."""

    name: str
    kind: str
    sqlstate: str | None
    pattern: re.Pattern[str]


def _rule(name: str, kind: str, sqlstate: str | None, pattern: str) -> _Rule:
    return _Rule(name, kind, sqlstate, re.compile(pattern, re.IGNORECASE))


_RESERVED = "remaining connection slots are reserved for"

# The first rule that matches wins, so the client-side timeouts precede the generic
# timeout wordings at the end.
_RULES = (
    _rule("pgbouncer max_client_conn", POOLER_LIMIT, None, r"max_client_conn"),
    _rule("pgbouncer query_wait_timeout", POOLER_LIMIT, None, r"query_wait_timeout"),
    _rule(
        "pg-pool checkout timeout",
        CLIENT_POOL_TIMEOUT,
        None,
        r"timeout exceeded when trying to connect",
    ),
    _rule(
        "prisma pool timeout",
        CLIENT_POOL_TIMEOUT,
        None,
        r"timed out fetching a new connection from the connection pool",
    ),
    _rule("too many clients", CONNECTION_LIMIT, "53300", r"sorry, too many clients"),
    _rule(
        "reserved for SUPERUSER (16+)",
        CONNECTION_LIMIT,
        "53300",
        _RESERVED + r" roles with the SUPERUSER attribute",
    ),
    _rule(
        "reserved for pg_use_reserved_connections (16+)",
        CONNECTION_LIMIT,
        "53300",
        _RESERVED + r" roles with privileges of",
    ),
    _rule(
        "reserved for superusers (before 16)",
        CONNECTION_LIMIT,
        "53300",
        _RESERVED + r" non-replication superuser",
    ),
    _rule("role limit", CONNECTION_LIMIT, "53300", r"too many connections for role"),
    _rule(
        "database limit",
        CONNECTION_LIMIT,
        "53300",
        r"too many connections for database",
    ),
    _rule(
        "password authentication failed",
        AUTHENTICATION_FAILED,
        "28P01",
        r"password authentication failed",
    ),
    _rule("no pg_hba.conf entry", AUTHENTICATION_FAILED, "28000", r"pg_hba\.conf"),
    _rule(
        "role does not exist",
        AUTHENTICATION_FAILED,
        "28000",
        r"role \"[^\"]*\" does not exist",
    ),
    _rule(
        "server starting up",
        SERVER_STARTING_OR_STOPPING,
        "57P03",
        r"the database system is (?:starting up|not yet accepting|in recovery mode)",
    ),
    _rule(
        "server shutting down",
        SERVER_STARTING_OR_STOPPING,
        "57P03",
        r"the database system is shutting down",
    ),
    _rule(
        "administrator shutdown",
        SERVER_STARTING_OR_STOPPING,
        "57P01",
        r"terminating connection due to administrator command",
    ),
    _rule(
        "connection refused",
        CONNECTION_REFUSED,
        None,
        r"connection refused|ECONNREFUSED",
    ),
    _rule(
        "statement timeout", TIMEOUT, "57014", r"canceling statement due to statement"
    ),
    _rule("lock timeout", TIMEOUT, "55P03", r"canceling statement due to lock timeout"),
    _rule("deadlock detected", DEADLOCK, "40P01", r"deadlock detected"),
    _rule(
        "connection timeout",
        TIMEOUT,
        None,
        r"timeout expired|timed out|ETIMEDOUT|connection timeout",
    ),
)

# A SQLSTATE: five digits or upper-case letters whose class is one PostgreSQL uses.
# Node.js system error codes (ECONNREFUSED, EPIPE) are not SQLSTATEs.
_SQLSTATE = re.compile(r"^(?:[0-9][0-9A-Z]|F0|HV|P0|XX)[0-9A-Z]{3}$")


@dataclass(frozen=True)
class ErrorClass:
    """Classification of one error message for the runbook.

    ``sqlstate`` is the code given, or the one the server sends with the recognised
    wording (``sqlstate_inferred`` is then true). ``rule`` names the wording matched.
    """

    kind: str
    sqlstate: str | None
    sqlstate_class: str | None
    class_name: str | None
    rule: str | None
    sqlstate_inferred: bool = False


def is_sqlstate(code: str | None) -> bool:
    """Tell whether ``code`` has the form of a PostgreSQL SQLSTATE."""
    return code is not None and _SQLSTATE.match(code) is not None


def classify_error(message: str, sqlstate: str | None = None) -> ErrorClass:
    """Classify a PostgreSQL, driver or pooler error by its message and SQLSTATE.

    A ``sqlstate`` that is not a SQLSTATE (a Node.js code such as ``EPIPE``) is
    ignored. A given SQLSTATE decides the kind, except for pooler and client pool
    wordings: PgBouncer sends ``max_client_conn`` with the generic 08P01.
    """
    code = sqlstate.upper() if sqlstate and is_sqlstate(sqlstate.upper()) else None
    for rule in _RULES:
        if not rule.pattern.search(message):
            continue
        if code is None:
            return _make(rule.kind, rule.sqlstate, rule.name, inferred=True)
        if rule.kind in (POOLER_LIMIT, CLIENT_POOL_TIMEOUT):
            return _make(rule.kind, code, rule.name)
        return _make(_KIND_BY_SQLSTATE.get(code, rule.kind), code, rule.name)
    return _make(_KIND_BY_SQLSTATE.get(code or "", OTHER), code, None)


def _make(
    kind: str, sqlstate: str | None, rule: str | None, *, inferred: bool = False
) -> ErrorClass:
    code_class = sqlstate[:2] if sqlstate else None
    return ErrorClass(
        kind=kind,
        sqlstate=sqlstate,
        sqlstate_class=code_class,
        class_name=SQLSTATE_CLASSES.get(code_class or ""),
        rule=rule,
        sqlstate_inferred=inferred and sqlstate is not None,
    )
