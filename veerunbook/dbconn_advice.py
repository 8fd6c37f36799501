"""The facts of the database-connection procedure, their evidence and the diagnosis.

``DbFacts`` keeps what the steps found. The evidence functions turn the facts into
sentences for the runbook's conditions: an exhausted connection pool, a reached
connection limit, detected corruption, a database the application cannot reach.
``diagnosis_line`` states the problems in one line, the most severe first; the
recovery options built from the same evidence are in ``veerunbook.dbconn_recovery``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from veerunbook.metrics_series import unreachable_line
from veerunbook.pg_errors import (
    CLIENT_POOL_TIMEOUT,
    CONNECTION_LIMIT,
    CONNECTION_REFUSED,
)
from veerunbook.text import counted, percent

if TYPE_CHECKING:
    from veerunbook.db_migrations import Migrations
    from veerunbook.dbcheck import DatabaseUrl
    from veerunbook.dbconn_logs import DatabaseErrors
    from veerunbook.dbconn_pg import PgActivity
    from veerunbook.dbconn_pool import PoolWindow
    from veerunbook.pg_collect import ConnectResult
    from veerunbook.probe import ProbeResult
    from veerunbook.sqlite_check import SqliteReport


@dataclass
class DbFacts:
    """Facts found by the steps, for the diagnosis and the recovery options.

    ``unreachable`` is why the target did not respond ("connection refused"), else
    None, and ``base_url`` is its masked base URL. ``integrity`` is the integrity
    status that the database endpoint reports ("pass", "fail", "skip"), or "" when
    it reports none.
    """

    endpoint: ProbeResult | None = None
    endpoint_pool: dict[str, float] = field(default_factory=dict)
    endpoint_error: str | None = None
    integrity: str = ""
    integrity_problem: str | None = None
    unreachable: str | None = None
    base_url: str = ""
    url: DatabaseUrl | None = None
    postgres: ConnectResult | None = None
    sqlite: SqliteReport | None = None
    pool: PoolWindow | None = None
    errors: DatabaseErrors | None = None
    activity: PgActivity | None = None
    migrations: list[Migrations] = field(default_factory=list)

    @property
    def direct_ok(self) -> bool | None:
        """Whether the database accepted a direct connection; None if not tried."""
        if self.postgres is not None:
            return self.postgres.ok
        if self.sqlite is not None:
            return self.sqlite.ok
        return None

    def error_count(self, kind: str) -> int:
        """Return how many errors of ``kind`` the logs held (0 if not read)."""
        return self.errors.count(kind) if self.errors else 0


def pool_exhaustion(facts: DbFacts) -> list[str]:
    """Return the evidence that the application's pool is exhausted."""
    evidence = []
    pool = facts.pool
    if pool is not None and pool.exhausted_samples:
        evidence.append(
            f"pool {percent(pool.max_utilisation or 0.0)} in use with up to "
            f"{counted(pool.max_waiting, 'request')} waiting "
            f"({pool.exhausted_samples} of {counted(len(pool.usage), 'scrape')})"
        )
    figures = facts.endpoint_pool
    if figures.get("waiting") and figures.get("idle") == 0:
        evidence.append(
            f"the database endpoint reports {figures.get('total', 0):g} of "
            f"{counted(figures.get('max', 0), 'connection')}, none idle, "
            f"{counted(figures['waiting'], 'client')} waiting"
        )
    timeouts = facts.error_count(CLIENT_POOL_TIMEOUT)
    if timeouts:
        evidence.append(f"{counted(timeouts, 'client pool timeout')} in the error logs")
    return evidence


# A host:port pair in an error message ("connect ECONNREFUSED 192.0.2.10:5432").
_NETWORK_ADDRESS = re.compile(r"\b[\w.-]+:\d{2,5}\b")


def database_accepts(facts: DbFacts) -> str | None:
    """Return the evidence that the database itself accepts connections, or None."""
    if unreachable_from_application(facts) or facts.direct_ok is False:
        return None
    if facts.direct_ok:
        return "the database accepts direct connections"
    endpoint = facts.endpoint
    if endpoint is not None and endpoint.status in ("pass", "warn"):
        return "the database endpoint reports the database reachable"
    return None


def unreachable_from_application(facts: DbFacts) -> str | None:
    """Return why the application cannot reach its database, or None."""
    endpoint = facts.endpoint
    failing = endpoint is not None and endpoint.status == "fail"
    if failing and facts.endpoint_error:
        return facts.endpoint_error
    refused = facts.error_count(CONNECTION_REFUSED)
    if refused and facts.errors is not None:
        example = next(
            e.message for e in facts.errors.errors if e.error.kind == CONNECTION_REFUSED
        )
        return f"{counted(refused, 'refused connection')} in the error logs ({example})"
    return None


