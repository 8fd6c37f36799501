"""Read a live PostgreSQL server: activity snapshot, connect timing, slow statements.

Every session opened here is read-only, bounded by ``connect_timeout`` and a
``statement_timeout``, and closed before the function returns.

Errors: a server that refuses the connection, rejects the login, has no free slot or
does not respond in time never surfaces as a psycopg exception. ``connect_timing``
returns it as a classified ``ConnectResult``. ``collect`` and ``slow_statements`` raise
``DatabaseUnavailable`` with the same classification. A DSN that cannot be parsed
raises ``UsageError``. Messages, log lines and exceptions carry the DSN's host, port
and user, never its password.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from veerunbook.errors import UsageError, VeerunbookError
from veerunbook.pg_activity import PgSettings, Snapshot, backends_from_rows
from veerunbook.pg_errors import (
    AUTHENTICATION_FAILED,
    CLIENT_POOL_TIMEOUT,
    CONNECTION_LIMIT,
    CONNECTION_REFUSED,
    POOLER_LIMIT,
    SERVER_STARTING_OR_STOPPING,
    TIMEOUT,
    ErrorClass,
    classify_error,
)
from veerunbook.redact import Redactor

_log = logging.getLogger("veerunbook.pg")

_SETTING_NAMES = (
    "server_version",
    "max_connections",
    "superuser_reserved_connections",
    "reserved_connections",
    "idle_in_transaction_session_timeout",
)
_SETTINGS_QUERY = "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)"
_ACTIVITY_QUERY = """
SELECT a.pid, a.usename, a.application_name, host(a.client_addr) AS client_addr,
       a.backend_type, a.state, a.backend_start, a.xact_start, a.query_start,
       a.state_change, a.wait_event_type, a.wait_event,
       pg_blocking_pids(a.pid) AS blocked_by, a.query, r.rolsuper AS superuser
