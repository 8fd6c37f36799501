"""The database's part in a slowdown: pool use, query latency and slow queries.

Pool utilisation comes from the ``database_connections`` gauges of the last
metrics scrape and query latency from the database health endpoint. Slow queries
are read from PostgreSQL itself when the target's database URL names one: the
statements with the highest mean time from ``pg_stat_statements``, else the
active queries running longest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from veerunbook import metrics
from veerunbook.dbcheck import read_database_url
from veerunbook.errors import DatabaseUnavailable
from veerunbook.perf_recovery import DATABASE_SHARE
from veerunbook.pg_collect import StatementStats, collect, slow_statements
from veerunbook.pg_locks import LONG_QUERY_LIMIT, long_running
from veerunbook.session import Session
from veerunbook.text import counted
from veerunbook.triage import POOL_WARN
from veerunbook.triage_tables import Nothing, frame
from veerunbook.webvitals import finite_number

if TYPE_CHECKING:
    import pandas as pd

# Fields of a database health response that contain the query latency in ms.
_LATENCY_FIELDS = ("querylatencyms", "latencyms", "responsetimems", "durationms")


@dataclass
class DatabaseFacts:
    """Findings of the database step, with None or [] for what was not read."""

    pool: metrics.PoolUsage | None = None
    query_latency_ms: float | None = None
    slow_statements: list[str] = field(default_factory=list)
    long_queries: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)


def observe(
    session: Session,
    scrape: metrics.Scrape | None,
    user_p50_ms: float | None,
    unreachable: str | None = None,
) -> DatabaseFacts:
    """Check pool utilisation and query latency, journaling one check for each.

    With ``unreachable`` (such as "target unreachable: connection refused at URL")
    both checks are skipped for that reason, and the target is not probed again.
    """
    facts = DatabaseFacts()
    if unreachable is not None:
        session.run.check("connection pool", "skip", summary=unreachable)
        session.run.check("database query latency", "skip", summary=unreachable)
        return facts
    if scrape is None:
        session.run.check(
            "connection pool", "skip", summary="no metrics scrape to read it from"
        )
    else:
        facts.pool = metrics.database_pool(scrape)
        _check_pool(session, facts.pool, facts.rows)
    result = session.probe("database", name="database health", expect="health")
    facts.query_latency_ms = query_latency_ms(result.json)
    _check_query_latency(session, facts, user_p50_ms, result.summary())
    return facts


def query_latency_ms(body: Any) -> float | None:
    """Return the query latency a database health body reports, in ms, or None."""
    for candidate in (body, body.get("database") if isinstance(body, dict) else None):
        if not isinstance(candidate, dict):
            continue
        for key, value in candidate.items():
            normalised = str(key).lower().replace("_", "")
            number = finite_number(value)
            if normalised in _LATENCY_FIELDS and number is not None and number >= 0:
                return number
    return None


def _check_pool(
    session: Session, pool: metrics.PoolUsage, rows: list[dict[str, Any]]
) -> None:
    if pool.utilisation is None:
        session.run.check(
            "connection pool", "skip", summary="; ".join(pool.notes) or "no gauges"
        )
        return
    waiting = pool.waiting or 0.0
    # A full pool with requests queueing is exhaustion itself, not a warning sign.
    status = "warn" if pool.utilisation > POOL_WARN else "pass"
    if pool.utilisation >= 1.0 and waiting > 0:
        status = "fail"
    percent = round(pool.utilisation * 100, 1)
    session.run.check(
        "connection pool",
        status,
        observed=percent,
        unit="%",
        expected="<= 80 % (information alert line: above 80 % for 15 min)",
        evidence=pool.to_dict(),
        summary=f"{pool.active:g} of {counted(pool.max or 0.0, 'connection')} in use"
        f" ({percent:g} %), {counted(waiting, 'request')} waiting",
    )
    rows.append(_row("pool utilisation", percent, "%", "<= 80 %", status))
    rows.append(_row("requests waiting for a connection", waiting, "", "0", status))


def _check_query_latency(
    session: Session,
    facts: DatabaseFacts,
    user_p50_ms: float | None,
    probe_summary: str,
) -> None:
    latency = facts.query_latency_ms
    if latency is None:
        session.run.check(
            "database query latency",
            "skip",
            summary=f"the database health response reports no latency: {probe_summary}",
        )
        return
    limit = None if user_p50_ms is None else DATABASE_SHARE * user_p50_ms
    status = "warn" if limit is not None and latency >= limit else "pass"
    expected = "-" if limit is None else f"< {limit:.0f} ms (half the user p50)"
    session.run.check(
        "database query latency",
        status,
        observed=latency,
        unit="ms",
        expected=expected,
        summary=f"the database health query took {latency:g} ms; user p50 "
        + ("unknown" if user_p50_ms is None else f"{user_p50_ms:g} ms"),
    )
    facts.rows.append(_row("database query latency", latency, "ms", expected, status))


def _row(
    measure: str, value: float, unit: str, limit: str, status: str
) -> dict[str, Any]:
    return {
        "measure": measure,
        "value": value,
        "unit": unit,
        "limit": limit,
        "status": status,
    }


def slow_queries(
    session: Session,
    facts: DatabaseFacts,
    limit: int = 10,
    user_p50_ms: float | None = None,
) -> pd.DataFrame | Nothing:
    """Read slow queries from PostgreSQL, or return why there are none to read.

    A statement counts as slow when its mean time is at least DATABASE_SHARE of
    the user p50. Without pg_stat_statements the active queries running for
    ``pg_locks.LONG_QUERY_LIMIT`` or longer are listed instead.
    """
    url = read_database_url(session.target.database_url_env)
    if url.state == "missing":
        return _none(session, f"no database URL configured: {url.problem}")
    if url.state == "sqlite":
        return _none(
            session,
            f"the database is SQLite ({url.shown}), which keeps no slow-query log",
        )
    if url.state != "postgresql" or not url.usable:
        return _none(session, f"slow queries cannot be read: {url.problem}")

    timeout = session.target.timeouts.read_seconds
    try:
        found = slow_statements(url.dsn, limit, timeout_s=timeout)
        if found.available:
            return _statements(session, facts, found.statements, user_p50_ms)
        return _long_running(session, facts, url.dsn, timeout, found.reason or "")
    except DatabaseUnavailable as exc:
        session.run.check("slow queries", "error", summary=str(exc))
        return Nothing(f"slow queries could not be read: {exc}")


def _statements(
    session: Session,
    facts: DatabaseFacts,
    statements: tuple[StatementStats, ...],
    user_p50_ms: float | None,
) -> pd.DataFrame | Nothing:
    limit = None if user_p50_ms is None else DATABASE_SHARE * user_p50_ms
    slow = [item for item in statements if limit is not None and item.mean_ms >= limit]
    facts.slow_statements = [_describe(item) for item in slow]
    worst = statements[0].mean_ms if statements else None
    expected = "-" if limit is None else f"mean < {limit:.0f} ms (half the user p50)"
    session.run.check(
        "slow queries",
        "warn" if slow else "pass",
        observed=None if worst is None else round(worst, 1),
        unit="ms",
        expected=expected,
        evidence=[_describe(item) for item in statements[:5]],
        summary=f"{len(slow)} of the {counted(len(statements), 'statement')} with"
        " the highest mean time in pg_stat_statements "
        + ("is" if len(slow) == 1 else "are")
        + " slow"
        + ("" if limit is not None else " (no user p50 to compare with)"),
    )
    rows = [
        {
            "mean (ms)": round(item.mean_ms, 1),
            "calls": item.calls,
            "total (ms)": round(item.total_ms, 1),
            "rows": item.rows,
            "slow": item in slow,
            "query": item.query,
        }
        for item in statements
    ]
    return frame(rows, "pg_stat_statements contains no statement of this database")


def _describe(item: StatementStats) -> str:
    query = " ".join((item.query or "").split())
    if len(query) > 80:
        query = query[:77] + "..."
    return f"{query} (mean {item.mean_ms:.0f} ms over {item.calls} calls)"


def _long_running(
    session: Session, facts: DatabaseFacts, dsn: str, timeout: float, reason: str
) -> pd.DataFrame | Nothing:
    snapshot = collect(dsn, timeout_s=timeout)
    running = long_running(snapshot)
    facts.long_queries = len(running.queries)
    least = LONG_QUERY_LIMIT.total_seconds()
    hidden = snapshot.hidden_note()
    summary = (
        f"{counted(len(running.queries), 'active query', 'active queries')}"
        f" running {least:g} s or longer; statement statistics are unavailable:"
        f" {reason}"
    )
    # Sessions that this role cannot see may run slow queries, so that is no pass.
    status = "warn" if running.queries or hidden else "pass"
    session.run.check(
        "slow queries",
        status,
        observed=len(running.queries),
        unit="queries",
        expected=f"no active query running {least:g} s or longer",
        summary=f"{summary}; {hidden}" if hidden else summary,
    )
    if not running.queries:
        return Nothing(
            f"no active query has run for {least:g} s or longer, and statement"
            f" statistics are unavailable: {reason}"
        )
    return running.frame()


def _none(session: Session, reason: str) -> Nothing:
    session.run.check("slow queries", "skip", summary=reason)
    return Nothing(reason)