def connection_limit(facts: DbFacts) -> list[str]:
    """Return the evidence that the server's connection limit is reached."""
    evidence = []
    capacity = facts.activity.capacity if facts.activity else None
    if capacity is not None and capacity.full:
        evidence.append(
            f"{capacity.client_backends} client backends hold all {capacity.usable} "
            f"slots open to roles without SUPERUSER (max_connections "
            f"{capacity.max_connections})"
        )
    rejected = facts.error_count(CONNECTION_LIMIT)
    if rejected:
        evidence.append(
            f"{counted(rejected, 'error')} with SQLSTATE 53300 in the error logs"
        )
    postgres = facts.postgres
    if postgres is not None and postgres.kind == CONNECTION_LIMIT:
        evidence.append(f"a direct connection was rejected: {postgres.error}")
    return evidence


def corruption(facts: DbFacts) -> list[str]:
    """Return the evidence of corruption: integrity checks and broken migrations."""
    evidence = []
    if facts.integrity_problem:
        evidence.append(f"integrity check of the endpoint: {facts.integrity_problem}")
    sqlite = facts.sqlite
    if sqlite is not None and sqlite.integrity_ok is False:
        first = sqlite.integrity[0] if sqlite.integrity else "failed"
        evidence.append(f"SQLite {sqlite.integrity_check}: {first}")
    for migrations in facts.migrations:
        evidence += [f"{migrations.tool}: {text}" for text in migrations.failed]
    return evidence


def diagnosis_line(facts: DbFacts) -> str:
    """Return the diagnosis in one line: the problems found, the most severe first."""
    problems = diagnose(facts)
    if facts.unreachable:
        # Only the direct database checks ran, so they are all that can follow.
        line = unreachable_line(facts.unreachable, facts.base_url)
        return "; also ".join([line, *problems])
    if problems:
        return "; also ".join(problems)
    if facts.direct_ok is None:
        url = facts.url
        reason = url.problem if url is not None and url.problem else "not attempted"
        return (
            "no database problem found at the endpoint, in the pool or in the logs; "
            f"the database itself was not checked directly ({reason})"
        )
    return "no database problem found"


def diagnose(facts: DbFacts) -> list[str]:
    """Return the problems the facts show, most severe first; empty when none."""
    problems = []

    # Reachability: the application, then the database from the application.
    endpoint = facts.endpoint
    if endpoint is not None and endpoint.status == "error" and not facts.unreachable:
        reason = (endpoint.error or str(endpoint.error_kind)).rstrip(".")
        problems.append(
            f"the application does not answer at its database endpoint ({reason})"
        )
    unreachable = unreachable_from_application(facts)
    if unreachable:
        hint = _direct_hint(facts)
        problems.append(
            f"database unreachable from the application: {unreachable}{hint}"
        )
    elif facts.direct_ok is False:
        problems.append(
            f"the database rejects direct connections: {_direct_error(facts)}"
        )

    # Capacity: the server's connection limit, then the application's pool.
    limit = connection_limit(facts)
    if limit:
        problems.append(f"database connection limit reached: {limit[0]}")
    pool = pool_exhaustion(facts)
    if pool and not unreachable:
        problems.append(f"connection pool exhausted: {pool[0]}")

    # Data, sessions, and the warnings that remain.
    broken = corruption(facts)
    if broken:
        problems.append(f"corruption detected: {broken[0]}")
    problems += _session_problems(facts)
    if facts.pool is not None and facts.pool.high_samples and not pool:
        highest = facts.pool.max_utilisation or 0.0
        problems.append(
            "connection pool above the information alert line (80 % for 15 min): "
            f"up to {percent(highest)} in use"
        )
    url = facts.url
    if url is not None and url.state == "invalid":
        problems.append(f"database URL: {url.problem}")
    return problems


def checked_other_database(facts: DbFacts) -> bool:
    """Return True when the direct check opened SQLite but the app names a server."""
    url = facts.url
    names_host = bool(_NETWORK_ADDRESS.search(facts.endpoint_error or ""))
    return url is not None and bool(url.sqlite_path) and names_host


def _direct_hint(facts: DbFacts) -> str:
    direct_ok = facts.direct_ok
    if direct_ok is True and checked_other_database(facts):
        return (
            "; the direct check opened a SQLite file while the application names a "
            "network database, so it says nothing about that server: check it and "
            "the application's DATABASE_URL"
        )
    if direct_ok is True:
        return (
            "; the database accepts direct connections from here, so check the "
            "application's network path to it and its database URL"
        )
    if direct_ok is False:
        return "; direct connections fail too, so the database itself is down"
    return ""


def _direct_error(facts: DbFacts) -> str:
    if facts.postgres is not None:
        return f"{facts.postgres.kind}: {facts.postgres.error}"
    if facts.sqlite is not None:
        return str(facts.sqlite.error)
    return "unknown error"


def _session_problems(facts: DbFacts) -> list[str]:
    activity = facts.activity
    if activity is None:
        return []
    names = ("lock blocking", "idle in transaction", "long-running queries")
    return [
        f"{finding.name}: {finding.summary}"
        for name in names
        if (finding := activity.finding(name)) is not None and finding.status != "pass"
    ]