FROM pg_stat_activity AS a LEFT JOIN pg_roles AS r ON r.oid = a.usesysid
"""
# Runs after the activity query in the same transaction. PostgreSQL fixes a
# transaction's view of pg_stat_activity at first access, so every state_change
# precedes this clock reading.
_CLOCK_QUERY = "SELECT clock_timestamp() AS taken_at, pg_backend_pid() AS own_pid"

# Utility statements such as ALTER ROLE keep their literals in pg_stat_activity and
# pg_stat_statements, passwords included. A literal cut off by
# track_activity_query_size has no closing quote and is masked to the end.
_SQL_PASSWORD = re.compile(r"(\bPASSWORD\s+)'(?:[^']|'')*(?:'|$)", re.IGNORECASE)

_ADVICE = {
    CONNECTION_LIMIT: "the server has no free slot for this role, so connect as "
    "a superuser, which may use the reserved slots",
    AUTHENTICATION_FAILED: "check the user and password that the DSN names",
    CONNECTION_REFUSED: "check that the server runs and listens on that host and port",
    SERVER_STARTING_OR_STOPPING: "wait until the server has finished starting or "
    "stopping, then retry",
    TIMEOUT: "the server did not respond in time, so check the network path "
    "and the server's load, or raise the timeout",
    CLIENT_POOL_TIMEOUT: "the connection pool in front of the server is exhausted",
    POOLER_LIMIT: "the connection pooler in front of the server is full",
}


class DatabaseUnavailable(VeerunbookError):
    """Raised when a server cannot be read: unreachable, login rejected, no free
    connection slot, or no response within the timeout. ``error_class`` classifies it.
    """

    def __init__(self, message: str, error_class: ErrorClass) -> None:
        super().__init__(message)
        self.error_class = error_class


def mask_sql(text: str | None) -> str | None:
    """Mask string literals that follow PASSWORD in an SQL text."""
    return _SQL_PASSWORD.sub(r"\1'***'", text) if text else text


@dataclass(frozen=True)
class _Target:
    """A parsed DSN: where it points, and a redactor that masks its password."""

    dsn: str
    host: str
    port: str
    user: str
    dbname: str
    redactor: Redactor

    @property
    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"


def _target(dsn: str) -> _Target:
    redactor = Redactor([dsn])
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        reason = redactor.mask(str(exc).strip())
        raise UsageError(
            f"invalid database DSN: {reason}. Use a postgresql:// URL or "
            "key=value pairs as libpq accepts them."
        ) from None
    password = params.get("password")
    if password:
        redactor.add(str(password))
    return _Target(
        dsn=dsn,
        host=str(params.get("host") or params.get("hostaddr") or "(default host)"),
        port=str(params.get("port") or "5432"),
        user=str(params.get("user") or "(default user)"),
        dbname=str(params.get("dbname") or "(default database)"),
        redactor=redactor,
    )


def _connect(
    target: _Target, timeout_s: float, application_name: str
) -> psycopg.Connection[dict[str, Any]]:
    # libpq counts connect_timeout in whole seconds and treats anything below 2 as 2.
    return psycopg.connect(
        target.dsn,
        connect_timeout=max(2, math.ceil(timeout_s)),
        application_name=application_name,
        row_factory=dict_row,
    )


def _begin_read_only(conn: psycopg.Connection[Any], timeout_s: float) -> None:
    conn.read_only = True
    # SET takes no bind parameters, but set_config does.
    conn.execute(
        "SELECT set_config('statement_timeout', %s, false)",
        (f"{max(1, round(timeout_s * 1000))}ms",),
    )


def _classify(exc: psycopg.Error, target: _Target) -> tuple[str, ErrorClass]:
    message = target.redactor.mask(str(exc).strip())
    if isinstance(exc, psycopg.errors.ConnectionTimeout):
        return message, classify_error("connection timeout expired")
    return message, classify_error(message, exc.sqlstate)


def _unavailable(
    exc: psycopg.Error, target: _Target, doing: str
) -> DatabaseUnavailable:
    message, error_class = _classify(exc, target)
    advice = _ADVICE.get(error_class.kind, "see the server's message")
    return DatabaseUnavailable(
        f"{doing} on {target.where} failed ({error_class.kind}): {message}. "
        f"Next step: {advice}.",
        error_class,
    )


def collect(
    dsn: str, *, timeout_s: float = 5.0, application_name: str = "veerunbook"
) -> Snapshot:
    """Take a snapshot of pg_stat_activity and the connection settings.

    Connect as a superuser or a member of pg_read_all_stats. PostgreSQL shows the
    state, times and query of other roles' sessions only to those, and hidden states
    count as "unknown". Raises DatabaseUnavailable or UsageError (see module).
    """
    target = _target(dsn)
    try:
        with _connect(target, timeout_s, application_name) as conn:
            _begin_read_only(conn, timeout_s)
            settings = conn.execute(_SETTINGS_QUERY, (list(_SETTING_NAMES),)).fetchall()
            activity = conn.execute(_ACTIVITY_QUERY).fetchall()
            clock = conn.execute(_CLOCK_QUERY).fetchall()[0]
            conn.rollback()
    except psycopg.Error as exc:
        raise _unavailable(exc, target, "reading pg_stat_activity") from None

    for row in activity:
        row["query"] = mask_sql(row["query"])
    snapshot = Snapshot(
        taken_at=clock["taken_at"],
        settings=PgSettings.from_rows(settings),
        backends=tuple(backends_from_rows(activity)),
        own_pid=clock["own_pid"],
    )
    _log.debug("read %d backends from %s", len(snapshot.backends), target.where)
    return snapshot


@dataclass(frozen=True)
class ConnectResult:
    """Outcome of one timed connection attempt, with the error message masked."""

    ok: bool
    seconds: float
    target: str
    server_version: str | None = None
    error: str | None = None
    sqlstate: str | None = None
    error_class: ErrorClass | None = None

    @property
    def kind(self) -> str | None:
        """The error kind (see ``veerunbook.pg_errors``), or None on success."""
        return self.error_class.kind if self.error_class else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def connect_timing(
    dsn: str, timeout_s: float = 5.0, *, application_name: str = "veerunbook"
) -> ConnectResult:
    """Time connecting, running ``SELECT 1`` and closing.

    A psycopg error (refused, rejected, timed out) comes back in the result, masked
    and classified. Raises UsageError for a DSN that cannot be parsed.
    """
    target = _target(dsn)
    started = time.perf_counter()
    try:
        with _connect(target, timeout_s, application_name) as conn:
            _begin_read_only(conn, timeout_s)
            conn.execute("SELECT 1").fetchone()
            version = conn.info.parameter_status("server_version")
            conn.rollback()
    except psycopg.Error as exc:
        seconds = time.perf_counter() - started
        message, error_class = _classify(exc, target)
        _log.warning("connecting to %s failed (%s)", target.where, error_class.kind)
        return ConnectResult(
            ok=False,
            seconds=seconds,
            target=target.where,
            error=message,
            sqlstate=error_class.sqlstate,
            error_class=error_class,
        )
    return ConnectResult(
        ok=True,
        seconds=time.perf_counter() - started,
        target=target.where,
        server_version=version,
    )


@dataclass(frozen=True)
class StatementStats:
    """One normalised statement from pg_stat_statements; times in milliseconds."""

    query: str | None
    calls: int
    total_ms: float
    mean_ms: float
    rows: int


@dataclass(frozen=True)
class SlowStatements:
    """Statements by mean execution time, or the reason why none could be read."""

    statements: tuple[StatementStats, ...]
    reason: str | None = None

    @property
    def available(self) -> bool:
        return self.reason is None

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(s) for s in self.statements])


def slow_statements(
    dsn: str,
    limit: int = 10,
    *,
    timeout_s: float = 5.0,
    application_name: str = "veerunbook",
) -> SlowStatements:
    """Return the ``limit`` statements of the DSN's database with the highest mean
    execution time, from pg_stat_statements.

    Without the extension in that database, or without the library preloaded, the
    result has no statements and a ``reason``. Raises DatabaseUnavailable or
    UsageError (see module).
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}.")
    target = _target(dsn)
    try:
        with _connect(target, timeout_s, application_name) as conn:
            _begin_read_only(conn, timeout_s)
            return _read_statements(conn, limit, target)
    except psycopg.errors.ObjectNotInPrerequisiteState as exc:
        # The extension exists but its library is not in shared_preload_libraries.
        reason = target.redactor.mask(str(exc).strip())
        return SlowStatements((), f"pg_stat_statements cannot be read: {reason}")
    except psycopg.Error as exc:
        raise _unavailable(exc, target, "reading pg_stat_statements") from None


