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
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from veerunbook.pg_connect import (
    DsnTarget,
    begin_read_only,
    build_unavailable,
    classify_failure,
    open_connection,
    parse_dsn,
)
from veerunbook.pg_errors import ErrorClass
from veerunbook.pg_mask import mask_sql
from veerunbook.pg_snapshot import PgSettings, Snapshot, backends_from_rows

# pandas and psycopg are imported in the functions that use them, because a notebook's
# first cell imports this module without reading a database or building a table.
if TYPE_CHECKING:
    import pandas as pd
    import psycopg

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
SELECT a.pid, a.usename, a.datname, a.application_name,
       host(a.client_addr) AS client_addr,
       a.backend_type, a.state, a.backend_start, a.xact_start, a.query_start,
       a.state_change, a.wait_event_type, a.wait_event,
       pg_blocking_pids(a.pid) AS blocked_by, a.query, r.rolsuper AS superuser
FROM pg_stat_activity AS a LEFT JOIN pg_roles AS r ON r.oid = a.usesysid
"""
# Runs after the activity query in the same transaction. PostgreSQL fixes a
# transaction's view of pg_stat_activity at first access, so every state_change
# precedes this clock reading.
_CLOCK_QUERY = (
    "SELECT clock_timestamp() AS taken_at, pg_backend_pid() AS own_pid,"
    " current_user AS role"
)


def collect(
    dsn: str, *, timeout_s: float = 5.0, application_name: str = "veerunbook"
) -> Snapshot:
    """Take a snapshot of pg_stat_activity and the connection settings.

    Connect as a superuser or a member of pg_monitor. PostgreSQL shows the type,
    state, times and query of other roles' sessions only to those, and the analyses
    report hidden sessions as unknown. Passwords in the queries are masked. Raises
    DatabaseUnavailable or UsageError (see module).
    """
    import psycopg

    target = parse_dsn(dsn)
    try:
        with open_connection(target, timeout_s, application_name) as conn:
            begin_read_only(conn, timeout_s)
            settings = conn.execute(_SETTINGS_QUERY, (list(_SETTING_NAMES),)).fetchall()
            activity = conn.execute(_ACTIVITY_QUERY).fetchall()
            clock = conn.execute(_CLOCK_QUERY).fetchall()[0]
            conn.rollback()
    except psycopg.Error as exc:
        raise build_unavailable(exc, target, "reading pg_stat_activity") from None

    snapshot = Snapshot(
        taken_at=clock["taken_at"],
        settings=PgSettings.from_rows(settings),
        backends=tuple(backends_from_rows(activity)),
        own_pid=clock["own_pid"],
        role=clock["role"],
    )
    _log.debug("read %d backends from %s", len(snapshot.backends), target.where)
    hidden = len(snapshot.hidden_clients())
    if hidden:
        _log.warning(
            "%d of %d sessions in pg_stat_activity are hidden from role %s, which is "
            "not a member of pg_monitor",
            hidden,
            len(snapshot.backends),
            snapshot.role,
        )
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
    import psycopg

    target = parse_dsn(dsn)
    started = time.perf_counter()
    try:
        with open_connection(target, timeout_s, application_name) as conn:
            begin_read_only(conn, timeout_s)
            conn.execute("SELECT 1").fetchone()
            version = conn.info.parameter_status("server_version")
            conn.rollback()
    except psycopg.Error as exc:
        seconds = time.perf_counter() - started
        message, error_class = classify_failure(exc, target)
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
        import pandas as pd

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
    import psycopg

    target = parse_dsn(dsn)
    try:
        with open_connection(target, timeout_s, application_name) as conn:
            begin_read_only(conn, timeout_s)
            return _read_statements(conn, limit, target)
    except psycopg.errors.ObjectNotInPrerequisiteState as exc:
        # The extension exists but its library is not in shared_preload_libraries.
        reason = target.redactor.mask(str(exc).strip())
        return SlowStatements((), f"pg_stat_statements cannot be read: {reason}")
    except psycopg.Error as exc:
        raise build_unavailable(exc, target, "reading pg_stat_statements") from None


def _read_statements(
    conn: psycopg.Connection[dict[str, Any]], limit: int, target: DsnTarget
) -> SlowStatements:
    from psycopg import sql

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
