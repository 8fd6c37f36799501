"""The diagnosis and the recovery options of the database-connection procedure.

The runbook's recovery actions for database connection issues are: restart the
application if the connection pool is exhausted, scale the database if its CPU,
memory or connection limits are reached, and roll back the recent migration if
corruption is detected. ``recovery_options`` offers each one only when the facts
show its evidence, adds the PostgreSQL remediation of
``veerunbook.pg_activity.recommendations``, and runs none of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from veerunbook.pg_errors import (
    CLIENT_POOL_TIMEOUT,
    CONNECTION_LIMIT,
    CONNECTION_REFUSED,
)

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
    """Facts found by the steps, for the diagnosis and the recovery options."""

    endpoint: ProbeResult | None = None
    endpoint_pool: dict[str, float] = field(default_factory=dict)
    endpoint_error: str | None = None
    integrity_problem: str | None = None
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


@dataclass(frozen=True)
class RecoveryOption:
    """A recovery action with the evidence for it; ``confidence`` is high or medium."""

    action: str
    evidence: str
    confidence: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        """Return the option as JSON values."""
        return asdict(self)


def pool_exhaustion(facts: DbFacts) -> list[str]:
    """Return the evidence that the application's pool is exhausted."""
    evidence = []
    pool = facts.pool
    if pool is not None and pool.exhausted_samples:
        evidence.append(
            f"pool {pool.max_utilisation or 0:.0%} in use with up to "
            f"{pool.max_waiting:g} requests waiting ({pool.exhausted_samples} of "
            f"{len(pool.usage)} scrapes)"
        )
    figures = facts.endpoint_pool
    if figures.get("waiting") and figures.get("idle") == 0:
        evidence.append(
            f"the database endpoint reports {figures.get('total', 0):g} of "
            f"{figures.get('max', 0):g} connections, none idle, "
            f"{figures['waiting']:g} clients waiting"
        )
    timeouts = facts.error_count(CLIENT_POOL_TIMEOUT)
    if timeouts:
        evidence.append(f"{timeouts} client pool timeouts in the error logs")
    return evidence


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
        return f"{refused} refused connections in the error logs ({example})"
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
        evidence.append(f"{rejected} errors with SQLSTATE 53300 in the error logs")
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


def recovery_options(facts: DbFacts) -> list[RecoveryOption]:
    """Return the recovery actions that the facts support, most urgent first."""
    options = [
        option
        for option in (_restart(facts), _scale(facts), _roll_back(facts))
        if option is not None
    ]

    # The PostgreSQL remediation, each with the finding that supports it.
    activity = facts.activity
    for text in activity.recommendations if activity else []:
        evidence = _session_evidence(activity, text) if activity else ""
        options.append(RecoveryOption(text, evidence, "high", "postgres"))
    return options


def _restart(facts: DbFacts) -> RecoveryOption | None:
    pool = pool_exhaustion(facts)
    accepts = database_accepts(facts)
    if not pool or accepts is None:
        return None
    return RecoveryOption(
        "Restart the application to free its connection pool, then fix the release "
        "path that leaks connections",
        "; ".join([*pool, accepts]),
        "high" if len(pool) > 1 else "medium",
        "runbook",
    )


def _scale(facts: DbFacts) -> RecoveryOption | None:
    # NOTE: the database host's CPU and memory are not visible from here, so this
    # option rests on the connection limit alone.
    limit = connection_limit(facts)
    if not limit:
        return None
    return RecoveryOption(
        "Scale the database: raise max_connections (with memory to match) or put a "
        "pooler such as PgBouncer in front of it",
        "; ".join(limit),
        "high" if len(limit) > 1 else "medium",
        "runbook",
    )


def _roll_back(facts: DbFacts) -> RecoveryOption | None:
    broken = corruption(facts)
    if not broken:
        return None
    latest = _latest_migration(facts)
    action = "Roll back the recent migration"
    if latest:
        action += f" ({latest})"
    action += (
        ": follow the database-rollback procedure (stop traffic, back up the current "
        "state, restore, validate)"
    )
    return RecoveryOption(action, "; ".join(broken), "high", "runbook")


# The finding of pg_activity.diagnose that supports a remediation, by a word of it.
_EVIDENCE_FINDINGS = (
    ("pg_cancel_backend", "long-running queries"),
    ("idle_in_transaction_session_timeout", "idle in transaction"),
    ("release path", "idle in transaction"),
)


def _session_evidence(activity: PgActivity, action: str) -> str:
    name = next(
        (finding for word, finding in _EVIDENCE_FINDINGS if word in action),
        "lock blocking",
    )
    finding = activity.finding(name)
    return finding.summary if finding is not None else "PostgreSQL sessions"


def _latest_migration(facts: DbFacts) -> str | None:
    for migrations in facts.migrations:
        if migrations.latest:
            when = migrations.latest_applied_at
            return migrations.latest + (f", applied {when}" if when else "")
    return None


def diagnose(facts: DbFacts) -> list[str]:
    """Return the problems the facts show, most severe first; empty when none."""
    problems = []

    # Reachability: the application, then the database from the application.
    endpoint = facts.endpoint
    if endpoint is not None and endpoint.status == "error":
        reason = (endpoint.error or str(endpoint.error_kind)).rstrip(".")
        problems.append(
            f"the application does not answer at its database endpoint ({reason})"
        )
    unreachable = unreachable_from_application(facts)
    if unreachable:
        hint = _direct_hint(facts.direct_ok)
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
        problems.append(f"connection pool above 80 %: up to {highest:.0%} in use")
    url = facts.url
    if url is not None and url.state in ("missing", "invalid"):
        problems.append(f"database URL: {url.problem}")
    return problems


def _direct_hint(direct_ok: bool | None) -> str:
    if direct_ok is True:
        return (
            "; the database accepts direct connections from here, so check the "
            "application's network path to it and its database URL (restarting the "
            "application will not help)"
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
