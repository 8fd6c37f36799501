"""The database-connection procedure's steps, one method each.

``DatabaseConnection`` follows the runbook's "Database Connection Issues" section:
the database health endpoint, the database URL and a direct connection, the
application's connection pool, the database errors in the logs, the server's
sessions, the migration status, then the recovery options and the diagnosis. Each
method journals what it checked, keeps its facts in ``DbFacts`` and returns a table
or ``Nothing``. A dead, slow or lying target or database gives ``error``, ``fail``
or ``skip`` checks, never an exception. When the target does not respond at all,
the steps that need it skip with that reason, and the direct database checks run.
The procedure changes nothing on the target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from veerunbook import dbconn_pg
from veerunbook.dbcheck import DatabaseUrl, read_database_url, secret_values
from veerunbook.dbconn_advice import DbFacts, diagnosis_line
from veerunbook.dbconn_direct import check_sqlite_file, connect_postgres
from veerunbook.dbconn_endpoint import (
    check_integrity,
    first_value,
    integrity_word,
    pool_figures,
    probe_endpoint,
)
from veerunbook.dbconn_logs import read_database_errors, skip_database_errors
from veerunbook.dbconn_migrations import read_migration_status
from veerunbook.dbconn_plot import draw_pool
from veerunbook.dbconn_pool import check_pool, pool_window
from veerunbook.dbconn_recovery import recovery_options
from veerunbook.dbconn_url import check_url
from veerunbook.metrics_series import sample_series, session_fetch
from veerunbook.session import Session
from veerunbook.triage_tables import Nothing, frame

if TYPE_CHECKING:
    import pandas as pd

# The pool is scraped about every 5 s of the window, at most 6 times.
POOL_SAMPLE_SECONDS = 5.0
MAX_POOL_SCRAPES = 6
_LATENCY_KEYS = ("queryLatencyMs", "latencyMs", "latency_ms", "responseTimeMs")
_STATUS_ORDER = {"fail": 0, "error": 1, "warn": 2, "skip": 3, "pass": 4}


@dataclass
class DatabaseConnection:
    """State of one database-connection run, filled in step by step."""

    session: Session
    facts: DbFacts = field(default_factory=DbFacts)

    # Step 1: the database health endpoint.
    def probe_database_endpoint(
        self, progress: Callable[[str], None] | None = print
    ) -> pd.DataFrame | Nothing:
        """Probe the target's database health endpoint; read pool and integrity.

        A target that responds neither here nor to a metrics scrape and its retry
        is unreachable. One ``error`` check records that, and the steps that need
        the target skip.
        """
        found = probe_endpoint(self.session, progress)
        result = found.probe
        self.facts.endpoint = result
        if found.unreachable:
            self.facts.unreachable = found.unreachable
            self.facts.base_url = found.url or ""
            return Nothing(self._unreachable())
        body = result.json if isinstance(result.json, dict) else {}
        self.facts.endpoint_pool = pool_figures(body)
        error = body.get("error")
        self.facts.endpoint_error = str(error) if error else None
        self.facts.integrity = integrity_word(body)
        self.facts.integrity_problem = check_integrity(self.session, result)
        pool = {f"pool {key}": value for key, value in self.facts.endpoint_pool.items()}
        row = {
            "status": result.status,
            "HTTP": result.http_status,
            "latency (ms)": result.latency_ms,
            "reported": body.get("status"),
            "query latency (ms)": first_value(body, _LATENCY_KEYS),
            **pool,
            "integrity": self.facts.integrity_problem or self.facts.integrity,
            "error": self.facts.endpoint_error or result.error or "",
        }
        return frame([row])

    # Step 2: the configured database URL.
    def check_database_url(self) -> pd.DataFrame | Nothing:
        """Read the database URL variable; show it only with its password masked."""
        url = read_database_url(self.session.target.database_url_env)
        # Mask the URL and its password from now on, before anything is shown.
        for value in secret_values(url):
            self.session.redactor.add(value)
        self.facts.url = url
        check_url(self.session.run, url)
        return _vertical(url.to_dict())

    # Step 2: a direct connection, timed.
    def connect_directly(self, timeout_s: float = 5.0) -> pd.DataFrame | Nothing:
        """Connect to the database from here and time it; check a SQLite file."""
        url = self.facts.url
        if url is None or not url.usable:
            reason = url.problem if url else "the database URL was not read"
            self.session.run.check(
                "direct connection", "skip", summary=f"not attempted: {reason}"
            )
            return Nothing(f"no direct connection: {reason}")
        if url.sqlite_path is not None:
            self.facts.sqlite = check_sqlite_file(
                self.session, url.sqlite_path, timeout_s
            )
            return _vertical(self.facts.sqlite.to_dict())
        self.facts.postgres = connect_postgres(self.session, url, timeout_s)
        return _vertical(self.facts.postgres.to_dict())

    # Step 3: the application's connection pool over the window.
    def sample_pool(
        self, window_seconds: float, progress: Callable[[str], None] | None = print
    ) -> pd.DataFrame | Nothing:
        """Scrape the pool gauges over ``window_seconds``; check utilisation."""
        if self.facts.unreachable:
            reason = f"not sampled: {self._unreachable()}"
            self.session.run.check("connection pool", "skip", summary=reason)
            return Nothing(reason)
        intervals = int(window_seconds // POOL_SAMPLE_SECONDS)
        series = sample_series(
            session_fetch(self.session, record=False),
            window_seconds=window_seconds,
            samples=max(1, min(MAX_POOL_SCRAPES - 1, intervals)),
            progress=progress,
        )
        pool = pool_window(series)
        self.facts.pool = pool
        check_pool(self.session.run, pool)
        reason = pool.failure_reason() or "no pool gauges in the metrics"
        return frame(pool.rows(), f"no pool figures: {reason}")

    def plot_pool(self) -> Any:
        """Draw the pool over the window (None when there is nothing to draw)."""
        if self.facts.pool is None:
            print("the pool was not sampled: nothing to plot")
            return None
        return draw_pool(self.facts.pool)

    # Step 4: connection errors in the application's logs.
    def read_connection_errors(self, last: str = "15m") -> pd.DataFrame | Nothing:
        """Classify the database errors of the target's recent error logs."""
        if self.facts.unreachable:
            reason = self._unreachable()
            self.facts.errors = skip_database_errors(self.session, last, reason)
        else:
            self.facts.errors = read_database_errors(self.session, last)
        return self.facts.errors.table()

    # Step 4: the PostgreSQL server's sessions.
    def read_sessions(self, timeout_s: float = 5.0) -> pd.DataFrame | Nothing:
        """Snapshot the server's sessions; return connections against the limit."""
        url = self.facts.url
        if url is None or url.state != "postgresql" or not url.usable:
            self.facts.activity = dbconn_pg.PgActivity(problem=_no_server(url))
            return Nothing(_no_server(url))
        self.facts.activity = dbconn_pg.read_activity(self.session, url.dsn, timeout_s)
        return dbconn_pg.capacity_table(self.facts.activity)

    def sessions_by_state(self) -> pd.DataFrame | Nothing:
        """Client sessions per state."""
        return dbconn_pg.states_table(self.facts.activity)

    def idle_in_transaction(self) -> pd.DataFrame | Nothing:
        """Sessions idle in transaction per application, with their ages."""
        return dbconn_pg.idle_table(self.facts.activity)

    def lock_waits(self) -> pd.DataFrame | Nothing:
        """Root blockers: the sessions at the head of each lock chain."""
        return dbconn_pg.locks_table(self.facts.activity)

    def long_running(self) -> pd.DataFrame | Nothing:
        """Active queries running for 30 s or more."""
        return dbconn_pg.long_running_table(self.facts.activity)

    # Step 5: the migration status.
    def migration_status(self, timeout_s: float = 60.0) -> pd.DataFrame | Nothing:
        """Run the target's db_status command, else read the migration tables."""
        self.facts.migrations = read_migration_status(
            self.session, self.facts.url, timeout_s
        )
        rows = [migrations.to_row() for migrations in self.facts.migrations]
        last = self.session.run.checks[-1] if self.session.run.checks else None
        reason = last.summary if last is not None else "nothing was read"
        return frame(rows, f"no migration status: {reason}")

    # Step 6: the runbook's recovery actions, ranked by the evidence for them.
    def recovery_options(self) -> pd.DataFrame:
        """List every recovery option with its evidence and rank; none is executed."""
        options = [option.to_dict() for option in recovery_options(self.facts)]
        ranked = sum(1 for option in options if option["rank"] is not None)
        self.session.run.note(
            f"{len(options)} recovery options, {ranked} ranked; none was executed",
            recovery_options=options,
        )
        import pandas as pd

        rows = [option | {"rank": option["rank"] or "-"} for option in options]
        columns = ["rank", "action", "evidence", "confidence", "source"]
        return pd.DataFrame(rows, columns=columns)

    # Step 7: the diagnosis and the summary.
    def diagnosis(self) -> str:
        """Return the diagnosis line and journal it."""
        line = diagnosis_line(self.facts)
        self.session.run.note(f"diagnosis: {line}", diagnosis=line)
        return f"diagnosis: {line}"

    def _unreachable(self) -> str:
        return f"target unreachable: {self.facts.unreachable} at {self.facts.base_url}"

    def summary(self) -> pd.DataFrame:
        """Return every check of the run as a table, worst first."""
        checks = self.session.run.checks_frame()
        if checks.empty:
            return checks
        order = checks["status"].map(_STATUS_ORDER)
        checks = checks.assign(_order=order).sort_values(["_order", "time"])
        return checks.drop(columns="_order").reset_index(drop=True)


def _no_server(url: DatabaseUrl | None) -> str:
    if url is not None and url.state == "sqlite":
        return "SQLite has no server sessions: the file's lock and integrity are above"
    reason = url.problem if url and url.problem else "the URL is not a PostgreSQL URL"
    return f"no PostgreSQL sessions read: {reason}"


def _vertical(values: dict[str, Any]) -> pd.DataFrame | Nothing:
    """Return the set values as a two-column table, one row per field."""
    rows = [
        {"field": key, "value": _shown(value)}
        for key, value in values.items()
        if value not in (None, "", [], {})
    ]
    return frame(rows)


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else repr(value)
