"""The recovery options of the database-connection procedure, ranked by evidence.

The runbook's recovery actions for database connection issues are: restart the
application if the connection pool is exhausted, scale the database if its CPU,
memory or connection limits are reached, and roll back the recent migration if
corruption is detected. ``recovery_options`` lists all three, plus the PostgreSQL
remediation of the server's sessions. Options with evidence get a rank counted from
1, in that order. The others follow without a rank, each saying what evidence is
missing. When the target did not respond at all, no option gets a rank, and a
first option points to restarting the service. Nothing here runs any of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from veerunbook.dbconn_advice import (
    DbFacts,
    checked_other_database,
    connection_limit,
    corruption,
    database_accepts,
    pool_exhaustion,
    unreachable_from_application,
)
from veerunbook.text import counted, percent

if TYPE_CHECKING:
    from veerunbook.dbconn_pg import PgActivity

RESTART_ACTION = (
    "Restart the application to free its connection pool, then fix the release "
    "path that leaks connections"
)
SCALE_ACTION = (
    "Scale the database: raise max_connections (with memory to match) or put a "
    "pooler such as PgBouncer in front of it"
)
ROLL_BACK_ACTION = "Roll back the recent migration"
SERVICE_ACTION = "Restart the application's service if triage confirms it is down"
SERVER_ACTION = (
    "Bring the database server the application names back up, or correct the "
    "application's DATABASE_URL; restarting the application will not help"
)


@dataclass(frozen=True)
class RecoveryOption:
    """A recovery action with the evidence for it, or the evidence it lacks.

    ``rank`` counts from 1 among the options that the evidence supports and is None
    for the others. ``confidence`` is "high" with two or more independent findings,
    "medium" with one, and None without a rank. ``source`` is "runbook",
    "postgres" (the server's sessions), "outage" (the database refuses the
    application) or "service" (an unreachable target).
    """

    action: str
    evidence: str
    rank: int | None
    confidence: str | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        """Return the option as JSON values."""
        return asdict(self)


@dataclass(frozen=True)
class _Candidate:
    """An option before ranking: the findings for it, or why there are none."""

    action: str
    source: str
    support: tuple[str, ...] = ()
    missing: str = ""
    confidence: str = "medium"

    def option(self, rank: int | None) -> RecoveryOption:
        if rank is None:
            evidence = "; ".join(self.support) if self.support else self.missing
            return RecoveryOption(self.action, evidence, None, None, self.source)
        evidence = "; ".join(self.support)
        return RecoveryOption(self.action, evidence, rank, self.confidence, self.source)


def recovery_options(facts: DbFacts) -> list[RecoveryOption]:
    """Return every recovery option: the ranked ones first, then the others."""
    candidates = [_restart(facts), _scale(facts), _roll_back(facts)]
    candidates += _postgres(facts.activity)
    server = _server(facts)
    if server is not None:
        candidates.insert(0, server)
    if facts.unreachable:
        candidates.insert(0, _restart_service(facts))
        return [candidate.option(None) for candidate in candidates]
    supported = [candidate for candidate in candidates if candidate.support]
    others = [candidate for candidate in candidates if not candidate.support]
    ranked = [candidate.option(rank) for rank, candidate in enumerate(supported, 1)]
    return ranked + [candidate.option(None) for candidate in others]


def _restart_service(facts: DbFacts) -> _Candidate:
    # The runbook's restart frees an exhausted pool. A process that is down needs a
    # restart first, but only triage can separate a dead process from a network fault.
    return _Candidate(
        SERVICE_ACTION,
        "service",
        missing=(
            f"the target did not respond ({facts.unreachable} at "
            f"{facts.base_url}), so the pool and the logs could not be read; triage "
            "checks whether the process is down"
        ),
    )


def _server(facts: DbFacts) -> _Candidate | None:
    # The runbook's recovery actions all assume a running server. This option turns
    # its first response step (check the database server) into an action, so it is
    # listed only when the application reports an outage.
    refused = unreachable_from_application(facts)
    if refused and (facts.direct_ok is not True or checked_other_database(facts)):
        return _Candidate(SERVER_ACTION, "outage", (f"the application: {refused}",))
    return None


def _restart(facts: DbFacts) -> _Candidate:
    pool = pool_exhaustion(facts)
    accepts = database_accepts(facts)
    if pool and accepts is not None:
        confidence = "high" if len(pool) > 1 else "medium"
        return _Candidate(RESTART_ACTION, "runbook", (*pool, accepts), "", confidence)
    if pool:
        refused = unreachable_from_application(facts) or facts.direct_ok is False
        state = (
            "the database does not accept connections either"
            if refused
            else "nothing shows that the database accepts connections"
        )
        missing = f"no evidence that a restart frees the pool: {pool[0]}, but {state}"
    else:
        missing = f"no evidence: {_pool_state(facts)}"
    return _Candidate(RESTART_ACTION, "runbook", missing=missing)


def _pool_state(facts: DbFacts) -> str:
    pool = facts.pool
    if facts.unreachable:
        return "the pool could not be read (target unreachable)"
    if pool is None or not pool.usage:
        return "no pool gauges were read"
    scrapes = counted(len(pool.usage), "scrape")
    highest = percent(pool.max_utilisation or 0.0)
    return f"the pool was exhausted in none of {scrapes} (up to {highest} in use)"


def _scale(facts: DbFacts) -> _Candidate:
    # NOTE: the database host's CPU and memory are not visible from here, so this
    # option rests on the connection limit alone.
    limit = connection_limit(facts)
    if limit:
        confidence = "high" if len(limit) > 1 else "medium"
        return _Candidate(SCALE_ACTION, "runbook", tuple(limit), "", confidence)
    logs = (
        "no SQLSTATE 53300 (too many connections) in the error logs"
        if facts.errors is not None and facts.errors.problem is None
        else "the error logs were not read"
    )
    capacity = facts.activity.capacity if facts.activity else None
    if capacity is not None:
        server = (
            f"the server has {capacity.client_backends} of {capacity.usable} "
            "usable connections in use"
        )
    else:
        server = "the server's sessions were not read"
    return _Candidate(SCALE_ACTION, "runbook", missing=f"no evidence: {logs}; {server}")


def _roll_back(facts: DbFacts) -> _Candidate:
    latest = _latest_migration(facts)
    action = ROLL_BACK_ACTION + (f" ({latest})" if latest else "")
    action += (
        ": follow the database-rollback procedure (stop traffic, back up the current "
        "state, restore, validate)"
    )
    broken = corruption(facts)
    if broken:
        return _Candidate(action, "runbook", tuple(broken), "", "high")
    return _Candidate(action, "runbook", missing=f"no evidence: {_integrity(facts)}")


def _integrity(facts: DbFacts) -> str:
    """Say which integrity sources were read and found clean."""
    clean = []
    if facts.integrity == "pass":
        clean.append("the endpoint's integrity check passed")
    if facts.sqlite is not None and facts.sqlite.integrity_ok:
        clean.append(f"SQLite {facts.sqlite.integrity_check} passed")
    if facts.migrations:
        clean.append("no migration failed")
    if not clean:
        return "no integrity check and no migration status was read"
    return ", ".join(clean)


def _latest_migration(facts: DbFacts) -> str | None:
    for migrations in facts.migrations:
        if migrations.latest:
            when = migrations.latest_applied_at
            return migrations.latest + (f", applied {when}" if when else "")
    return None


# The finding of the session analysis that supports a remediation, by a word of it.
_EVIDENCE_FINDINGS = (
    ("pg_cancel_backend", "long-running queries"),
    ("idle_in_transaction_session_timeout", "idle in transaction"),
    ("release path", "idle in transaction"),
)


def _postgres(activity: PgActivity | None) -> list[_Candidate]:
    if activity is None:
        return []
    return [
        _Candidate(text, "postgres", (_session_evidence(activity, text),), "", "high")
        for text in activity.recommendations
    ]


def _session_evidence(activity: PgActivity, action: str) -> str:
    name = next(
        (finding for word, finding in _EVIDENCE_FINDINGS if word in action),
        "lock blocking",
    )
    finding = activity.finding(name)
    return finding.summary if finding is not None else "PostgreSQL sessions"
