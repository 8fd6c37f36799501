"""Classify PostgreSQL connection errors and count them in server and application logs.

``classify_error`` maps an error message (and its SQLSTATE, when known) to a kind that
names what to fix. The connection-limit wordings differ by server version but all carry
SQLSTATE 53300. Two look-alikes are not the server's slot limit: the Node.js pg-pool
client timing out while it waits for a free client, and PgBouncer's ``max_client_conn``.

``scan_server_log`` reads a PostgreSQL log written with
``log_line_prefix = '%m [%p] %q%u@%d '``, and ``scan_app_log`` reads pino JSON lines
whose ``err`` object came from node-postgres.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

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


# log_line_prefix '%m [%p] %q%u@%d ': %q drops the user@database part on lines from
# background processes. The severity is followed by a colon and two spaces.
_SERVER_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)(?: (?P<zone>\S+))? "
    r"\[(?P<pid>\d+)\] (?:(?P<user>[^\s@]*)@(?P<database>\S*) )?"
    r"(?P<severity>[A-Z][A-Z0-9]*):\s+(?P<message>.*)$"
)
_LOCK_WAIT = re.compile(
    r"process (?P<pid>\d+) still waiting for (?P<mode>\w+) on (?P<object>.+?) "
    r"after (?P<ms>[\d.]+) ms"
)
_LOCK_HOLDERS = re.compile(
    r"Process(?:es)? holding the lock: (?P<holders>[\d, ]+)\. "
    r"Wait queue: (?P<queue>[\d, ]*)\."
)
_ERROR_SEVERITIES = frozenset({"ERROR", "FATAL", "PANIC"})


@dataclass(frozen=True)
class LogError:
    """One error found in a log, with its classification."""

    time: datetime | None
    pid: int | None
    user: str | None
    database: str | None
    severity: str
    message: str
    error: ErrorClass


@dataclass
class LockWait:
    """A ``log_lock_waits`` report: who waits, for which lock, and who holds it."""

    time: datetime | None
    pid: int
    mode: str
    locked_object: str
    waited_ms: float
    holders: tuple[int, ...] = ()
    queue: tuple[int, ...] = ()


@dataclass
class LogScan:
    """Errors and lock waits found in a log, and the count of unreadable lines."""

    errors: list[LogError] = field(default_factory=list)
    lock_waits: list[LockWait] = field(default_factory=list)
    lines: int = 0
    unparsed: int = 0

    def by_kind(self) -> dict[str, int]:
        """Count errors per kind."""
        return dict(Counter(entry.error.kind for entry in self.errors))

    def by_sqlstate(self) -> dict[str, int]:
        """Count errors per SQLSTATE (inferred ones too), "unknown" for none."""
        return dict(Counter(entry.error.sqlstate or "unknown" for entry in self.errors))

    def by_rule(self) -> dict[str, int]:
        """Count errors per recognised wording, "unrecognised" for the rest."""
        return dict(
            Counter(entry.error.rule or "unrecognised" for entry in self.errors)
        )

    def lock_holders(self) -> dict[int, int]:
        """Count, per holding pid, the lock waits that it caused."""
        return dict(Counter(pid for wait in self.lock_waits for pid in wait.holders))

    def rows(self) -> list[dict[str, Any]]:
        """Return one plain row per error, for a table."""
        return [
            {
                "time": entry.time,
                "pid": entry.pid,
                "user": entry.user,
                "severity": entry.severity,
                "kind": entry.error.kind,
                "sqlstate": entry.error.sqlstate,
                "message": entry.message,
            }
            for entry in self.errors
        ]


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.split(r"[,\s]+", text.strip()) if part)


def _server_time(stamp: str, zone: str | None) -> datetime | None:
    """Parse a ``%m`` time stamp in UTC or GMT; return None for other zones."""
    if zone not in ("UTC", "GMT"):
        # NOTE: other zone abbreviations are ambiguous (CST, IST), so such times are
        # left unparsed rather than guessed.
        return None
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC)


def scan_server_log(lines: Iterable[str]) -> LogScan:
    """Find errors and lock waits in a PostgreSQL server log.

    The log must use ``log_line_prefix = '%m [%p] %q%u@%d '``. Continuation lines of a
    multi-line message (they start with a tab) are skipped. A ``DETAIL`` line naming
    the lock holders is attached to the lock wait reported just before by the same pid.
    """
    scan = LogScan()
    last_wait: dict[int, LockWait] = {}
    for raw in lines:
        scan.lines += 1
        line = raw.rstrip("\r\n")
        match = _SERVER_LINE.match(line)
        if match is None:
            if line.strip() and not line.startswith(("\t", " ")):
                scan.unparsed += 1
            continue
        pid = int(match["pid"])
        severity, message = match["severity"], match["message"]
        time = _server_time(match["time"], match["zone"])
        if severity in _ERROR_SEVERITIES:
            error = classify_error(message)
            scan.errors.append(
                LogError(
                    time,
                    pid,
                    match["user"],
                    match["database"],
                    severity,
                    message,
                    error,
                )
            )
        elif severity == "LOG" and (wait := _LOCK_WAIT.search(message)):
            lock_wait = LockWait(
                time, int(wait["pid"]), wait["mode"], wait["object"], float(wait["ms"])
            )
            scan.lock_waits.append(lock_wait)
            last_wait[pid] = lock_wait
        elif severity == "DETAIL" and pid in last_wait:
            holders = _LOCK_HOLDERS.search(message)
            if holders is not None:
                last_wait[pid].holders = _int_list(holders["holders"])
                last_wait[pid].queue = _int_list(holders["queue"])
    return scan


def _app_error(record: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """Return the error message and code of a pino record, or None without an error."""
    err = record.get("err", record.get("error"))
    if isinstance(err, str):
        return err, None
    if not isinstance(err, Mapping) or not isinstance(err.get("message"), str):
        return None
    code = err.get("code")
    return err["message"], str(code) if code is not None else None


def scan_app_log(lines: Iterable[str]) -> LogScan:
    """Find database errors in pino JSON lines (one object per line).

    Each ``err`` (or ``error``) object is classified by its ``message`` and ``code``.
    A code that is not a SQLSTATE, such as ``ECONNREFUSED``, is put in front of the
    message for classification. Lines that are not JSON objects count as unparsed.
    """
    scan = LogScan()
    for raw in lines:
        scan.lines += 1
        try:
            record = json.loads(raw)
        except ValueError:
            scan.unparsed += int(bool(raw.strip()))
            continue
        if not isinstance(record, dict):
            scan.unparsed += 1
            continue
        found = _app_error(record)
        if found is None:
            continue
        message, code = found
        if is_sqlstate(code):
            error = classify_error(message, code)
        else:
            error = classify_error(f"{code}: {message}" if code else message)
        scan.errors.append(
            LogError(
                _epoch_ms(record.get("time")),
                _as_int(record.get("pid")),
                None,
                None,
                _pino_level(record.get("level")),
                message,
                error,
            )
        )
    return scan


# pino's numeric levels.
_PINO_LEVELS = {
    10: "TRACE",
    20: "DEBUG",
    30: "INFO",
    40: "WARN",
    50: "ERROR",
    60: "FATAL",
}


def _pino_level(level: Any) -> str:
    if isinstance(level, str):
        return level.upper()
    return _PINO_LEVELS.get(level, str(level)) if isinstance(level, int) else "?"


def _epoch_ms(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