def _read_statements(
    conn: psycopg.Connection[dict[str, Any]], limit: int, target: _Target
) -> SlowStatements:
    installed = conn.execute(
        "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'"
    ).fetchone()
    if installed is None:
        return SlowStatements(
            (),
            f"pg_stat_statements is not installed in database {target.dbname}: run "
            "CREATE EXTENSION pg_stat_statements there (the server also needs it in "
            "shared_preload_libraries).",
        )
    # PostgreSQL 13 renamed total_time and mean_time to *_exec_time.
    total, mean = "total_exec_time", "mean_exec_time"
    if conn.info.server_version < 130000:
        total, mean = "total_time", "mean_time"
    query = sql.SQL(
        "SELECT query, calls, {total} AS total_ms, {mean} AS mean_ms, rows"
        " FROM pg_stat_statements"
        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " ORDER BY {mean} DESC LIMIT %s"
    ).format(total=sql.Identifier(total), mean=sql.Identifier(mean))
    rows = conn.execute(query, (limit,)).fetchall()
    return SlowStatements(
        tuple(
            StatementStats(
                query=mask_sql(row["query"]),
                calls=int(row["calls"]),
                total_ms=float(row["total_ms"]),
                mean_ms=float(row["mean_ms"]),
                rows=int(row["rows"]),
            )
            for row in rows
        )
    )
