"""The PostgreSQL server's sessions for the database-connection procedure.

``read_activity`` takes one snapshot of ``pg_stat_activity`` through
``veerunbook.pg_collect.collect`` and journals each finding of
``veerunbook.pg_diagnose.diagnose`` as a check. It keeps the analyses that the
notebook shows as tables: capacity, sessions by state, sessions idle in transaction
per application, lock waits with their root blockers, and the longest-running queries.
Sessions hidden from the reading role are counted in every table that leaves them
out, so an empty table never stands for "none".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from veerunbook import pg_actions, pg_activity, pg_diagnose, pg_locks, pg_snapshot
from veerunbook.errors import DatabaseUnavailable, UsageError
from veerunbook.triage_tables import Nothing

if TYPE_CHECKING:
    import pandas as pd

    from veerunbook.pg_activity import Capacity, IdleInTransaction, StateCounts
    from veerunbook.pg_diagnose import Finding
    from veerunbook.pg_locks import LockWaits, LongRunning
    from veerunbook.pg_snapshot import Snapshot
    from veerunbook.session import Session


@dataclass
class PgActivity:
    """One snapshot of the server's sessions and its analyses, or why there is none."""

    problem: str | None = None
    snapshot: Snapshot | None = None
    capacity: Capacity | None = None
    states: StateCounts | None = None
    idle: IdleInTransaction | None = None
    locks: LockWaits | None = None
    slow: LongRunning | None = None
    findings: list[Finding] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)

    def finding(self, name: str) -> Finding | None:
        """Return the finding of ``diagnose`` called ``name``, or None."""
        return next((f for f in self.findings if f.name == name), None)


def read_activity(session: Session, dsn: str, timeout_s: float) -> PgActivity:
    """Take a snapshot of the server's sessions, analyse it and journal the findings."""
    from veerunbook.pg_collect import collect

    try:
        snapshot = collect(dsn, timeout_s=timeout_s)
    except (DatabaseUnavailable, UsageError) as exc:
        problem = session.redactor.mask(str(exc))
        session.run.check("postgres sessions", "error", summary=problem)
        return PgActivity(problem=f"no snapshot of the sessions: {problem}")
    activity = analyse(snapshot)
    for finding in activity.findings:
        if finding.name == "recommended actions":
            continue
        session.run.check(
            f"postgres {finding.name}",
            finding.status,
            evidence=finding.evidence,
            summary=finding.summary,
        )
    session.run.note(
        "postgres sessions",
        postgres_sessions=activity_summary(activity),
    )
    return activity


def analyse(snapshot: Snapshot) -> PgActivity:
    """Run the analyses of ``veerunbook.pg_activity``, ``veerunbook.pg_locks`` and
    ``veerunbook.pg_diagnose`` on one snapshot.
    """
    idle = pg_activity.idle_in_transaction(snapshot)
    locks = pg_locks.lock_waits(snapshot)
    slow = pg_locks.long_running(snapshot)
    return PgActivity(
        snapshot=snapshot,
        capacity=pg_activity.capacity(snapshot),
        states=pg_activity.by_state(snapshot),
        idle=idle,
        locks=locks,
        slow=slow,
        findings=pg_diagnose.diagnose(snapshot),
        recommendations=pg_actions.recommendations(snapshot, idle, locks, slow),
    )


def activity_summary(activity: PgActivity) -> dict[str, object]:
    """Return the counts and the root blockers as JSON values, for the journal."""
    capacity, states = activity.capacity, activity.states
    idle, locks = activity.idle, activity.locks
    snapshot = activity.snapshot
    return {
        "read_as_role": snapshot.role if snapshot else None,
        "hidden_sessions": len(snapshot.hidden_clients()) if snapshot else None,
        "client_backends": capacity.client_backends if capacity else None,
        "usable_connections": capacity.usable if capacity else None,
        "connection_limit_full": capacity.full if capacity else None,
        "by_state": dict(states.counts) if states else {},
        "idle_in_transaction": idle.count if idle else 0,
        "idle_in_transaction_by_application": {
            app.application_name: app.count for app in idle.by_application
        }
        if idle
        else {},
        "lock_waiters": len(locks.waiters) if locks else 0,
        "root_blockers": [
            {"pid": root.pid, "blocks_total": root.blocks_total} for root in locks.roots
        ]
        if locks
        else [],
    }


def _unavailable(activity: PgActivity | None) -> Nothing:
    if activity is None:
        return Nothing("the sessions have not been read yet")
    return Nothing(activity.problem or "no snapshot of the sessions")


def capacity_table(activity: PgActivity | None) -> pd.DataFrame | Nothing:
    """Client connections against max_connections and the reserved slots."""
    if activity is None or activity.capacity is None:
        return _unavailable(activity)
    return activity.capacity.frame()


def states_table(activity: PgActivity | None) -> pd.DataFrame | Nothing:
    """Client sessions per state."""
    if activity is None or activity.states is None:
        return _unavailable(activity)
    return activity.states.frame()


def idle_table(activity: PgActivity | None) -> pd.DataFrame | Nothing:
    """Sessions idle in transaction per application, with their ages."""
    if activity is None or activity.idle is None:
        return _unavailable(activity)
    if not activity.idle.by_application:
        return Nothing(_visible("no session is idle in a transaction", activity))
    return activity.idle.frame()


def locks_table(activity: PgActivity | None) -> pd.DataFrame | Nothing:
    """Root blockers with what they block and for how long."""
    if activity is None or activity.locks is None:
        return _unavailable(activity)
    if not activity.locks.roots:
        return Nothing("no session waits for a lock")
    return activity.locks.frame()


def long_running_table(activity: PgActivity | None) -> pd.DataFrame | Nothing:
    """Active queries running for 30 s or more, longest first."""
    if activity is None or activity.slow is None:
        return _unavailable(activity)
    if not activity.slow.queries:
        limit = pg_snapshot.format_age(activity.slow.min_duration)
        text = f"no client query has been running for {limit} or more"
        return Nothing(_visible(text, activity))
    return activity.slow.frame()


def _visible(text: str, activity: PgActivity) -> str:
    """Qualify ``text`` with the hidden sessions, which it cannot speak for."""
    note = activity.snapshot.hidden_note() if activity.snapshot else None
    if note is None:
        return text
    return f"among the visible sessions, {text}; {note}"
